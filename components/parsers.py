"""Output parsers: turn a sample's text into the structured output a stage produces.

Tasks name a parser in config (``stages[].parser``); the registry is ``PARSERS``.
"""

from __future__ import annotations

import re

_ID = re.compile(r"\[(\d+)\]")
_ANSWER = re.compile(r"(?:final answer is|answer\s*:)\s*(.+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


def parse_ids(text: str) -> tuple[int, ...]:
    """Selected reference ids ``[n]`` in order of first mention, without repeats.

    >>> parse_ids("Selected references: [3] [17] [3]")
    (3, 17)
    """
    seen: dict[int, None] = {}
    for m in _ID.finditer(text):
        seen.setdefault(int(m.group(1)), None)
    return tuple(seen)


def parse_answer(text: str) -> str:
    """The answer after ``Answer:`` (or "the final answer is"); else the last non-empty line.

    >>> parse_answer("Reasoning...\\nAnswer: Paris.")
    'Paris.'
    """
    matches = _ANSWER.findall(text)
    if matches:
        return matches[-1].strip().splitlines()[0].strip()
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def parse_number(text: str) -> str:
    """The last number in the text, commas and ``$`` removed (GSM8K style).

    >>> parse_number("so 3 * 6 = $1,218.\\n#### 1218")
    '1218'
    """
    nums = _NUMBER.findall(text.split("####")[-1]) or _NUMBER.findall(text)
    if not nums:
        return ""
    n = nums[-1].replace(",", "").replace("$", "")
    return n[:-2] if n.endswith(".0") else n


PARSERS = {"ids": parse_ids, "answer": parse_answer, "number": parse_number}
