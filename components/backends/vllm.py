"""The ``vllm`` backend: stages run on vLLM's offline engine in this process (optional dependency).

One engine per model weights (models served from the same weights share it), made on first use and
kept for the search. Each call groups the requests by model and sends them in ONE ``generate`` call
per engine, with ``SamplingParams(n=...)`` per request and prefix caching on, so the S samples of a
prompt and prompts sharing a prefix are encoded once. Prompts are tokenized here (through the
stage's chat template unless the stage sends raw text), so the prompt and output token counts that
feed the spent FLOPs are the engine's exact ones, and a prompt longer than the model's window is
handled by ``context_policy`` before the engine sees it.

vLLM starts worker processes with spawn: a script that makes this backend must run it under
``if __name__ == "__main__":`` (the ``agenttts`` command and pytest already do).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from components.backends.base import Generation, Request
from components.errors import BackendError, ConfigError

CONTEXT_POLICIES = ("error", "truncate")


def _short(text: object, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fit_context(ids: list[int], window: int, policy: str) -> tuple[list[int], str]:
    """The prompt ids that fit ``window`` (at least one output token), or an error text.

    ``truncate`` drops tokens from the middle: the head (instructions, question) and the tail (the
    answer format) are kept, the long middle (references) loses what does not fit.

    >>> fit_context([1, 2, 3], 10, "error")
    ([1, 2, 3], '')
    >>> fit_context(list(range(10)), 6, "truncate")
    ([0, 1, 7, 8, 9], '')
    >>> fit_context(list(range(10)), 6, "error")[1]
    'prompt of 10 tokens does not fit the model window of 6 tokens (backend.context_policy=error)'
    """
    room = window - 1
    if len(ids) <= room:
        return ids, ""
    if policy != "truncate":
        return (
            ids,
            f"prompt of {len(ids)} tokens does not fit the model window of {window} tokens (backend.context_policy=error)",
        )
    head = room // 2
    return ids[:head] + ids[len(ids) - (room - head) :], ""


def _is_local(path: str) -> bool:
    """A folder path rather than a hub id (``org/name``)."""
    return Path(path).is_absolute() or path.startswith((".", "~")) or Path(path).expanduser().exists()


def check_loadable(model: str, path: str) -> None:
    """Fail with the model's name when its weights path or hub id has no readable config."""
    p = Path(path).expanduser()
    if _is_local(path):
        cfg = p / "config.json"
        if not cfg.is_file():
            raise BackendError(
                f"model '{model}': no model at {p} (missing {cfg.name}); "
                "fix its `path` in the model catalog or backend.model_path_override"
            )
        try:
            json.loads(cfg.read_text())
        except (OSError, ValueError) as e:
            raise BackendError(f"model '{model}': {cfg} is not readable ({_short(e)})") from None
        return
    try:  # a hub id: its config must be in the local cache or downloadable now
        from transformers import AutoConfig

        AutoConfig.from_pretrained(path)
    except ImportError as e:
        raise BackendError(f"backend 'vllm' needs vllm installed (pip install '.[vllm]'): {_short(e)}") from None
    except Exception as e:  # missing repo, no network and no cache, gated model
        raise BackendError(f"model '{model}': cannot load '{path}': {type(e).__name__}: {_short(e)}") from None


class VLLMBackend:
    """Samples from vLLM offline engines.

    Args:
        paths: model name -> weights folder or hub id (after ``model_path_override``).
        context_policy: ``error`` (the trial fails, naming stage, model and lengths) or ``truncate``.
        world: bank salt; set when every model is served from one override path.
        preload: ``check()`` also loads every engine, so weights that exist but do not load stop the
            search before any trial (needs the memory for all engines at once).
        **engine_kwargs: passed to ``vllm.LLM`` (``dtype``, ``max_model_len``, ``gpu_memory_utilization``, ...).
    """

    name = "vllm"
    simulated = False

    def __init__(
        self,
        paths: dict[str, str],
        context_policy: str = "error",
        world: str = "",
        preload: bool = False,
        **engine_kwargs,
    ):
        if context_policy not in CONTEXT_POLICIES:
            raise ConfigError(f"backend.context_policy must be one of {list(CONTEXT_POLICIES)}, got '{context_policy}'")
        self.paths = dict(paths)
        self.context_policy = context_policy
        self.world = world
        self.preload = bool(preload)
        self.engine_kwargs = {"enable_prefix_caching": True, **engine_kwargs}
        self._engines: dict[str, object] = {}
        self.calls = 0  # generate calls sent to engines

    def check(self) -> None:
        """Every model's weights exist and have a readable config; with ``preload`` every engine is loaded."""
        local = {m: p for m, p in self.paths.items() if _is_local(p)}
        for model, path in local.items():  # cheap, and needs no vllm: first
            check_loadable(model, path)
        try:
            import vllm  # noqa: F401
        except ImportError as e:
            raise BackendError(
                f"backend 'vllm' needs vllm in this venv (pip install '.[vllm]'; CPU-only: backend=openai against a "
                f"server of scripts/setup_vllm_cpu.sh's venv, see README 'CPU-only machines'): {_short(e)}"
            ) from None
        for model, path in self.paths.items():
            if model not in local:
                check_loadable(model, path)
        if self.preload:
            for model in self.paths:
                self.engine(model)

    def engine(self, model: str):
        """The engine serving ``model``, made on first use."""
        path = self.paths[model]
        if path not in self._engines:
            from vllm import LLM

            try:
                self._engines[path] = LLM(model=path, **self.engine_kwargs)
            except Exception as e:  # OOM, unsupported architecture, bad files
                raise BackendError(f"model '{model}': vLLM cannot load {path}: {type(e).__name__}: {_short(e)}") from e
        return self._engines[path]

    def close(self) -> None:
        self._engines.clear()

    def _prompt_ids(self, tokenizer, r: Request) -> list[int]:
        d = r.decoding
        if not d.chat:
            return tokenizer.encode(r.prompt)
        text = tokenizer.apply_chat_template(
            d.messages(r.prompt), tokenize=False, add_generation_prompt=True, chat_template=d.chat_template or None
        )
        return tokenizer.encode(text, add_special_tokens=False)  # the template writes its own BOS

    def generate(self, requests: list[Request]) -> list[Generation]:
        from vllm import SamplingParams

        out: list[Generation | None] = [None] * len(requests)
        by_path: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            if r.model not in self.paths:
                out[i] = Generation((), 0, (), error=f"model '{r.model}' has no weights in the model catalog")
            else:
                by_path[self.paths[r.model]].append(i)
        for idx in by_path.values():
            llm = self.engine(requests[idx[0]].model)
            tok = llm.get_tokenizer()
            window = llm.llm_engine.model_config.max_model_len
            prompts, params, sent = [], [], []
            for i in idx:
                r = requests[i]
                ids, err = fit_context(self._prompt_ids(tok, r), window, self.context_policy)
                if err:
                    out[i] = Generation((), len(ids), (), error=f"stage '{r.stage}': {err}")
                    continue
                d = r.decoding
                # no per-request seed: vLLM on CPU rejects it ("CPU Generator does not use offset")
                params.append(
                    SamplingParams(n=r.n, temperature=d.temperature, max_tokens=d.max_tokens, stop=list(d.stop) or None)
                )
                prompts.append({"prompt_token_ids": ids})
                sent.append(i)
            if not sent:
                continue
            self.calls += 1
            try:
                results = llm.generate(prompts, params, use_tqdm=False)
            except Exception as e:  # the engine failed the batch: its requests fail, the search goes on
                for i in sent:
                    out[i] = Generation((), 0, (), error=f"vLLM generate failed: {type(e).__name__}: {_short(e)}")
                continue
            for i, res in zip(sent, results):
                outs = sorted(res.outputs, key=lambda o: o.index)
                out[i] = Generation(
                    tuple(o.text for o in outs), len(res.prompt_token_ids), tuple(len(o.token_ids) for o in outs)
                )
        return out  # type: ignore[return-value]
