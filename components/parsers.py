"""Output parsers: turn a sample's text into the structured output a stage produces.

Tasks name a parser in config (``stages[].parser``); the registry is ``PARSERS``.
"""

from __future__ import annotations

import re

_ID = re.compile(r"\[(\d+)\]")
_ANSWER = re.compile(r"(?:final answer is|answer\s*:)\s*(.+)", re.IGNORECASE)
# a minus only where no digit precedes it ("10-12" is a range, not -12); leading-dot decimals, an
# exponent and the Unicode minus sign are numbers too
_NUMBER = re.compile(r"(?<![\d.])[-\u2212]?\$?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


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
        answer = matches[-1].strip()  # "Answer: " with nothing after it is an empty answer
        return answer.splitlines()[0].strip() if answer else ""
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
    n = nums[-1].replace(",", "").replace("$", "").replace("\u2212", "-")
    if "e" in n.lower():  # 1e3 -> 1000, as the gold would be written
        n = f"{float(n):.10g}"
    return n[:-2] if n.endswith(".0") else n


PARSERS = {"ids": parse_ids, "answer": parse_answer, "number": parse_number}
