"""The agent's prompts: text files with ``$placeholders``, checked at start-up, rendered per round.

Files (in ``conf/prompts/`` by default, ``searcher.prompts_dir`` to use your own): ``system.txt``,
``preamble.txt``, ``initial_guidelines.txt``, ``guidelines.txt`` and ``trials.txt``. ``$`` placeholders
(``string.Template``) leave JSON braces alone. A missing file or a missing required placeholder
stops the search at start-up with its name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from components.errors import ConfigError
from components.pipeline import TrialResult
from components.space import SearchSpace

COMMON = ("preamble", "task_name", "task_description", "subtasks", "total_budget", "metrics", "main_metric")
REQUIRED = {
    "system": (),
    "preamble": (),
    "initial_guidelines": (*COMMON, "history"),
    "guidelines": (*COMMON, "old_history", "recent_history"),
    "trials": (*COMMON, "history", "sample_range", "budget_function", "guidelines", "batch_size", "example"),
}

BUDGET_FUNCTIONS = {
    "units": """def budget(model_params, samples, prompt_tokens, output_tokens):
    # normalized units: one unit = one sample of a 3B model on a 128-token prompt with 64 output tokens
    return (model_params / 3e9) * (prompt_tokens + samples * output_tokens) / 64 - 2""",
    "flops": """def budget(model_params, samples, prompt_tokens, output_tokens):
    # inference FLOPs; the prompt is encoded once and shared by the samples
    return 2 * model_params * (prompt_tokens + samples * output_tokens)""",
    "usd": """def budget(price_per_million_tokens, samples, prompt_tokens, output_tokens):
    return price_per_million_tokens * (prompt_tokens + samples * output_tokens) / 1e6""",
}


@dataclass
class TaskInfo:
    """What the prompts say about the task."""

    name: str
    description: str
    metrics: tuple[str, ...]
    main_metric: str


class PromptSet:
    """The prompt files of a folder, validated (by default the agent's five files).

    Args:
        folder: where the files are.
        files: file name (without ``.txt``) → its required placeholders, which are also the only ones
            allowed; default ``REQUIRED`` (the agent's five files). The LLM baselines pass their own.

    Raises:
        ConfigError: a file is missing, or lacks a required placeholder, or uses an unknown one.
    """

    def __init__(self, folder: str | Path, files: dict[str, tuple[str, ...]] | None = None):
        self.folder = Path(folder)
        self.templates: dict[str, Template] = {}
        for name, required in (REQUIRED if files is None else files).items():
            path = self.folder / f"{name}.txt"
            if not path.is_file():
                raise ConfigError(f"prompt file missing: {path}" + (" (a folder is there)" if path.is_dir() else ""))
            try:
                t = Template(path.read_text(encoding="utf-8"))
            except UnicodeDecodeError as e:
                raise ConfigError(
                    f"prompt file {path} is not UTF-8 text (offset {e.start}); save it as UTF-8"
                ) from None
            if not t.is_valid():
                raise ConfigError(f"prompt file {path} has a malformed placeholder (write a literal $ as $$)")
            ids = set(t.get_identifiers())
            missing = [p for p in required if p not in ids]
            if missing:
                raise ConfigError(f"prompt file {path} lacks required placeholder(s) {['$' + m for m in missing]}")
            unknown = sorted(ids - set(required))
            if unknown:
                raise ConfigError(
                    f"prompt file {path} uses unknown placeholder(s) {['$' + u for u in unknown]}; allowed: {['$' + r for r in required]}"
                )
            self.templates[name] = t

    def render(self, name: str, **values) -> str:
        return self.templates[name].substitute(**values)


def budget_function(space: SearchSpace) -> str:
    """The Python budget function the prompts show: the paper's for the budget's kind, extended where
    this space prices differently (prompt encoded once per sample, the fuser call charged), so that a
    proposal the LLM costs with it is feasible exactly when the space says so."""
    cm = space.cost_model
    kind = space.budget.kind
    if cm.prefix_sharing and not cm.count_fusion:
        return BUDGET_FUNCTIONS[kind]
    prompt = "prompt_tokens" if cm.prefix_sharing or kind == "usd" else "samples * prompt_tokens"
    scale, what = {
        "units": (
            "(model_params / 3e9) * ({}) / 64",
            "normalized units: one unit = one sample of a 3B model on a 128-token prompt with 64 output tokens",
        ),
        "flops": ("2 * model_params * ({})", "inference FLOPs"),
        "usd": ("price_per_million_tokens * ({}) / 1e6", "dollars"),
    }[kind]
    first = "price_per_million_tokens" if kind == "usd" else "model_params"
    lines = [
        f"def budget({first}, samples, prompt_tokens, output_tokens{', llm_fusion' if cm.count_fusion else ''}):",
        f"    # {what}" + ("" if cm.prefix_sharing else "; every sample encodes its own prompt"),
        f"    cost = {scale.format(f'{prompt} + samples * output_tokens')}" + (" - 2" if kind == "units" else ""),
    ]
    if cm.count_fusion:
        lines += [
            "    if llm_fusion and samples > 1:  # the subtask fuses with an LLM call: its prompt, the samples, one output",
            f"        cost += {scale.format('prompt_tokens + samples * output_tokens + output_tokens')}",
        ]
    return "\n".join([*lines, "    return cost"])


def sample_range_text(space: SearchSpace) -> str:
    """``[1, 100]`` when every subtask has that range (the paper's form), else the range of each."""
    ranges = {(s.min_samples, s.max_samples) for s in space.stages}
    if len(ranges) == 1:
        ((lo, hi),) = ranges
        return f"[{lo}, {hi}]"
    return ", ".join(f"{s.name} [{s.min_samples}, {s.max_samples}]" for s in space.stages)


def subtasks_text(space: SearchSpace) -> str:
    """Per subtask: its models (with their price under a dollar budget, and their measured token
    lengths where those, not the declared averages, price them), lengths and fusion."""
    cm = space.cost_model
    lines = []
    for i, s in enumerate(space.stages, 1):
        models = []
        for m in s.models:
            about = [f"{m.params / 1e9:g}B parameters"]
            if space.budget.kind == "usd":
                about.append(f"${m.price_per_mtok:g} per million tokens")
            if (s.name, m.name) in cm.lengths:
                np_, nd = cm.lengths[(s.name, m.name)]
                about.append(f"measured prompt length {np_:.0f} tokens, generation length {nd:.0f} tokens")
            models.append(f"{m.name} ({'; '.join(about)})")
        lines.append(
            f"{i}. {s.name}: models [{', '.join(models)}]; average prompt length {s.prompt_tokens} tokens, "
            f"average generation length {s.output_tokens} tokens; fusion: {s.fusion}"
        )
    return "\n".join(lines)


def history_text(space: SearchSpace, history: list[TrialResult]) -> str:
    """One line per trial, as in AgentTTS: parameters, scores, used and total budget."""
    if not history:
        return "(none)"
    lines = []
    for r in history:
        scores = {k: round(v, 4) for k, v in {"score": r.score, **r.metrics}.items()}
        if r.status != "ok":  # generation failed (e.g. a server error): not a measure of the allocation
            scores = {"failed": r.error[:200]}
        used = r.cost.measure(space.budget.kind)
        lines.append(
            f"Parameters: {json.dumps(r.allocation.to_dict())}, Score: {json.dumps(scores)}, "
            f"Used budget: {used:.6g}, total budget: {space.budget.value:.6g}"
        )
    return "\n".join(lines)


def example_json(space: SearchSpace) -> str:
    one = {s.name: {"model": s.largest.name, "samples": 1} for s in space.stages}
    return json.dumps({"candidates": [one]})


def common_values(prompts: PromptSet, task: TaskInfo, space: SearchSpace) -> dict:
    return {
        "preamble": prompts.render("preamble").strip(),
        "task_name": task.name,
        "task_description": task.description or task.name,
        "subtasks": subtasks_text(space),
        "total_budget": f"{space.budget.value:.6g} {space.budget.kind}",
        "metrics": ", ".join(task.metrics),
        "main_metric": task.main_metric,
    }


INSIGHT1_ITEM = re.compile(r"^1\. .*\(Insight 1\).*$", re.M)


def render_guidelines(
    prompts: PromptSet,
    task: TaskInfo,
    space: SearchSpace,
    history: list[TrialResult],
    recent: int,
    initial: bool,
    insight1: bool = True,
) -> str:
    """The guidelines prompt of a round. ``insight1=False`` (the ablation "w/o Insight 1": no probes
    were run) replaces the initial prompt's Insight-1 item, the line ``1. ... (Insight 1) ...``, with
    ``1. None.``, as the paper's code does."""
    values = common_values(prompts, task, space)
    if initial:
        text = prompts.render("initial_guidelines", **values, history=history_text(space, history))
        return text if insight1 else INSIGHT1_ITEM.sub("1. None.", text, count=1)
    cut = max(0, len(history) - max(0, recent))  # recent > len(history): all of it is recent
    old, new = history[:cut], history[cut:]
    return prompts.render(
        "guidelines", **values, old_history=history_text(space, old), recent_history=history_text(space, new)
    )


def render_trials(
    prompts: PromptSet, task: TaskInfo, space: SearchSpace, history: list[TrialResult], guidelines: list[str], k: int
) -> str:
    # AgentTTS passes the first guideline and the two most recent ones
    chosen = guidelines[:1] + [g for g in guidelines[-2:] if g is not guidelines[0]] if guidelines else []
    return prompts.render(
        "trials",
        **common_values(prompts, task, space),
        history=history_text(space, history),
        sample_range=sample_range_text(space),
        budget_function=budget_function(space),
        guidelines="\n\n".join(chosen) or "(none yet)",
        batch_size=k,
        example=example_json(space),
    )
