"""Defensive parsing of a reasoner's trial proposals.

An LLM's answer may be empty, endless, wrapped in prose or code fences, almost-JSON, name models
that do not exist, give samples out of range, exceed the budget, repeat archived trials, or propose
too few or too many. Every such problem is repaired or the candidate replaced, counted in
``ParsedTrials.counts`` and described in each proposal's ``repairs``; nothing here raises.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field

from components.space import Allocation, SearchSpace

MAX_ANSWER_CHARS = 100_000  # longer answers are cut (an "endless" generation)
MAX_STARTS = 8  # opening brackets tried as the start of the JSON value
_DECODER = json.JSONDecoder()
_SAMPLE_KEYS = ("samples", "sample", "num_samples", "n_samples", "n", "k")
_MODEL_KEYS = ("model", "model_name", "llm", "name")


@dataclass
class ParsedProposal:
    """One usable proposal and what had to be done to it."""

    allocation: Allocation
    repairs: list[str] = field(default_factory=list)
    insight: str = ""
    rationale: str = ""


@dataclass
class ParsedTrials:
    """The usable proposals of an answer (in answer order) and counts of every problem met."""

    proposals: list[ParsedProposal]
    counts: Counter
    error: str = ""  # why nothing usable came out, if so


def extract_json(text: str, counts: Counter) -> object | None:
    """The JSON value in ``text``: as is, inside fences or prose, or after light repair."""
    if text is None or not text.strip():
        counts["empty_answer"] += 1
        return None
    if len(text) > MAX_ANSWER_CHARS:
        counts["truncated_answer"] += 1
        text = text[:MAX_ANSWER_CHARS]
    fenced = re.findall(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    chunks = [c.strip() for c in [*fenced, text]]
    for chunk in chunks:  # a value holding candidates, from an opening bracket (prose or junk around it)
        try:
            return json.loads(chunk)
        except (ValueError, RecursionError):
            pass
        starts = [i for i, ch in enumerate(chunk) if ch in "{["][:MAX_STARTS]
        for pos in starts:
            value = _decode(chunk, pos)
            if _holds_dicts(value):
                return value
            for fixed in _repair(chunk[pos:]):
                value = _decode(fixed, 0)
                if _holds_dicts(value):
                    counts["json_repaired"] += 1
                    return value
    for chunk in chunks:  # any JSON value at all (the caller counts a wrong shape)
        for candidate in _spans(chunk):
            for i, fixed in enumerate([candidate, *_repair(candidate)]):
                try:
                    value = json.loads(fixed)
                except (ValueError, RecursionError):
                    continue
                if i:
                    counts["json_repaired"] += 1
                return value
    counts["no_json"] += 1
    return None


_FAILED = object()


def _decode(text: str, pos: int) -> object:
    """The JSON value starting at ``pos`` (whatever follows it ignored), or ``_FAILED``."""
    try:
        return _DECODER.raw_decode(text, pos)[0]
    except (ValueError, RecursionError):
        return _FAILED


def _holds_dicts(value: object) -> bool:
    return isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, dict) for v in value))


def _spans(text: str) -> list[str]:
    """The whole text, then from the first opening bracket to the last closing one, then to the end."""
    out = [text]
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if starts:
        s = min(starts)
        e = max(text.rfind("}"), text.rfind("]"))
        if e > s:
            out.append(text[s : e + 1])
        out.append(text[s:])  # cut off mid-answer: the repair closes the brackets
    return out


def _repair(text: str) -> list[str]:
    """Common near-JSON: single quotes, Python literals, comments, trailing commas, unclosed brackets.

    A cut-off answer gives two versions: without the element it was cut in, then closed as is.
    """
    t = re.sub(r"//[^\n]*", "", text)
    t = re.sub(r"\bTrue\b", "true", re.sub(r"\bFalse\b", "false", re.sub(r"\bNone\b", "null", t)))
    if '"' not in t:
        t = t.replace("'", '"')
    t = re.sub(r"([{,]\s*)([A-Za-z_][\w.\-]*)\s*:", r'\1"\2":', t)  # bare keys
    t = re.sub(r",\s*([}\]])", r"\1", t)
    t = t.rstrip().rstrip(",")
    stack: list[tuple[str, int]] = []  # open brackets and where
    ends: dict[int, int] = {}  # nesting depth -> where its last complete element ends
    in_str = esc = False
    for i, ch in enumerate(t):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append((ch, i))
        elif ch in "}]":
            if stack:
                stack.pop()
            ends[len(stack)] = i + 1
        elif ch == ",":
            ends[len(stack)] = i
    if not stack and not in_str:
        return [t]

    def close(opened: list[tuple[str, int]]) -> str:
        return "".join("}" if ch == "{" else "]" for ch, _ in reversed(opened))

    plain = re.sub(r",\s*$", "", t + ('"' if in_str else "")) + close(stack)
    if not stack:
        return [plain]
    # drop the element it was cut in: keep the complete elements of the innermost open list (else the outer value)
    ci = max((j for j, (ch, _) in enumerate(stack) if ch == "["), default=0)
    end = ends.get(ci + 1, -1)
    end = end if end > stack[ci][1] else stack[ci][1] + 1
    dropped = re.sub(r"[\s,]*$", "", t[:end]) + close(stack[: ci + 1])
    return [dropped, plain] if dropped != plain else [plain]


def _candidate_list(value: object, stage_names: list[str], counts: Counter) -> list[dict]:
    """Find the list of candidate dicts in the answer's structure."""
    if isinstance(value, list):
        out = [v for v in value if isinstance(v, dict)]
        if value and not out:
            counts["bad_structure"] += 1
        return out
    if not isinstance(value, dict):
        counts["bad_structure"] += 1
        return []
    lowered = {str(k).lower(): v for k, v in value.items()}
    for key in ("candidates", "trials", "configurations", "configs", "proposals"):
        if isinstance(lowered.get(key), list):
            return [v for v in lowered[key] if isinstance(v, dict)]
    stage_keys = {s.lower() for s in stage_names}
    stage_keys |= {f"{p}_{i}" for p in ("subtask", "stage") for i in range(1, len(stage_names) + 1)}
    if any(str(k).lower().replace(" ", "_") in stage_keys for k in value):
        return [value]  # a single candidate (the paper's form: {"subtask_1": {...}, "subtask_2": {...}})
    inner = [v for v in value.values() if isinstance(v, dict)]
    if inner and all(isinstance(v, dict) for v in value.values()):
        return inner  # {"trial_1": {...}, "trial_2": {...}}
    counts["bad_structure"] += 1
    return []


def _match_model(name: str, stage, counts: Counter, repairs: list[str]) -> str | None:
    names = [m.name for m in stage.models]
    if name in names:
        return name
    low = {n.lower(): n for n in names}
    if name.lower() in low:
        return low[name.lower()]
    size = re.search(r"(\d+(?:\.\d+)?)\s*[bB]\b", name)
    if size:  # "llama 3B", "Qwen-72b" -> the candidate of that size
        by_size = [n for n in names if re.search(rf"(?<![\d.]){re.escape(size.group(1))}[bB]\b", n)]
        if len(by_size) == 1:
            counts["model_repaired"] += 1
            repairs.append(f"model '{name}' -> '{by_size[0]}' (size)")
            return by_size[0]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.8)
    if close:
        counts["model_repaired"] += 1
        repairs.append(f"model '{name}' -> '{close[0]}' (closest name)")
        return close[0]
    return None


def _samples(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(round(value)) if math.isfinite(value) else None
    m = re.search(r"-?\d+(?:\.\d+)?", str(value))
    return int(round(float(m.group()))) if m else None


def parse_trials(
    text: str, space: SearchSpace, seen: set[Allocation], k: int, fallback: Allocation | None = None
) -> ParsedTrials:
    """Turn an answer into at most ``k`` new, feasible proposals.

    Args:
        text: the reasoner's answer.
        space: validates models and samples, checks and projects onto the budget.
        seen: archived allocations (a proposal equal to one is dropped as a duplicate).
        k: how many proposals are wanted; extra ones are dropped and counted.
        fallback: the allocation whose choice fills a stage the answer leaves out (the best trial).
    """
    counts: Counter = Counter()
    value = extract_json(text, counts)
    if value is None:
        if not counts["empty_answer"] and not counts["no_json"]:
            counts["bad_structure"] += 1  # the answer is JSON null
        return ParsedTrials([], counts, "no JSON in the answer")
    names = [s.name for s in space.stages]
    raw = _candidate_list(value, names, counts)
    out: list[ParsedProposal] = []
    batch: set[Allocation] = set()
    for cand in raw:
        repairs: list[str] = []
        low = {str(key).lower().replace(" ", "_"): v for key, v in cand.items()}
        choices, ok = [], True
        for i, stage in enumerate(space.stages):
            entry = low.get(stage.name.lower(), low.get(f"subtask_{i + 1}", low.get(f"stage_{i + 1}")))
            model = samples = None
            if isinstance(entry, dict):
                e = {str(x).lower(): y for x, y in entry.items()}
                model = next((str(e[x]) for x in _MODEL_KEYS if x in e), None)
                samples = next((_samples(e[x]) for x in _SAMPLE_KEYS if x in e), None)
            elif isinstance(entry, str) and entry.strip():  # "MODEL:S", or the model alone
                model, s = entry.rsplit(":", 1) if ":" in entry else (entry, None)
                samples = None if s is None else _samples(s)
            if model is None and fallback is not None:
                counts["missing_stage"] += 1
                repairs.append(f"stage '{stage.name}' missing: kept {fallback[stage.name][0]}")
                model = fallback[stage.name][0]
                if samples is None:
                    samples = fallback[stage.name][1]
            if model is None:
                counts["missing_stage"] += 1
                ok = False
                break
            matched = _match_model(str(model), stage, counts, repairs)
            if matched is None:
                counts["unknown_model"] += 1
                ok = False
                break
            if samples is None:
                counts["missing_samples"] += 1
                samples = stage.min_samples
                repairs.append(f"samples of '{stage.name}' missing: {samples}")
            if not stage.min_samples <= samples <= stage.max_samples:
                clipped = min(stage.max_samples, max(stage.min_samples, samples))
                counts["samples_out_of_range"] += 1
                repairs.append(
                    f"samples of '{stage.name}' {samples} -> {clipped} (range [{stage.min_samples}, {stage.max_samples}])"
                )
                samples = clipped
            choices.append((stage.name, matched, samples))
        if not ok:
            continue
        a = Allocation(tuple(choices))
        if not space.is_feasible(a):
            counts["over_budget"] += 1
            b = space.project(a)
            repairs.append(
                f"over budget ({space.cost(a):.0f} > {space.budget.value:.0f} {space.budget.kind}): projected to {b}"
            )
            a = b
        if a in seen or a in batch:
            counts["duplicate"] += 1
            continue
        if len(out) >= k:
            counts["too_many"] += 1
            continue
        batch.add(a)
        insight = str(low.get("insight", "")) if low.get("insight") is not None else ""
        rationale = str(low.get("rationale", low.get("reason", "")) or "")
        out.append(ParsedProposal(a, repairs, insight, rationale))
    if len(out) < k:
        counts["too_few"] += 1
    return ParsedTrials(out, counts, "" if out else "no usable proposal in the answer")
