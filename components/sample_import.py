"""Import public per-sample data (JSONL) into the sample bank, so recorded runs become replayable scenarios.

One JSON object per line::

    {"question_id": "gsm8k-main-test-#0",   # the item id the task's dataset loader gives the question
     "model": "Llama-3.1-8B",               # a model of the stage's candidates (the model catalog)
     "samples": ["... Answer: 18", "..."],  # the sampled outputs, in sampling order
     "stage": "solve",                      # optional: default the task's first stage
     "upstream": "Selected references: [3]",# required for later stages: the fused output of the previous stage
     "correct": [true, false],              # optional: your labels; checked against the task's metric
     "prompt_tokens": 180,                  # optional: the prompt's token count (else estimated)
     "output_tokens": [212, 190]}           # optional: per sample (else estimated)

Each record's samples are appended to the stream the pipeline would use for that (model, rendered
prompt, decoding), so ``backend=replay`` evaluates any allocation whose samples are all there. Token
counts that the file does not give are estimated as ⌈characters / 4⌉ and counted as estimated. Every
record is validated before anything is written: a bad one stops the import naming its line.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from components.bank import stream_key
from components.errors import DatasetError
from components.metrics import METRICS
from components.parsers import PARSERS


@dataclass
class ImportReport:
    records: int = 0
    samples_added: int = 0
    samples_already_banked: int = 0
    estimated_token_counts: int = 0
    labels_checked: int = 0
    labels_disagreeing: int = 0  # the task's metric scores the sample otherwise than its "correct" label


def _estimate(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def samples_file(path: str | Path) -> Path:
    """``path`` if it is a file, else one DatasetError (checked before the bank is opened)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"no samples file at {path}")
    return path


def plan_samples(path: str | Path, task, space, items: list) -> list[tuple]:
    """The records of the JSONL file at ``path``, each checked against the task, its space and the
    questions ``items``; one DatasetError naming the line otherwise, or when there is none. Reads only:
    run it before the bank is opened, so bad input leaves no bank behind."""
    path = samples_file(path)
    by_id = {it.id: j for j, it in enumerate(items)}
    stages = {s.name: (i, s) for i, s in enumerate(task.stages)}
    models = {s.name: {m.name for m in s.models} for s in space.stages}
    plan = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path} is not UTF-8 text (offset {e.start}); save it as UTF-8") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{where}: not JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise DatasetError(f"{where}: expected an object")
        qid, model, samples = rec.get("question_id"), rec.get("model"), rec.get("samples")
        stage_name = rec.get("stage") or task.stages[0].name
        if stage_name not in stages:
            raise DatasetError(f"{where}: unknown stage '{stage_name}'; stages: {list(stages)}")
        i, stage = stages[stage_name]
        if str(qid) not in by_id:
            raise DatasetError(f"{where}: question_id '{qid}' is not in the task's dataset (data.path)")
        if model not in models[stage_name]:
            raise DatasetError(
                f"{where}: model '{model}' is not a candidate of stage '{stage_name}': {sorted(models[stage_name])}"
            )
        if not isinstance(samples, list) or not samples or not all(isinstance(s, str) for s in samples):
            raise DatasetError(f"{where}: 'samples' must be a non-empty list of strings")
        upstream = rec.get("upstream")
        if i > 0 and not isinstance(upstream, str):
            raise DatasetError(
                f"{where}: stage '{stage_name}' is not the first: give 'upstream' (the previous stage's fused output)"
            )
        for field, want in (("correct", bool), ("output_tokens", int)):
            v = rec.get(field)
            if v is not None and (
                not isinstance(v, list) or len(v) != len(samples) or not all(isinstance(x, want) for x in v)
            ):
                raise DatasetError(f"{where}: '{field}' must be a list of {want.__name__} with one per sample")
        tokens, pt = rec.get("output_tokens") or [], rec.get("prompt_tokens")
        if any(t < 1 for t in tokens):
            raise DatasetError(f"{where}: 'output_tokens' must be counts >= 1, got {tokens}")
        if pt is not None and (isinstance(pt, bool) or not isinstance(pt, int) or pt < 1):
            raise DatasetError(f"{where}: 'prompt_tokens' must be an integer >= 1, got {pt!r}")
        plan.append((rec, by_id[str(qid)], i, stage, model, samples, upstream if i > 0 else None))
    if not plan:
        raise DatasetError(f"{path}: no records (one JSON object per line)")
    return plan


def import_samples(path: str | Path, env, task_metric: str, plan: list[tuple] | None = None) -> ImportReport:
    """Append the samples of the JSONL file at ``path`` to ``env.bank`` (``env.items``: all questions).

    ``env`` is an Environment whose bank and world are the target; ``task_metric`` scores ``correct``
    labels; ``plan``: the file's records as :func:`plan_samples` checked them (read again if omitted).
    """
    if plan is None:
        plan = plan_samples(path, env.task, env.space, env.items)
    report = ImportReport()
    keys = []
    for _, j, _, stage, model, _, upstream in plan:
        prompt = env.render(stage, j, upstream)
        keys.append(stream_key(model, prompt, stage.decoding.key(), env.world))
    env.bank.load(keys)
    for key, (rec, j, i, stage, model, samples, upstream) in zip(keys, plan):
        report.records += 1
        have = env.bank.count(key)
        new = samples[have:]
        report.samples_already_banked += min(have, len(samples))
        if new:
            given = rec.get("output_tokens")
            tokens = given[have:] if given else [_estimate(t) for t in new]
            report.estimated_token_counts += 0 if given else len(new)
            pt = rec.get("prompt_tokens")
            if pt is None:
                report.estimated_token_counts += have == 0
                pt = _estimate(env.render(stage, j, upstream))
            env.bank.append(key, model, stage.name, env.items[j].id, int(pt), new, tokens, world=env.world)
            report.samples_added += len(new)
        if rec.get("correct") is not None and i == len(env.task.stages) - 1:
            answers = env.items[j].answers
            for text, label in zip(samples, rec["correct"]):
                ok = METRICS[task_metric](PARSERS[stage.parser](text), answers) >= 1.0
                report.labels_checked += 1
                report.labels_disagreeing += ok != label
    env.bank.flush()
    return report
