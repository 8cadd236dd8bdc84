"""Metrics on real benchmark answers (skipped when ../shared/data is absent) and hand-computed cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.metrics import (
    METRICS,
    exact_match,
    f1,
    normalize_answer,
    numeric_match,
    retrieval_prf,
)
from tests.conftest import data_file


def _data(rel: str) -> Path:
    return data_file(*rel.split("/"))


@pytest.fixture(scope="module")
def wiki() -> list[dict]:
    return json.loads(_data("2wikimultihopqa/tts_test.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def gsm8k() -> list[dict]:
    lines = _data("gsm8k/test.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_normalize_answer():
    assert normalize_answer("The  Mask of Fu-Manchu!") == "mask of fumanchu"
    assert normalize_answer("An apple, a pear") == "apple pear"
    assert normalize_answer("  ") == ""


def test_every_2wiki_alias_matches_its_own_answer_list(wiki):
    for rec in wiki:
        for alias in rec["answers"]:
            assert exact_match(alias, rec["answers"]) == 1.0
            assert f1(alias, rec["answers"]) == 1.0


def test_em_ignores_case_punctuation_and_articles_on_real_answers(wiki):
    fu_manchu = wiki[1]["answers"]  # ['The Mask Of Fu Manchu', 'Mask of Fu Manchu', ...]
    assert exact_match("mask of fu manchu", fu_manchu) == 1.0
    assert exact_match("The mask of Fu Manchu.", fu_manchu) == 1.0
    assert exact_match("A Mask of Fu Manchu", fu_manchu) == 1.0
    assert exact_match("The Face of Fu Manchu", fu_manchu) == 0.0
    assert exact_match("Braunek", wiki[0]["answers"]) == 0.0


def test_f1_partial_overlap_by_hand(wiki):
    # 'Missoula, Montana' alone: pred "missoula" has P=1, R=1/2 -> F1=2/3.
    assert f1("Missoula", ["Missoula, Montana"]) == pytest.approx(2 / 3)
    # The real alias list also has 'Missoula', so the max over aliases is 1.
    assert f1("Missoula", wiki[4]["answers"]) == 1.0
    # 5 predicted tokens, 4 gold tokens, 4 shared: P=4/5, R=1 -> F1=8/9.
    assert f1(
        "Gesellschaft mit beschränkter Haftung (GmbH)",
        "Gesellschaft mit beschränkter Haftung",
    ) == (pytest.approx(8 / 9))
    # 'Małgorzata' shared of 2 pred / 2 gold tokens: P=R=1/2.
    assert f1("Małgorzata Żuławska", wiki[0]["answers"]) == pytest.approx(0.5)
    assert f1("nothing in common", wiki[0]["answers"]) == 0.0


def test_f1_yes_no_rule(wiki):
    assert wiki[7]["answers"] == ["no"]
    assert f1("no", wiki[7]["answers"]) == 1.0
    assert f1("no answer", wiki[7]["answers"]) == 0.0  # would be 2/3 without the HotpotQA rule
    assert f1("yes", ["no"]) == 0.0
    assert exact_match("No.", wiki[7]["answers"]) == 1.0


def test_numeric_match_on_real_gsm8k_gold(gsm8k):
    solution = gsm8k[0]["answer"]
    assert solution.endswith("#### 18")
    assert numeric_match("She makes $18 every day.", solution) == 1.0
    assert numeric_match("#### 18", "18") == 1.0
    assert numeric_match("18.0", solution) == 1.0
    assert numeric_match("17", solution) == 0.0
    assert numeric_match("no number here", solution) == 0.0

    with_comma = next(r["answer"] for r in gsm8k if "," in r["answer"].split("####")[-1])
    gold = with_comma.split("####")[-1].strip()  # e.g. '2,125'
    assert numeric_match(f"The total is ${gold}.", with_comma) == 1.0
    assert numeric_match(gold.replace(",", ""), [gold]) == 1.0


def test_numeric_match_dollars_commas_and_tolerance():
    assert numeric_match("It costs $1,234.", "$1,234") == 1.0
    assert numeric_match("1234.0000000001", 1234) == 1.0
    assert numeric_match("1234.01", 1234) == 0.0
    assert numeric_match("-5", "-5") == 1.0
    assert numeric_match("3 then 7", ["7"]) == 1.0  # the last number is the answer


def test_retrieval_prf():
    assert retrieval_prf([3, 17, 3], [3, 17]) == (1.0, 1.0, 1.0)
    p, r, f = retrieval_prf([1, 2, 3, 4], [2, 9])
    assert (p, r) == (0.25, 0.5)
    assert f == pytest.approx(2 * 0.25 * 0.5 / 0.75)
    assert retrieval_prf([], [1, 2]) == (0.0, 0.0, 0.0)
    assert retrieval_prf([5], [1, 2]) == (0.0, 0.0, 0.0)


def test_retrieval_prf_on_real_gold_ids(wiki):
    rec = wiki[0]
    gold = [rec["ctxs_candidate"].index(g) + 1 for g in rec["ctxs_gt"]]
    wrong = [i for i in range(1, 10) if i not in gold][:2]
    p, r, _ = retrieval_prf(gold + wrong, gold)
    assert p == pytest.approx(len(gold) / (len(gold) + 2)) and r == 1.0


def test_registry_names_and_signature():
    assert {"em", "f1", "numeric"} <= set(METRICS)
    assert METRICS["em"]("the Eiffel Tower", ["Eiffel Tower"]) == 1.0
    assert METRICS["f1"]("Eiffel", ["Eiffel Tower"]) == pytest.approx(2 / 3)
    assert METRICS["numeric"]("= 42", ["42"]) == 1.0
    assert METRICS["retrieval_f1"]([1, 2], [2]) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "text, gold",
    [("x = .5", "0.5"), ("x = 1e3", "1000"), ("x = \u22125", "-5"), ("between 10-12", "12"), ("t = 1.5e-3", "0.0015")],
    ids=["leading dot", "exponent", "unicode minus", "a range is not a minus", "negative exponent"],
)
def test_numeric_match_reads_common_number_forms(text, gold):
    from components.parsers import parse_number

    assert numeric_match(text, gold) == 1.0, parse_number(text)
