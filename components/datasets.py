"""Dataset loaders (2WikiMultiHopQA, HotpotQA, GSM8K, CWQ) and a seeded synthetic multi-hop generator.

Every loader returns ``list[Item]`` and fills ``meta["distractor_answers"]``: plausible wrong answers
the simulator uses for wrong samples. Bad input raises ``DatasetError`` naming the file and record.
"""

from __future__ import annotations

import ast
import json
import random
import tempfile
from collections.abc import Callable
from pathlib import Path

from components.errors import DatasetError, UnknownNameError
from components.items import Item
from components.metrics import normalize_answer

N_DISTRACTOR_ANSWERS = 5


# --------------------------------------------------------------------------- reading


def _read_records(path: str | Path) -> list[dict]:
    """The file's records: via Hugging Face ``datasets``, falling back to the stdlib json reader."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p.name for p in path.iterdir() if p.suffix in (".json", ".jsonl"))[:5]
        raise DatasetError(f"data.path {path} is a folder; give one file in it, e.g. {files or 'FILE.json'}")
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    import datasets

    datasets.disable_progress_bars()
    verbosity = datasets.logging.get_verbosity()
    # datasets logs its own parse failures; the stdlib fallback reports them with file and line.
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    try:
        # A throwaway cache dir keeps Arrow files out of the user's home directory.
        with tempfile.TemporaryDirectory(prefix="agenttts-ds-") as cache:
            ds = datasets.load_dataset(
                "json",
                data_files=str(path),
                split="train",
                cache_dir=cache,
                keep_in_memory=True,
            )
            return ds.to_list()
    except Exception:  # noqa: BLE001 - datasets rejects some mixed-type fields; the stdlib does not
        return _read_json_stdlib(path)
    finally:
        datasets.logging.set_verbosity(verbosity)


def _read_json_stdlib(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(
            f"dataset file {path} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); save it as UTF-8"
        ) from None
    if path.suffix == ".jsonl":
        records = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DatasetError(f"dataset file {path}: line {lineno} is not valid JSON ({e.msg})") from None
        return records
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(f"dataset file {path} is not valid JSON: {e.msg} at line {e.lineno}") from None
    if not isinstance(data, list):
        raise DatasetError(f"dataset file {path}: expected a JSON list of records, got {type(data).__name__}")
    return data


class _Record:
    """Field access for one record that turns every problem into a DatasetError naming file and index."""

    def __init__(self, path: str | Path, index: int, rec: object):
        self.path, self.index = Path(path), index
        if not isinstance(rec, dict):
            raise self.error(f"expected an object, got {type(rec).__name__}")
        self.rec = rec

    def error(self, msg: str) -> DatasetError:
        return DatasetError(f"dataset file {self.path.name} ({self.path}): record {self.index}: {msg}")

    def get(self, key: str):
        # datasets fills a field absent from some records with None, so None also counts as missing.
        value = self.rec.get(key)
        if value is None:
            raise self.error(f"missing required field '{key}'")
        return value

    def structured(self, key: str, kind: type):
        """A list/dict field, parsing it with ``ast.literal_eval`` when it is stored as a string."""
        value = self.get(key)
        if isinstance(value, str):
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise self.error(f"field '{key}' is a string that does not parse as a {kind.__name__}") from None
        if kind is list and isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, kind):
            raise self.error(f"field '{key}' should be a {kind.__name__}, got {type(value).__name__}")
        return value

    def text(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"field '{key}' should be a non-empty string")
        return value.strip()

    def answers(self, values: list) -> tuple[str, ...]:
        # Real files repeat aliases (2wiki often lists the gold twice); keep first occurrences.
        if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
            raise self.error(f"gold answers must be strings (or numbers), got {values!r}")
        out = tuple(dict.fromkeys(str(v).strip() for v in values if str(v).strip()))
        if not out:
            raise self.error("no non-empty gold answer")
        return out

    def item_id(self, name: str) -> str:
        for key in ("id", "_id", "ID"):
            if self.rec.get(key) not in (None, ""):
                return str(self.rec[key])
        return f"{name}{self.index}" if name.endswith("#") else f"{name}-{self.index}"


def _other_answers(golds: list[tuple[str, ...]], i: int, k: int = N_DISTRACTOR_ANSWERS) -> tuple[str, ...]:
    """Gold answers of the next items in file order (cyclic) that differ from item i's aliases."""
    own = {normalize_answer(a) for a in golds[i]}
    out: list[str] = []
    # A wrong answer to a yes/no question is the other polarity, whatever the other items say.
    if own & {"yes", "no"}:
        out.append("no" if "yes" in own else "yes")
    seen = own | {normalize_answer(a) for a in out}
    for step in range(1, len(golds)):
        if len(out) >= k:
            break
        cand = golds[(i + step) % len(golds)][0]
        if normalize_answer(cand) not in seen:
            seen.add(normalize_answer(cand))
            out.append(cand)
    return tuple(out)


def _with_distractors(items: list[Item]) -> list[Item]:
    golds = [it.answers for it in items]
    for i, it in enumerate(items):
        it.meta["distractor_answers"] = _other_answers(golds, i)
    return items


# --------------------------------------------------------------------------- loaders


def load_2wiki(path: str | Path) -> list[Item]:
    """2WikiMultiHopQA (AgentTTS ``tts_test.json``): candidates are ``ctxs_candidate``, gold ids the
    positions of the ``ctxs_gt`` sentences among them (unmatched gold sentences are dropped).

    >>> load_2wiki("/nonexistent.json")
    Traceback (most recent call last):
    ...
    components.errors.DatasetError: dataset file not found: /nonexistent.json
    """
    items = []
    for i, raw in enumerate(_read_records(path)):
        r = _Record(path, i, raw)
        candidates = tuple(str(c).strip() for c in r.structured("ctxs_candidate", list))
        position: dict[str, int] = {}
        for pos, c in enumerate(candidates, 1):
            position.setdefault(c, pos)
        gold_sentences = [str(g).strip() for g in r.structured("ctxs_gt", list)]
        gold_ids = tuple(dict.fromkeys(position[g] for g in gold_sentences if g in position))
        if not gold_ids:
            raise r.error("none of the 'ctxs_gt' sentences occurs in 'ctxs_candidate'")
        items.append(
            Item(
                id=r.item_id("2wiki"),
                question=r.text("question"),
                answers=r.answers(r.structured("answers", list)),
                candidates=candidates,
                gold_ids=gold_ids,
                meta={"n_gold_listed": len(gold_sentences)},
            )
        )
    return _with_distractors(items)


def _pairs(r: _Record, key: str, first: str, second: str) -> list[tuple]:
    """HotpotQA's ``{first: [...], second: [...]}`` (HF layout) or ``[[a, b], ...]`` (original layout)."""
    value = r.get(key)
    if isinstance(value, str):
        value = r.structured(key, dict if value.lstrip().startswith("{") else list)
    if isinstance(value, dict):
        if first not in value or second not in value:
            raise r.error(f"field '{key}' needs keys '{first}' and '{second}'")
        if len(value[first]) != len(value[second]):
            raise r.error(f"field '{key}': {len(value[first])} '{first}' entries but {len(value[second])} '{second}'")
        return list(zip(value[first], value[second], strict=True))
    if isinstance(value, list) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
        return [tuple(p) for p in value]
    raise r.error(f"field '{key}' should be a dict of '{first}'/'{second}' lists or a list of pairs")


def load_hotpotqa(path: str | Path) -> list[Item]:
    """HotpotQA distractor setting: candidates are every context sentence as ``"Title: sentence"``,
    gold ids the ``supporting_facts`` (title, sent_id) pairs."""
    items = []
    for i, raw in enumerate(_read_records(path)):
        r = _Record(path, i, raw)
        candidates: list[str] = []
        position: dict[tuple[str, int], int] = {}
        for title, sentences in _pairs(r, "context", "title", "sentences"):
            if not isinstance(sentences, list | tuple):
                raise r.error(
                    f"field 'context': the sentences of '{title}' should be a list, got {type(sentences).__name__}"
                )
            for sid, sent in enumerate(sentences):
                if str(sent).strip():  # some paragraphs carry empty sentence slots
                    candidates.append(f"{title}: {str(sent).strip()}")
                    position.setdefault((title, sid), len(candidates))
        facts = _pairs(r, "supporting_facts", "title", "sent_id")
        if not all(isinstance(sid, int) and not isinstance(sid, bool) for _, sid in facts):
            raise r.error(
                f"field 'supporting_facts': every sent_id should be an integer, got {[sid for _, sid in facts]!r}"
            )
        gold_ids = tuple(dict.fromkeys(position[(t, int(s))] for t, s in facts if (t, int(s)) in position))
        if not gold_ids:
            raise r.error("none of the 'supporting_facts' points at a context sentence")
        answer = r.get("answer")
        items.append(
            Item(
                id=r.item_id("hotpotqa"),
                question=r.text("question"),
                answers=r.answers(answer if isinstance(answer, list) else [answer]),
                candidates=tuple(candidates),
                gold_ids=gold_ids,
                meta={k: raw[k] for k in ("type", "level") if raw.get(k) is not None},
            )
        )
    return _with_distractors(items)


def _fmt_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _numeric_distractors(gold: str) -> tuple[str, ...]:
    """gold±1, gold*2, round(gold/2), gold+10: the near misses arithmetic slips produce."""
    try:
        g = float(gold)
    except ValueError:
        return ()
    out = dict.fromkeys(_fmt_number(x) for x in (g + 1, g - 1, g * 2, round(g / 2), g + 10))
    out.pop(_fmt_number(g), None)
    return tuple(out)


def load_gsm8k(path: str | Path) -> list[Item]:
    """GSM8K jsonl: the gold answer is the number after ``####`` (commas removed); the solution
    text is kept in ``meta["solution"]``."""
    items = []
    for i, raw in enumerate(_read_records(path)):
        r = _Record(path, i, raw)
        solution = r.text("answer")
        if "####" not in solution:
            raise r.error("field 'answer' has no '####' gold marker")
        gold = solution.rsplit("####", 1)[1].strip().replace(",", "")
        if not gold:
            raise r.error("field 'answer' has nothing after '####'")
        try:
            float(gold)
        except ValueError:
            # the task's metric compares numbers: a word here could never be matched
            raise r.error(f"field 'answer': the gold after '####' should be a number, got {gold!r}") from None
        items.append(
            Item(
                id=r.item_id("gsm8k-main-test-#"),  # ZeroEval's ids, so recorded outputs line up
                question=r.text("question"),
                answers=(gold,),
                meta={
                    "solution": solution,
                    "distractor_answers": _numeric_distractors(gold),
                },
            )
        )
    return items


def load_cwq(path: str | Path, n_candidates: int = 100, seed: int = 0) -> list[Item]:
    """ComplexWebQuestions with gold triples: candidates are the item's ``gt_triples`` as ``"(h, r, t)"``
    plus triples of other items up to ``n_candidates`` (never fewer than the gold), shuffled by ``seed``."""
    rows = []
    for i, raw in enumerate(_read_records(path)):
        r = _Record(path, i, raw)
        triples = []
        for j, t in enumerate(r.structured("gt_triples", list)):
            if not isinstance(t, (list, tuple)) or len(t) != 3:
                raise r.error(f"'gt_triples' entry {j} is not a [head, relation, tail] triple")
            triples.append("({}, {}, {})".format(*(str(x).strip() for x in t)))
        if not triples:
            raise r.error("field 'gt_triples' is empty")
        rows.append(
            (
                r,
                r.text("question"),
                r.answers(r.structured("answer", list)),
                tuple(dict.fromkeys(triples)),
            )
        )

    pool = list(dict.fromkeys(t for *_, gold in rows for t in gold))
    items = []
    for r, question, answers, gold in rows:
        rid = r.item_id("cwq")
        rng = random.Random(f"cwq:{seed}:{rid}")
        need = max(0, n_candidates - len(gold))
        gold_set = set(gold)
        # Oversample by len(gold) so that dropping this item's own triples still leaves enough.
        picked = rng.sample(pool, min(len(pool), need + len(gold)))
        distractors = [t for t in picked if t not in gold_set][:need]
        candidates = list(gold) + distractors
        rng.shuffle(candidates)
        items.append(
            Item(
                id=rid,
                question=question,
                answers=answers,
                candidates=tuple(candidates),
                gold_ids=tuple(sorted(candidates.index(t) + 1 for t in gold)),
                meta={k: r.rec[k] for k in ("compositionality_type",) if r.rec.get(k) is not None},
            )
        )
    return _with_distractors(items)


def load_synthetic(path: str | Path) -> list[Item]:
    """Items of the synthetic task as JSONL, one object per line: ``question``, ``answers`` (list),
    ``candidates`` (list of facts), ``gold_ids`` (1-based), optional ``id`` and ``distractor_answers``
    (the format ``write_items`` writes; e.g. new inputs for ``agenttts run``)."""
    items = []
    for i, raw in enumerate(_read_records(path)):
        r = _Record(path, i, raw)
        cands = tuple(str(c) for c in r.structured("candidates", list))
        gold = r.structured("gold_ids", list)
        if not cands:
            raise r.error("field 'candidates' is empty: a select stage needs something to select")
        if (
            not gold
            or len(set(gold)) < len(gold)
            or not all(isinstance(g, int) and not isinstance(g, bool) and 1 <= g <= len(cands) for g in gold)
        ):
            raise r.error(
                f"field 'gold_ids' must hold distinct 1-based indices into the {len(cands)} candidates, got {gold!r}"
            )
        wrong = raw.get("distractor_answers") or []
        if not isinstance(wrong, list | tuple) or not all(isinstance(w, str) for w in wrong):
            raise r.error(f"field 'distractor_answers' should be a list of strings, got {wrong!r}")
        items.append(
            Item(
                id=r.item_id("synthetic"),
                question=r.text("question"),
                answers=r.answers(r.structured("answers", list)),
                candidates=cands,
                gold_ids=tuple(gold),
                meta={"distractor_answers": tuple(raw.get("distractor_answers") or ())},
            )
        )
    return items


def write_items(items: list[Item], path: str | Path) -> None:
    """Write items as the synthetic JSONL format (``load_synthetic`` reads it back)."""
    with open(path, "w", encoding="utf-8") as fh:
        for it in items:
            rec = {"id": it.id, "question": it.question, "answers": list(it.answers)}
            rec.update(candidates=list(it.candidates), gold_ids=list(it.gold_ids))
            rec["distractor_answers"] = list(it.meta.get("distractor_answers") or ())
            fh.write(json.dumps(rec) + "\n")


LOADERS: dict[str, Callable[..., list[Item]]] = {
    "synthetic": load_synthetic,
    "2wiki": load_2wiki,
    "hotpotqa": load_hotpotqa,
    "gsm8k": load_gsm8k,
    "cwq": load_cwq,
}


def load_items(fmt: str, path: str | Path, **kw) -> list[Item]:
    """Load a dataset file with the loader registered as ``fmt`` (see ``LOADERS``)."""
    if fmt not in LOADERS:
        raise UnknownNameError(f"unknown dataset format '{fmt}'; known: {', '.join(sorted(LOADERS))}")
    items = LOADERS[fmt](path, **kw)
    # ids key predictions, the sample bank and the train/test overlap check: a repeat would merge questions
    seen: dict[str, int] = {}
    for n, it in enumerate(items):
        if it.id in seen:
            raise DatasetError(
                f"dataset file {path}: records {seen[it.id]} and {n} share the id {it.id!r}; ids must differ"
            )
        seen[it.id] = n
    return items


# --------------------------------------------------------------------------- synthetic

# fmt: off
_SYLLABLES = (
    "ka", "ro", "vel", "mi", "dra", "tor", "len", "sa", "bri", "nor", "el", "quin", "ta",
    "mor", "zen", "li", "ga", "ther", "os", "pa", "vin", "du", "rha", "se", "lo", "mar",
    "fen", "ki", "das", "ul", "bo", "rin", "ca", "ves", "tam", "or", "hel", "ny",
)
# fmt: on
_CITY_SUFFIX = ("", "", "ton", "burg", "ford", "mouth", "vale")
_COUNTRY_SUFFIX = ("ia", "land", "ora", "istan", "ea")
_COMPANY_SUFFIX = ("Industries", "Holdings", "Systems", "Works", "Group")
_FILM_WORD = (
    "Silent",
    "Last",
    "Broken",
    "Golden",
    "Hidden",
    "Distant",
    "Crimson",
    "Quiet",
)

# relation: (subject type, object type, noun phrase, question, sentence templates)
_RELATIONS: dict[str, tuple[str, str, str, str, tuple[str, ...]]] = {
    "directed_by": (
        "film",
        "person",
        "the director of {x}",
        "Who directed {x}?",
        (
            "{s} is a {year} drama film directed by {o}, shot on location over two summers with a largely unknown cast.",
            "The {year} feature film {s} was directed by {o}, who also co-wrote its screenplay with a longtime collaborator.",
        ),
    ),
    "starring": (
        "film",
        "person",
        "the lead actor of {x}",
        "Who played the lead role in {x}?",
        (
            "{s} stars {o} in the leading role as a retired sailor who returns home to settle an old family debt.",
            "Critics praised {o} for the lead performance in {s}, a slow and quiet story set in a fishing village.",
        ),
    ),
    "born_in": (
        "person",
        "city",
        "the birthplace of {x}",
        "Where was {x} born?",
        (
            "{s} was born in {o}, where they spent most of their childhood before moving away to study music.",
            "Records show that {s} was born in the city of {o} and lived there until the age of nineteen.",
        ),
    ),
    "mother": (
        "person",
        "person",
        "the mother of {x}",
        "Who is the mother of {x}?",
        (
            "{s} is the child of {o}, a stage actress who later became a respected theatre director and teacher.",
            "According to family records, the mother of {s} was {o}, who worked for many years as a schoolteacher.",
        ),
    ),
    "spouse": (
        "person",
        "person",
        "the spouse of {x}",
        "Who is the spouse of {x}?",
        (
            "{s} married {o} in a small private ceremony, and the couple later settled in a quiet coastal town.",
            "{s} has been married to {o} since the late eighties; the two met while working at a local newspaper.",
        ),
    ),
    "founded": (
        "person",
        "company",
        "the company founded by {x}",
        "Which company was founded by {x}?",
        (
            "In the early nineties {s} founded {o}, which grew from a small workshop into a large regional manufacturer.",
            "{o} was founded by {s}, who ran the firm for two decades before handing it to a longtime partner.",
        ),
    ),
    "educated_at": (
        "person",
        "university",
        "the university attended by {x}",
        "Which university did {x} attend?",
        (
            "{s} studied at {o}, graduating with honours in history before starting a long career in public service.",
            "After finishing school, {s} enrolled at {o} and completed a degree in economics and political philosophy.",
        ),
    ),
    "located_in": (
        "city",
        "country",
        "the country of {x}",
        "In which country is {x} located?",
        (
            "{s} is a mid-sized city in {o}, known for its old harbour, its covered markets and a summer festival.",
            "The city of {s} lies in the northern part of {o}, close to the border and surrounded by farmland.",
        ),
    ),
    "head_of_state": (
        "country",
        "person",
        "the head of state of {x}",
        "Who is the head of state of {x}?",
        (
            "The current head of state of {s} is {o}, who took office after a long and closely contested election.",
            "{o} serves as the head of state of {s}, having been sworn in at a ceremony in the capital.",
        ),
    ),
    "headquartered_in": (
        "company",
        "city",
        "the headquarters city of {x}",
        "In which city is {x} headquartered?",
        (
            "{s} has its headquarters in {o}, where it employs several thousand people across offices and warehouses.",
            "The company {s} moved its head office to {o} in the late seventies to be closer to its suppliers.",
        ),
    ),
    "university_in": (
        "university",
        "city",
        "the home city of {x}",
        "In which city is {x} located?",
        (
            "{s} is a public research university in {o}, founded in the nineteenth century and known for engineering.",
            "The main campus of {s} sits in the old town of {o}, next to the river and the central library.",
        ),
    ),
}
_FROM: dict[str, list[str]] = {}
for _rel, (_src, *_rest) in _RELATIONS.items():
    _FROM.setdefault(_src, []).append(_rel)
_START_PHRASE = {"film": "the film {x}", "company": "the company {x}", "person": "{x}"}


class _World:
    """Invented entities and facts for one synthetic item; at most one object per (subject, relation)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.kind: dict[str, str] = {}
        self.aliases: dict[str, tuple[str, ...]] = {}
        self.facts: dict[tuple[str, str], str] = {}
        self.year: dict[str, int] = {}

    def _word(self, lo: int = 2, hi: int = 3) -> str:
        return "".join(self.rng.choice(_SYLLABLES) for _ in range(self.rng.randint(lo, hi))).capitalize()

    def new(self, kind: str) -> str:
        while True:
            w = self._word()
            if kind == "person":
                first, last = self._word(2, 2), w
                name, aliases = f"{first} {last}", (f"{first[0]}. {last}", last)
            elif kind == "city":
                name = w + self.rng.choice(_CITY_SUFFIX)
                aliases = (f"{name} City",)
            elif kind == "country":
                name = w + self.rng.choice(_COUNTRY_SUFFIX)
                aliases = (f"Republic of {name}",)
            elif kind == "company":
                name = f"{w} {self.rng.choice(_COMPANY_SUFFIX)}"
                aliases = (w,)
            elif kind == "university":
                name = f"{w} Institute of Technology"
                aliases = (f"{w} Institute", f"{w[0]}IT")
            else:  # film
                name = f"The {self.rng.choice(_FILM_WORD)} {w}"
                aliases = (name[4:],)
            if name not in self.kind:
                self.kind[name], self.aliases[name] = kind, aliases
                self.year[name] = self.rng.randint(1950, 2015)
                return name

    def add(self, subject: str, rel: str, obj: str) -> str:
        self.facts[(subject, rel)] = obj
        if rel == "spouse":  # symmetric: the spouse must not get a second spouse elsewhere
            self.facts[(obj, rel)] = subject
        tmpl = self.rng.choice(_RELATIONS[rel][4])
        return tmpl.format(s=subject, o=obj, year=self.year[subject])

    def free_relations(self, subject: str) -> list[str]:
        return [r for r in _FROM[self.kind[subject]] if (subject, r) not in self.facts]

    def walk(self, start: str, rels: list[str]) -> tuple[list[str], list[str]]:
        """Facts along ``rels`` from ``start``, each to a fresh entity, and the entities visited."""
        sentences, path = [], [start]
        for rel in rels:
            path.append(self.new(_RELATIONS[rel][1]))
            sentences.append(self.add(path[-2], rel, path[-1]))
        return sentences, path


def _chain_relations(rng: random.Random, start_kind: str, hops: int) -> list[str]:
    rels, kind = [], start_kind
    for _ in range(hops):
        options = [r for r in _FROM[kind] if not (rels and rels[-1] == r == "spouse")]
        rel = rng.choice(options)
        rels.append(rel)
        kind = _RELATIONS[rel][1]
    return rels


def _synthetic_item(rng: random.Random, item_id: str, n_candidates: int, min_gold: int, max_gold: int) -> Item:
    world = _World(rng)
    hops = rng.randint(min_gold, max_gold)
    start_kind = rng.choice(("film", "film", "film", "person", "person", "company"))
    rels = _chain_relations(rng, start_kind, hops)

    gold, chain = world.walk(world.new(start_kind), rels)
    answer = chain[-1]

    phrase = _START_PHRASE[start_kind].format(x=chain[0])
    for rel in rels[:-1]:
        phrase = _RELATIONS[rel][2].format(x=phrase)
    question = _RELATIONS[rels[-1]][3].format(x=phrase)

    need = max(0, n_candidates - len(gold))
    distractors: list[str] = []
    # Hard distractors first: decoy chains with the same relations (their ends are plausible
    # wrong answers), then other facts about the chain's own entities.
    decoy_ends = []
    for _ in range(3):
        sentences, path = world.walk(world.new(start_kind), rels)
        distractors += sentences
        decoy_ends.append(path[-1])
    for ent in chain:
        for rel in rng.sample(world.free_relations(ent), min(2, len(world.free_relations(ent)))):
            obj = world.new(_RELATIONS[rel][1])
            distractors.append(world.add(ent, rel, obj))
    attempts = 0
    while len(distractors) < need and attempts < 50 * n_candidates:
        attempts += 1
        subject = rng.choice(list(world.kind)) if rng.random() < 0.6 else world.new(rng.choice(list(_FROM)))
        free = world.free_relations(subject)
        if not free:
            continue
        rel = rng.choice(free)
        obj_kind = _RELATIONS[rel][1]
        same_kind = [e for e, k in world.kind.items() if k == obj_kind and e != subject]
        # Reusing non-person objects links facts into a graph; person links would risk family cycles.
        if obj_kind != "person" and same_kind and rng.random() < 0.4:
            obj = rng.choice(same_kind)
        else:
            obj = world.new(obj_kind)
        distractors.append(world.add(subject, rel, obj))
    distractors = list(dict.fromkeys(d for d in distractors if d not in gold))[:need]

    candidates = gold + distractors
    rng.shuffle(candidates)
    gold_ids = tuple(sorted(candidates.index(g) + 1 for g in gold))

    answer_kind = world.kind[answer]
    wrong = list(dict.fromkeys(decoy_ends + [e for e, k in world.kind.items() if k == answer_kind]))
    wrong = [e for e in wrong if e != answer]
    while len(wrong) < N_DISTRACTOR_ANSWERS:
        wrong.append(world.new(answer_kind))
    return Item(
        id=item_id,
        question=question,
        answers=(answer, *world.aliases[answer][: rng.randint(1, 2)]),
        candidates=tuple(candidates),
        gold_ids=gold_ids,
        meta={
            "hops": hops,
            "relations": tuple(rels),
            "distractor_answers": tuple(wrong[:N_DISTRACTOR_ANSWERS]),
            "synthetic": True,
        },
    )


def synthetic_items(n: int, seed: int, n_candidates: int = 100, min_gold: int = 2, max_gold: int = 6) -> list[Item]:
    """``n`` invented multi-hop questions shaped like 2Wiki: a chain of ``min_gold..max_gold`` gold fact
    sentences among ``n_candidates`` shuffled candidates (decoy chains and facts about the same entities).

    Item ``i`` depends only on ``(seed, i)``, so a longer list extends a shorter one.

    >>> a = synthetic_items(2, seed=7)
    >>> a == synthetic_items(2, seed=7), len(a[0].candidates), 2 <= len(a[0].gold_ids) <= 6
    (True, 100, True)
    """
    if not 1 <= min_gold <= max_gold:
        raise ValueError(f"need 1 <= min_gold <= max_gold, got {min_gold}, {max_gold}")
    return [
        _synthetic_item(
            random.Random(f"synthetic:{seed}:{i}"),
            f"synth-{seed}-{i}",
            n_candidates,
            min_gold,
            max_gold,
        )
        for i in range(n)
    ]
