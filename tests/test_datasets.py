"""Dataset loaders on the real files (skipped when ../shared/data is absent), bad input, synthetic items."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from components.datasets import (
    LOADERS,
    load_2wiki,
    load_cwq,
    load_gsm8k,
    load_hotpotqa,
    load_items,
    synthetic_items,
)
from components.errors import DatasetError, UnknownNameError
from components.metrics import normalize_answer
from tests.conftest import data_file

WIKI, HOTPOT = (
    "2wikimultihopqa/tts_test.json",
    "hotpotqa/hotpot_distractor_hard_100.json",
)
GSM8K, CWQ = "gsm8k/test.jsonl", "cwq/data_with_ct_0.json"


def _data(rel: str) -> Path:
    return data_file(*rel.split("/"))


@pytest.fixture(scope="module")
def wiki():
    return load_2wiki(_data(WIKI))


@pytest.fixture(scope="module")
def hotpot():
    return load_hotpotqa(_data(HOTPOT))


@pytest.fixture(scope="module")
def gsm8k():
    return load_gsm8k(_data(GSM8K))


@pytest.fixture(scope="module")
def cwq():
    return load_cwq(_data(CWQ))


def _check_common(items, n):
    assert len(items) == n
    assert len({it.id for it in items}) == n
    for it in items:
        assert it.question and it.answers and all(a.strip() for a in it.answers)
        assert len(set(it.answers)) == len(it.answers)
        wrong = it.meta["distractor_answers"]
        assert wrong and not {normalize_answer(w) for w in wrong} & {normalize_answer(a) for a in it.answers}
        if it.candidates:
            assert it.gold_ids and all(1 <= g <= len(it.candidates) for g in it.gold_ids)
            assert len(set(it.gold_ids)) == len(it.gold_ids)


# --------------------------------------------------------------------------- real files


def test_2wiki(wiki):
    _check_common(wiki, 100)
    raw = json.loads(_data(WIKI).read_text(encoding="utf-8"))
    for it, rec in zip(wiki, raw, strict=True):
        assert 95 <= len(it.candidates) <= 110
        assert 1 <= len(it.gold_ids) <= 6
        assert set(it.gold_facts) == {g.strip() for g in rec["ctxs_gt"]}
    first = wiki[0]
    assert first.id == "2wiki-0"
    assert first.answers == ("Małgorzata Braunek",)  # the file lists the gold twice
    assert "Xawery Żuławski" in first.gold_facts[0]


def test_hotpotqa(hotpot):
    _check_common(hotpot, 100)
    raw = json.loads(_data(HOTPOT).read_text(encoding="utf-8"))
    for it, rec in zip(hotpot, raw, strict=True):
        assert it.id == rec["id"]
        assert it.answers[0] == rec["answer"].strip()
        titles = set(rec["supporting_facts"]["title"])
        assert all(f.split(": ", 1)[0] in titles for f in it.gold_facts)
        assert all(": " in c for c in it.candidates)
        assert it.meta["level"] == "hard"
    assert hotpot[0].gold_facts[0].startswith("VIVA Media: VIVA Media GmbH")


def test_gsm8k(gsm8k):
    _check_common(gsm8k, 1319)
    assert gsm8k[0].answers == ("18",)
    assert gsm8k[0].meta["solution"].endswith("#### 18")
    assert set(gsm8k[0].meta["distractor_answers"]) == {"17", "19", "36", "9", "28"}
    for it in gsm8k:
        assert "," not in it.answers[0]
        float(it.answers[0])
        assert it.candidates == ()


def test_cwq(cwq):
    _check_common(cwq, 1000)
    raw = json.loads(_data(CWQ).read_text(encoding="utf-8"))
    for it, rec in zip(cwq, raw, strict=True):
        gold = {"({}, {}, {})".format(*t) for t in rec["gt_triples"]}
        assert set(it.gold_facts) == gold
        assert len(it.candidates) == max(100, len(gold))
        assert len(set(it.candidates)) == len(it.candidates)
    assert cwq[0].answers == ("2014 World Series",)


def test_cwq_seeded_distractors(cwq):
    path = _data(CWQ)
    again = load_cwq(path)
    assert [it.candidates for it in again[:20]] == [it.candidates for it in cwq[:20]]
    other = load_cwq(path, n_candidates=30, seed=1)
    assert other[0].candidates != cwq[0].candidates
    assert all(len(it.candidates) == max(30, len(it.gold_ids)) for it in other)


def test_load_items_registry():
    assert set(LOADERS) == {"2wiki", "hotpotqa", "gsm8k", "cwq", "synthetic"}
    assert len(load_items("2wiki", _data(WIKI))) == 100
    with pytest.raises(UnknownNameError, match="2wiki"):
        load_items("squad", "x.json")


def test_synthetic_items_round_trip_through_jsonl(tmp_path):
    from components.datasets import synthetic_items, write_items

    items = synthetic_items(4, seed=9)
    write_items(items, tmp_path / "new.jsonl")
    back = load_items("synthetic", tmp_path / "new.jsonl")
    assert back == items and back[0].meta["distractor_answers"] == items[0].meta["distractor_answers"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answers": ["a"], "candidates": ["x"], "gold_ids": [2]}\n')
    with pytest.raises(DatasetError, match="record 0: field 'gold_ids'"):
        load_items("synthetic", bad)


# --------------------------------------------------------------------------- bad input


def _write(path: Path, records) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def _wiki_record(i: int) -> dict:
    cands = [f"Fact {j} about thing {i}." for j in range(10)]
    return {
        "question": f"Q{i}?",
        "answers": [f"A{i}"],
        "ctxs_candidate": cands,
        "ctxs_gt": cands[:2],
    }


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="not found.*nope.json"):
        load_2wiki(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("name", "text"),
    [("broken.json", '[{"question": "a",'), ("broken.jsonl", '{"q": 1}\n{oops\n')],
)
def test_malformed_json(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=name):
        load_gsm8k(path)


def test_record_missing_field_names_file_and_index(tmp_path):
    records = [_wiki_record(i) for i in range(4)]
    del records[2]["ctxs_gt"]
    path = _write(tmp_path / "wiki_bad.json", records)
    with pytest.raises(DatasetError) as err:
        load_2wiki(path)
    msg = str(err.value)
    assert "wiki_bad.json" in msg and "record 2" in msg and "ctxs_gt" in msg


def test_stringified_and_mixed_fields(tmp_path):
    records = [_wiki_record(i) for i in range(3)]
    # The AgentTTS files may store lists as Python reprs; here one record does, the others do not.
    records[1] = {k: (v if k == "question" else repr(v)) for k, v in records[1].items()}
    items = load_2wiki(_write(tmp_path / "mixed.json", records))
    assert [it.gold_ids for it in items] == [(1, 2)] * 3
    assert items[1].answers == ("A1",)
    assert ast.literal_eval(records[1]["answers"]) == ["A1"]


def test_2wiki_gold_not_among_candidates(tmp_path):
    records = [_wiki_record(0), _wiki_record(1)]
    records[1]["ctxs_gt"] = ["A sentence that is not a candidate."]
    with pytest.raises(DatasetError, match=r"gold\.json.*record 1"):
        load_2wiki(_write(tmp_path / "gold.json", records))
    records[1]["ctxs_gt"].append(records[1]["ctxs_candidate"][4])  # one match is enough
    assert load_2wiki(_write(tmp_path / "gold.json", records))[1].gold_ids == (5,)


def test_gsm8k_without_marker(tmp_path):
    path = tmp_path / "g.jsonl"
    lines = [
        {"question": "1+1?", "answer": "2\n#### 2"},
        {"question": "2+2?", "answer": "4"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"g\.jsonl.*record 1.*####"):
        load_gsm8k(path)


def test_cwq_bad_triple(tmp_path):
    records = [
        {"ID": "a", "question": "q?", "answer": ["x"], "gt_triples": [["h", "r", "t"]]},
        {"ID": "b", "question": "q?", "answer": "['y']", "gt_triples": "[['h', 'r']]"},
    ]
    with pytest.raises(DatasetError, match=r"c\.json.*record 1.*triple"):
        load_cwq(_write(tmp_path / "c.json", records))


# --------------------------------------------------------------------------- synthetic


def test_synthetic_deterministic():
    a = synthetic_items(20, seed=3)
    assert a == synthetic_items(20, seed=3)
    assert [x.meta for x in a] == [x.meta for x in synthetic_items(20, seed=3)]
    assert a[:5] == synthetic_items(5, seed=3)
    b = synthetic_items(20, seed=4)
    assert [x.question for x in a] != [x.question for x in b]


def test_synthetic_shape():
    items = synthetic_items(50, seed=0)
    _check_common(items, 50)
    words = []
    for it in items:
        assert len(it.candidates) == 100 and len(set(it.candidates)) == 100
        assert 2 <= len(it.gold_ids) <= 6
        assert it.meta["hops"] == len(it.gold_ids)
        assert 2 <= len(it.answers) <= 3
        assert len(it.meta["distractor_answers"]) == 5
        assert it.question.endswith("?")
        # the answer entity closes the chain, so it appears in a gold fact
        assert any(it.answers[0] in f for f in it.gold_facts)
        words += [len(c.split()) for c in it.candidates]
    assert 15 <= sum(words) / len(words) <= 25
    assert {len(it.gold_ids) for it in items} == {2, 3, 4, 5, 6}


def test_synthetic_options():
    items = synthetic_items(5, seed=1, n_candidates=20, min_gold=3, max_gold=3)
    assert all(len(it.candidates) == 20 and len(it.gold_ids) == 3 for it in items)
    with pytest.raises(ValueError):
        synthetic_items(1, seed=0, min_gold=4, max_gold=2)


def test_the_cwq_task_reads_a_real_cwq_file_with_its_loader():
    # the README's dataset table: task=cwq task.data.format=cwq data.path=FILE (default: synthetic items)
    from flows.build import build
    from flows.config import compose

    ctx = build(compose(["task=cwq", "task.data.format=cwq", f"data.path={_data(CWQ)}"]), with_data=True)
    assert len(ctx.train) == 50 and all(it.gold_ids for it in ctx.train)
    assert {it.id for it in ctx.train} <= {it.id for it in load_cwq(_data(CWQ))}
