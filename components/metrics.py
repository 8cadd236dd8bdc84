"""Scoring: SQuAD/HotpotQA answer EM and F1, retrieval precision/recall/F1, GSM8K numeric match.

Tasks name a stage's metric in config; the registry is ``METRICS`` (callables ``(prediction, answers)``).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable

from components.parsers import parse_number

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = frozenset(string.punctuation)
# HotpotQA scores these as all-or-nothing: "no" vs "no answer" must not earn partial credit.
_SPECIAL = frozenset({"yes", "no", "noanswer"})


def normalize_answer(text: str) -> str:
    """SQuAD normalization: lowercase, drop punctuation and articles, collapse whitespace.

    >>> normalize_answer("  The Mask of Fu-Manchu! ")
    'mask of fumanchu'
    """
    text = "".join(ch for ch in str(text).lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _aliases(answers: str | Iterable[str]) -> list[str]:
    # A bare string is one answer, not an iterable of characters.
    return [answers] if isinstance(answers, str) else [str(a) for a in answers]


def exact_match(prediction: str, answers: str | Iterable[str]) -> float:
    """1.0 if the normalized prediction equals any normalized gold alias, else 0.0.

    >>> exact_match("the Eiffel tower.", ["Eiffel Tower", "Tour Eiffel"])
    1.0
    """
    pred = normalize_answer(prediction)
    return max((float(pred == normalize_answer(a)) for a in _aliases(answers)), default=0.0)


def _f1_one(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if (pred in _SPECIAL or ref in _SPECIAL) and pred != ref:
        return 0.0
    common = Counter(pred.split()) & Counter(ref.split())
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred.split()), same / len(ref.split())
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, answers: str | Iterable[str]) -> float:
    """Token F1 against the best-matching gold alias (HotpotQA yes/no/noanswer rule).

    >>> round(f1("Missoula in Montana", ["Missoula, Montana"]), 3)
    0.8
    >>> f1("no", ["yes"])
    0.0
    """
    return max((_f1_one(prediction, a) for a in _aliases(answers)), default=0.0)


def retrieval_prf(selected_ids: Iterable[int], gold_ids: Iterable[int]) -> tuple[float, float, float]:
    """Set precision, recall and F1 of selected fact ids against gold ids.

    >>> retrieval_prf([1, 2, 3, 3], [2, 3])
    (0.6666666666666666, 1.0, 0.8)
    >>> retrieval_prf([], [1])
    (0.0, 0.0, 0.0)
    """
    sel, gold = set(selected_ids), set(gold_ids)
    hit = len(sel & gold)
    if not sel or not gold or hit == 0:
        return 0.0, 0.0, 0.0
    precision, recall = hit / len(sel), hit / len(gold)
    return precision, recall, 2 * precision * recall / (precision + recall)


def _to_float(text: str) -> float | None:
    num = parse_number(str(text))
    try:
        return float(num)
    except ValueError:
        return None


def numeric_match(prediction: str, gold: str | float | Iterable[str]) -> float:
    """1.0 if the last number in the prediction equals the gold number (GSM8K), else 0.0.

    Commas and ``$`` are ignored; a gold solution text is read after its ``####`` marker.

    >>> numeric_match("She makes 9 * 2 = $18 a day.", "#### 18")
    1.0
    >>> numeric_match("It costs $1,234.00", ["1234"])
    1.0
    """
    pred = _to_float(prediction)
    if pred is None:
        return 0.0
    golds = [gold] if isinstance(gold, (str, int, float)) else list(gold)
    for g in golds:
        ref = float(g) if isinstance(g, (int, float)) else _to_float(g)
        if ref is not None and abs(pred - ref) <= 1e-6:
            return 1.0
    return 0.0


def retrieval_f1(selected_ids: Iterable[int], gold_ids: Iterable[int]) -> float:
    """Retrieval F1 alone, for the registry.

    >>> retrieval_f1([1, 4], [1, 2])
    0.5
    """
    return retrieval_prf(selected_ids, gold_ids)[2]


METRICS = {
    "em": exact_match,
    "f1": f1,
    "numeric": numeric_match,
    "retrieval_f1": retrieval_f1,
}
