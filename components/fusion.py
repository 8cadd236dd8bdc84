"""Fusion: turn the S samples of a stage into one output.

Three methods, named in a stage's config (``fusion: vote | id_vote | llm``):

- ``vote``: majority vote over normalized parsed answers (ties go to the answer seen first).
- ``id_vote``: AgentTTS's merge for selection stages: vote over selected reference ids and keep the
  k most voted, k = the most common number of ids per sample.
- ``llm``: the stage model fuses the candidates with the fusion prompt (Archon's fuser); the call
  goes through the backend and the sample bank like any generation (see ``components.pipeline``).

Vote-based fusion costs no FLOPs; the LLM fuser's FLOPs are reported by the pipeline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from components.metrics import normalize_answer
from components.parsers import parse_ids, parse_number

FUSIONS = ("vote", "id_vote", "llm")

FUSION_PROMPT = """You have been provided with a set of responses from various open-source models to the latest user query, which is "{query}".
Your task is to synthesize these responses into a single, high-quality response. It is crucial to critically evaluate the information provided in these responses, recognizing that some of it may be biased or incorrect. Your response should not simply replicate the given answers but should offer a refined, accurate, and comprehensive reply to the instruction. Ensure your response is well-structured, coherent, and adheres to the highest standards of accuracy and reliability.
Once again, the query is: {query}
Responses from models:
{responses}"""


def format_ids(ids: Sequence[int]) -> str:
    """Canonical text of a selection (sorted, so equal sets give equal downstream prompts).

    >>> format_ids([17, 3])
    'Selected references: [3] [17]'
    """
    return "Selected references: " + " ".join(f"[{i}]" for i in sorted(ids))


def id_vote_merge(samples: Sequence[str]) -> str:
    """Merge selection samples by voting over their reference ids.

    >>> id_vote_merge(["[1] [2]", "[2] [3]", "[2] [1]"])
    'Selected references: [1] [2]'
    """
    parsed = [parse_ids(s) for s in samples]
    parsed = [p for p in parsed if p]
    if not parsed:
        return format_ids([1])  # as in AgentTTS: an unparsable selection falls back to [1]
    k = Counter(len(p) for p in parsed).most_common(1)[0][0]
    votes = Counter(i for p in parsed for i in p)
    return format_ids([i for i, _ in votes.most_common(k)])


def id_vote_prefixes(samples: Sequence[str], sizes: Sequence[int]) -> list[str]:
    """``[id_vote_merge(samples[:n]) for n in sizes]`` in one pass over the samples (the grid oracle
    fuses every prefix of a stream); the votes grow one sample at a time, in the same order.

    >>> id_vote_prefixes(["[1] [2]", "[2] [3]", "[2] [1]"], [1, 3])
    ['Selected references: [1] [2]', 'Selected references: [1] [2]']
    """
    want = sorted(set(sizes))
    if not want:
        return []
    if not 1 <= want[0] <= want[-1] <= len(samples):
        raise ValueError(f"prefix sizes {want[0]}..{want[-1]} outside 1..{len(samples)} samples")
    lengths: Counter = Counter()
    votes: Counter = Counter()
    done, k = {}, 0
    for n, text in enumerate(samples[: want[-1]], 1):
        p = parse_ids(text)
        if p:
            lengths[len(p)] += 1
            votes.update(p)
        if want[k] == n:
            k += 1
            if not lengths:
                done[n] = format_ids([1])
            else:
                top = lengths.most_common(1)[0][0]
                done[n] = format_ids([i for i, _ in votes.most_common(top)])
    return [done[n] for n in sizes]


def majority_vote(samples: Sequence[str], parse: Callable[[str], str]) -> str:
    """Return the first sample whose normalized answer is the most common one.

    >>> majority_vote(["Answer: Paris", "Answer: Rome", "Answer: paris."], lambda s: s[8:])
    'Answer: Paris'
    """
    keys = [_vote_key(parse(s), parse is parse_number) for s in samples]
    winner = Counter(keys).most_common(1)[0][0]
    return samples[keys.index(winner)]


def _vote_key(answer: str, numeric: bool) -> str | float:
    """What a vote counts as equal: numbers by value (text normalization would merge -5 with 5 and
    1.85 with 18.5, and split 18 from 18.00), other answers by their normalized text.

    >>> [_vote_key(a, True) for a in ("-5", "5", "18.00")], _vote_key("The Paris", False)
    ([-5.0, 5.0, 18.0], 'paris')
    """
    if numeric:
        try:
            return float(answer)
        except ValueError:
            pass  # no number in the sample: its text, as for other answers
    return normalize_answer(answer)


def fusion_prompt(query: str, candidates: Sequence[str]) -> str:
    """The LLM fuser's prompt over the numbered candidates."""
    responses = "\n".join(f"{i}. {c}" for i, c in enumerate(candidates, 1))
    return FUSION_PROMPT.format(query=query, responses=responses)
