"""The simulated backend: LLMs of given sizes, simulated at the level of the outputs the pipeline parses.

Nothing here runs a model. :class:`SimWorld` turns a scenario (:mod:`components.scenario`) into
deterministic *simulated* samples, so the real fusion, scoring, cost and caching code runs unchanged.

Streams. Sampling request samples ``start .. start+n-1`` come from the stream of
(world seed, item id, stage, model, upstream text): sample i is the same however the stream is split
into requests. Seeds come from blake2b (never Python's ``hash()``), so results are identical across
processes. Decoding parameters (temperature ...) are ignored.

``select`` stages (a sample is ``format_ids(ids)``). Per item and model, each gold fact g has a
per-sample selection probability ``p_g = sigmoid(logit(recall) + heterogeneity·z_g)``, with z_g a
standard normal per (item, fact), correlated 0.7 across the stage's models (hard facts are hard
for everyone). Each sample also picks Poisson(``false_positives``) distractors (at most 8), each one of the
item's 3 most confusable distractors (shared by all models) with probability ``fp_consistency``, else
uniform over all distractors; the Poisson rate varies across items (log-normal, σ = heterogeneity/2,
mean ``false_positives``). An empty selection becomes one id. Select stages ignore upstream.

``answer`` stages (a sample is ``"Answer: <text>"``). Upstream quality q is 1.0 for the first stage;
after a ``select`` stage, the retrieval F1 of ``parse_ids(upstream)`` against ``item.gold_ids``; after
an ``answer`` stage, 1.0 if the upstream answer is correct else 0.0; a missing upstream is 0.0. A
sample is correct with probability ``sigmoid(logit(skill) + spread·z − upstream_weight·(1 − q))``,
z a standard normal per item (correlated 0.7 across the stage's models). A wrong sample is the item's most
plausible wrong answer with probability ``wrong_concentration·q²``, otherwise one of 59 others
uniformly: poor context disperses the guesses, so with poor upstream the correct answer emerges from
the vote only slowly (the curve keeps rising at 90 samples) instead of losing to one wrong answer.
Wrong answers are ``item.meta["distractor_answers"]`` first (the first is the most plausible), then
invented names (numbers near the gold answer when it is a number). After an ``answer`` stage, "correct" means matching ``item.answers``.

LLM fusion (a request with ``candidates``): with probability ``1 / (1 + fusion_decay·(n − 1))`` the
fuser returns the plurality answer of the n candidates (ties: first seen), otherwise one of the
distinct candidate answers uniformly at random (fusing many candidates is harder; small models get a
larger ``fusion_decay``). Deterministic in (seed, item, stage, model, candidates).

Token counts (simulated): prompt = declared prompt × a per-(item, stage) factor in [0.8, 1.2] (fusion
calls add declared output tokens per candidate); output = declared output × a factor in [0.5, 1.5].
"""

from __future__ import annotations

import hashlib
import itertools
import math

import numpy as np

from components.backends.base import Generation, Request
from components.errors import ConfigError
from components.fusion import format_ids, id_vote_merge
from components.metrics import exact_match, normalize_answer, retrieval_prf
from components.parsers import parse_answer, parse_ids
from components.scenario import Scenario, ScenarioStage, SimModel, load_scenario

#: The simulator's behaviour version. Bump it with any change that alters a simulated sample, fusion
#: or token count: it salts the sample bank's keys (``SimBackend.world``) and the bench's oracle
#: cache, so a bank written by an older simulator is never replayed as this one's samples.
SIM_VERSION = 2
SHARED = 0.7  # correlation of an item's difficulty between the models of a stage
N_CONFUSABLE = 3  # distractors a select model keeps confusing with gold facts
MAX_FP = 8  # cap on false positives per select sample
N_WRONG = 60  # distinct wrong answers per item (1 plausible + 59 others)
_SYLLABLES = ("ka", "lo", "mi", "ren", "tor", "vel", "sha", "dun", "bri", "os", "gar", "nel", "quin", "zu", "fa", "hel")


def _seed(*parts: object) -> int:
    """A 64-bit seed from the parts, stable across processes and platforms."""
    text = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def _hasher(*parts: object):
    """The blake2b state of :func:`_seed` after ``parts`` and one more separator: updating it with a
    last part's text and taking the digest gives ``_seed(*parts, last)``."""
    h = hashlib.blake2b(digest_size=8)
    h.update(("\x1f".join(str(p) for p in parts) + "\x1f").encode("utf-8"))
    return h


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(_seed(*parts))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


# Invented wrong answers are "Two-syllable Three-syllable" names ("Kalo Renvelmi"): letters and one
# space only, so normalize_answer(name) == name.lower(); or plain numbers (also their own normal form).
_WORD2 = ["".join(p).capitalize() for p in itertools.product(_SYLLABLES, repeat=2)]
_WORD3 = ["".join(p).capitalize() for p in itertools.product(_SYLLABLES, repeat=3)]


def _invented_names(item_id: str, count: int, gold: str = "") -> list[str]:
    """Deterministic wrong answers for an item: numbers near a numeric gold answer (so number
    parsers see distinct wrong numbers), else pronounceable names."""
    r = _rng("wrong-names", item_id)
    try:
        g = float(gold.replace(",", ""))
    except ValueError:
        first, last = r.integers(0, len(_WORD2), count), r.integers(0, len(_WORD3), count)
        return [f"{_WORD2[i]} {_WORD3[j]}" for i, j in zip(first.tolist(), last.tolist(), strict=True)]
    offsets = r.choice(np.arange(1, 4 * count + 1), count, replace=False) * r.choice([-1, 1], count)
    return [f"{g + d:g}" if g.is_integer() else f"{g + d:.2f}" for d in offsets.tolist()]


class SimWorld:
    """A simulated backend over one scenario: deterministic samples, fusions and token counts.

    Args:
        scenario: a :class:`Scenario`, or anything :func:`load_scenario` accepts (path, name, dict).

    >>> from components.items import Item
    >>> w = SimWorld("2wiki")
    >>> item = Item("q1", "Who?", ("Ada",), tuple(f"fact {i}" for i in range(1, 21)), (2, 7))
    >>> g = w.generate([Request("Qwen2.5-72B", "", n=2, stage="retrieval", item=item)])[0]
    >>> g.texts[0].startswith("Selected references:"), len(g.output_tokens)
    (True, 2)
    """

    name = "sim"
    simulated = True

    def __init__(self, scenario: Scenario | str | dict, replica: int = 0):
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.seed = self.scenario.seed
        # replica r > 0 redraws every sample and fusion stream of the same world (items' difficulties,
        # distractors and token factors unchanged): repeated measurements of one allocation
        self.replica = int(replica)
        self._streams = (self.seed,) if self.replica == 0 else (self.seed, f"replica{self.replica}")
        self._latent: dict[tuple, object] = {}  # per (stage, model, item) latent state
        self._texts: dict[str, np.ndarray] = {}  # per item: correct and wrong answer texts
        self._norm: dict[str, str] = {}  # candidate text -> normalized answer (fusion is hot)

    # ------------------------------------------------------------------ public
    def generate(self, requests: list[Request]) -> list[Generation]:
        """One Generation per request, in order (sampling or, with ``candidates``, fusion)."""
        return [self.generate_one(r) for r in requests]

    def generate_one(self, req: Request) -> Generation:
        """Samples ``req.start .. req.start+req.n-1`` of the request's stream, or one fusion."""
        if req.item is None:
            raise ConfigError(f"the simulated backend needs the item of each request (stage '{req.stage}')")
        stage = self.scenario.stage(req.stage)
        model = stage.model(req.model)
        if req.candidates:
            return self._fuse(req, stage, model)
        if req.n < 0 or req.start < 0:
            raise ConfigError(f"bad sample range start={req.start} n={req.n}")
        stream = _seed(*self._streams, req.item.id, stage.name, model.name, req.upstream)
        # One (start+n, K) draw with K fixed per stream: row i depends on i only (prefix property).
        if stage.kind == "select":
            texts, out_u = self._select(req, stage, model, stream)
        else:
            texts, out_u = self._answer(req, stage, model, stream)
        return Generation(
            texts=tuple(texts),
            prompt_tokens=self._prompt_tokens(req, stage),
            output_tokens=tuple(int(t) for t in np.rint(stage.output_tokens * (0.5 + out_u))),
        )

    def upstream_quality(self, req: Request) -> float:
        """The quality in [0, 1] of ``req.upstream`` for the request's item (see the module docstring)."""
        prev = self.scenario.previous(req.stage)
        if prev is None:
            return 1.0
        if req.upstream is None:
            return 0.0
        if prev.kind == "select":
            return retrieval_prf(parse_ids(req.upstream), req.item.gold_ids)[2]
        return exact_match(parse_answer(req.upstream), req.item.answers)

    # ------------------------------------------------------------- internals
    def _prompt_tokens(self, req: Request, stage: ScenarioStage) -> int:
        factor = 0.8 + 0.4 * _rng(self.seed, "prompt", stage.name, req.item.id).random()
        return int(round(stage.prompt_tokens * factor))

    def _select_latent(self, req: Request, stage: ScenarioStage, model: SimModel):
        key = (stage.name, model.name, req.item.id)
        if key not in self._latent:
            b = model.behaviour
            item = req.item
            gold = np.array(sorted(set(item.gold_ids)), dtype=np.int64)
            distractors = np.array(
                [i for i in range(1, len(item.candidates) + 1) if i not in set(item.gold_ids)], dtype=np.int64
            )
            shared = _rng(self.seed, "select", stage.name, item.id)
            z_shared = shared.standard_normal(len(gold))
            confusable = shared.permutation(distractors)[:N_CONFUSABLE] if len(distractors) else distractors
            own = _rng(self.seed, "select", stage.name, model.name, item.id).standard_normal(len(gold) + 1)
            z = SHARED * z_shared + math.sqrt(1 - SHARED**2) * own[:-1]
            p_gold = _sigmoid(_logit(b.recall) + b.heterogeneity * z)
            # Items differ in how many distractors look relevant (log-normal rate, mean preserved), so
            # a model that over-selects on an item does it in every sample and voting keeps those ids.
            sigma = b.heterogeneity / 2
            rate = max(b.false_positives * math.exp(sigma * own[-1] - sigma**2 / 2), 1e-12)
            k = np.arange(MAX_FP + 1)
            cdf = np.cumsum(np.exp(-rate + k * math.log(rate) - np.array([math.lgamma(i + 1) for i in k])))
            self._latent[key] = (gold, distractors, confusable, p_gold, cdf)
        return self._latent[key]

    def _select(self, req: Request, stage: ScenarioStage, model: SimModel, stream: int):
        gold, distractors, confusable, p_gold, cdf = self._select_latent(req, stage, model)
        b = model.behaviour
        g = len(gold)
        u = np.random.default_rng(stream).random((req.start + req.n, g + 2 * MAX_FP + 3))[req.start :]
        picked_gold = u[:, :g] < p_gold
        n_fp = np.minimum(np.searchsorted(cdf, u[:, g]), MAX_FP) if len(distractors) else np.zeros(len(u), int)
        slot_u = u[:, g + 1 : g + 1 + MAX_FP]
        which_u = u[:, g + 1 + MAX_FP : g + 1 + 2 * MAX_FP]
        if len(distractors):
            from_conf = confusable[np.minimum((which_u * len(confusable)).astype(int), len(confusable) - 1)]
            from_all = distractors[np.minimum((which_u * len(distractors)).astype(int), len(distractors) - 1)]
            fp_ids = np.where(slot_u < b.fp_consistency, from_conf, from_all)
        texts = []
        for r in range(len(u)):
            ids = set(gold[picked_gold[r]].tolist())
            if n_fp[r]:
                ids.update(fp_ids[r, : n_fp[r]].tolist())
            if not ids:  # a model always names something: its best gold guess, or a confusable one
                ids = {self._fallback_id(gold, confusable, p_gold, u[r, -2] < b.recall)}
            texts.append(format_ids(ids))
        return texts, u[:, -1]

    @staticmethod
    def _fallback_id(gold, confusable, p_gold, prefer_gold: bool) -> int:
        if len(gold) and (prefer_gold or not len(confusable)):
            return int(gold[int(np.argmax(p_gold))])
        return int(confusable[0]) if len(confusable) else 1

    def _answer_latent(self, req: Request, stage: ScenarioStage, model: SimModel):
        key = (stage.name, model.name, req.item.id)
        if key not in self._latent:
            b = model.behaviour
            item = req.item
            z = (
                SHARED * _rng(self.seed, "answer", stage.name, item.id).standard_normal()
                + math.sqrt(1 - SHARED**2)
                * _rng(self.seed, "answer", stage.name, model.name, item.id).standard_normal()
            )
            self._latent[key] = _logit(b.skill) + b.spread * z
        return self._latent[key]

    def _answer_texts(self, item) -> np.ndarray:
        """``"Answer: ..."`` texts of an item: index 0 correct, then N_WRONG distinct wrong ones."""
        if item.id not in self._texts:
            seen = {normalize_answer(a) for a in item.answers}
            wrong: list[str] = []
            for text in item.meta.get("distractor_answers") or ():
                key = normalize_answer(str(text))
                if key and key not in seen and len(wrong) < N_WRONG:
                    seen.add(key)
                    wrong.append(str(text))
            rounds = 0
            while len(wrong) < N_WRONG:
                for name in _invented_names(
                    f"{item.id}:{rounds}", 2 * N_WRONG, item.answers[0] if item.answers else ""
                ):
                    key = name.lower() if name[0].isalpha() else normalize_answer(name)  # "-12" ~ "12"
                    if key not in seen and len(wrong) < N_WRONG:
                        seen.add(key)
                        wrong.append(name)
                rounds += 1
            correct = item.answers[0] if item.answers else ""
            self._texts[item.id] = np.array(["Answer: " + t for t in [correct, *wrong]], dtype=object)
        return self._texts[item.id]

    def _answer(self, req: Request, stage: ScenarioStage, model: SimModel, stream: int):
        base_logit, texts = self._answer_latent(req, stage, model), self._answer_texts(req.item)
        b = model.behaviour
        q = self.upstream_quality(req)
        p = float(_sigmoid(base_logit - b.upstream_weight * (1.0 - q)))
        top = b.wrong_concentration * q * q
        cum = np.cumsum([top] + [(1.0 - top) / (N_WRONG - 1)] * (N_WRONG - 1))
        u = np.random.default_rng(stream).random((req.start + req.n, 3))[req.start :]
        wrong_idx = 1 + np.minimum(np.searchsorted(cum, u[:, 1] * cum[-1], side="right"), N_WRONG - 1)
        idx = np.where(u[:, 0] < p, 0, wrong_idx)
        return texts[idx].tolist(), u[:, 2]

    def _normalized(self, text: str) -> str:
        key = self._norm.get(text)
        if key is None:
            key = self._norm[text] = normalize_answer(parse_answer(text))
        return key

    def fuse_prefixes(self, req: Request, sizes) -> list[str]:
        """The fused text of the first n of ``req.candidates`` for each n of ``sizes`` (each >= 1):
        equal to ``generate_one(replace(req, candidates=req.candidates[:n])).texts[0]``, in one pass
        over the candidates (the grid oracle fuses every prefix of a stream)."""
        if req.item is None:
            raise ConfigError(f"the simulated backend needs the item of each request (stage '{req.stage}')")
        stage = self.scenario.stage(req.stage)
        return [text for text, _ in self._fusions(req, stage, stage.model(req.model), sizes)]

    def _fusions(self, req: Request, stage: ScenarioStage, model: SimModel, sizes) -> list[tuple[str, float]]:
        """(text, output-length draw) of the fusion of the first n candidates, for each n of ``sizes``.

        The seed of n candidates hashes ``"\x1e".join(candidates[:n])``; the hash and the plurality
        (ties: first seen) are built up one candidate at a time, so all prefixes cost one pass.
        """
        cands = req.candidates
        want = sorted(set(sizes))
        if want and not 1 <= want[0] <= want[-1] <= len(cands):
            raise ConfigError(f"fusion prefix sizes {want[0]}..{want[-1]} outside 1..{len(cands)} candidates")
        h = _hasher(*self._streams, "fuse", req.item.id, stage.name, model.name)
        select = stage.kind == "select"
        first: dict[str, str] = {}  # normalized answer -> fused text, in first-seen order
        counts: dict[str, int] = {}
        order: dict[str, int] = {}
        best = None
        done: dict[int, tuple[str, float]] = {}
        k = 0
        for n, c in enumerate(cands[: want[-1] if want else 0], 1):
            if n > 1:
                h.update(b"\x1e")
            h.update(c.encode("utf-8"))
            if not select:
                key = self._normalized(c)
                if key not in first:
                    first[key] = "Answer: " + parse_answer(c)
                    order[key] = len(order)
                counts[key] = counts.get(key, 0) + 1
                if (
                    best is None
                    or counts[key] > counts[best]
                    or (counts[key] == counts[best] and order[key] < order[best])
                ):
                    best = key
            if k < len(want) and want[k] == n:
                k += 1
                u_ok, u_pick, u_len = np.random.default_rng(int.from_bytes(h.copy().digest(), "little")).random(3)
                if select:  # the schema gives select stages id_vote; fuse like it, leniently
                    text = id_vote_merge(cands[:n])
                elif u_ok < 1.0 / (1.0 + model.behaviour.fusion_decay * (n - 1)):
                    text = first[best]  # the plurality answer, first seen among equal counts
                else:
                    keys = list(first)
                    text = first[keys[min(int(u_pick * len(keys)), len(keys) - 1)]]
                done[n] = (text, float(u_len))
        return [done[n] for n in sizes]

    def _fuse(self, req: Request, stage: ScenarioStage, model: SimModel) -> Generation:
        n = len(req.candidates)
        ((text, u_len),) = self._fusions(req, stage, model, [n])
        prompt = self._prompt_tokens(req, stage) + n * stage.output_tokens
        return Generation(
            texts=(text,), prompt_tokens=prompt, output_tokens=(int(round(stage.output_tokens * (0.5 + u_len))),)
        )
