"""The pipeline and the Environment: run allocations over a batch of questions and score them.

The Environment evaluates a round of allocations stage by stage. Per stage it makes ONE batched
backend call for all samples the round needs (``infer``) and one for the LLM fuser calls (inside
``fuse``), so a real engine sees large batches. Work is shared wherever outputs are shared: trials
with the same upstream prefix share fused outputs, and every stream of samples is read from and
appended to the sample bank, so S=10 after S=20 generates nothing.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from components.backends.base import Backend, Decoding, Request
from components.bank import SampleBank, stream_key
from components.cost import AllocationCost
from components.errors import ConfigError
from components.fusion import fusion_prompt, id_vote_merge, majority_vote
from components.items import Item
from components.metrics import METRICS, retrieval_prf
from components.parsers import PARSERS, parse_ids
from components.space import Allocation, SearchSpace

PLACEHOLDERS = ("question", "candidates", "upstream", "selected")


@dataclass(frozen=True)
class StageSpec:
    """The task side of a stage: how to prompt, parse and fuse (models and lengths live in the space).

    ``prompt`` is a ``str.format`` template over ``{question}``, ``{candidates}`` (numbered candidate
    facts), ``{upstream}`` (the previous stage's fused output) and ``{selected}`` (the candidate facts
    the previous stage selected).
    """

    name: str
    kind: str  # "select" (outputs reference ids) or "answer"
    prompt: str
    parser: str
    fusion: str
    decoding: Decoding = field(default_factory=Decoding)
    fuse_decoding: Decoding = field(default_factory=lambda: Decoding(temperature=0.3))


@dataclass(frozen=True)
class TaskSpec:
    """A pipeline: ordered stages and the metrics of its final output (``metric`` is the main one)."""

    name: str
    stages: tuple[StageSpec, ...]
    metric: str
    metrics: tuple[str, ...]

    def validate(self) -> None:
        for m in (self.metric, *self.metrics):
            if m not in METRICS:
                raise ConfigError(f"unknown metric '{m}' in task '{self.name}'; available: {sorted(METRICS)}")
        if self.metric not in self.metrics:  # the main metric is read out of the metrics scored
            raise ConfigError(f"task '{self.name}': metric '{self.metric}' must be one of metrics {list(self.metrics)}")
        for s in self.stages:
            if s.parser not in PARSERS:
                raise ConfigError(f"unknown parser '{s.parser}' for stage '{s.name}'; available: {sorted(PARSERS)}")
            try:
                s.prompt.format(**{p: "" for p in PLACEHOLDERS})
            except (KeyError, IndexError) as e:
                raise ConfigError(
                    f"prompt of stage '{s.name}' uses unknown placeholder {e}; available: {list(PLACEHOLDERS)}"
                ) from None


@dataclass
class TrialResult:
    """One evaluated allocation: its score (main metric), all metrics and its cost."""

    allocation: Allocation
    score: float
    metrics: dict[str, float]
    cost: AllocationCost  # planned, per question, from declared token lengths
    flops_planned: float  # over all questions
    flops_spent: float  # over all questions, from actual token counts (fuser calls included)
    fusion_flops_spent: float
    samples_used: int
    wall_s: float
    status: str = "ok"
    error: str = ""
    item_scores: tuple[float, ...] = ()  # the main metric per question, in the items' order (paired tests)
    outputs: tuple[str, ...] = ()  # the last stage's fused output per question (predictions)


def best_trial(history: list[TrialResult]) -> TrialResult | None:
    """The best evaluated trial: highest score; ties go to the cheaper allocation, then the earlier."""
    ok = [r for r in history if r.status == "ok"]
    return max(ok, key=lambda r: (r.score, -r.cost.units), default=None)


def best_so_far(history: list[TrialResult]) -> list[float]:
    """The best score after each trial."""
    out, best = [], float("-inf")
    for r in history:
        best = max(best, r.score)
        out.append(best)
    return out


@dataclass
class Round:
    """The state of one round of evaluation, filled stage by stage."""

    allocations: list[Allocation]
    # prefix of length i+1 -> per item fused output of stage i
    fused: dict[Allocation, list[str]] = field(default_factory=dict)
    # (prefix of length i, model) -> per item stream key
    streams: dict[tuple[Allocation, str], list[str]] = field(default_factory=dict)
    # prefix of length i+1 -> per item (sampling flops, fuser flops) of stage i
    spent: dict[Allocation, list[tuple[float, float]]] = field(default_factory=dict)
    shared: bool = True  # trials share streams (the bank); False: each trial generates afresh
    # stream key -> why its generation failed (after the backend's retries)
    failed: dict[str, str] = field(default_factory=dict)
    # prefix of length i+1 -> why stage i could not produce its outputs (its trials are failed)
    failed_scopes: dict[Allocation, str] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    generated_tokens: int = 0
    # what this round actually generated (bank hits excluded): the search's own spending
    generated_flops: float = 0.0
    generated_usd: float = 0.0
    unpriced: bool = False  # a model without a price generated something (generated_usd is incomplete)

    def scope(self, a: Allocation, n: int) -> Allocation:
        """Identity of the first n stages of ``a``: shared across trials only when the bank is on."""
        if self.shared:
            return a.prefix(n)
        return Allocation(a.choices[:n] + ((f"trial:{a.key}", "", 0),))


class Environment:
    """Evaluates allocations of ``space`` for ``task`` on ``items`` through ``backend`` and ``bank``.

    Args:
        task: prompts, parsers and metrics.
        space: stages, models, cost model and budget.
        backend: generates samples.
        bank: the sample bank (use ``SampleBank(enabled=False)`` to generate everything afresh).
        items: the questions of the split being searched.
    """

    def __init__(self, task: TaskSpec, space: SearchSpace, backend: Backend, bank: SampleBank, items: list[Item]):
        self.task, self.space, self.backend, self.bank, self.items = task, space, backend, bank, items
        self.world = getattr(backend, "world", "")
        self._stage_by_name = {s.name: s for s in space.stages}
        self._candidates_text = ["\n".join(f"[{i}] {c}" for i, c in enumerate(it.candidates, 1)) for it in items]

    # -- the three steps of a round -------------------------------------------------------------
    def evaluate(self, allocations: list[Allocation]) -> list[TrialResult]:
        """Run and score a round of allocations (the flows call the steps one by one instead)."""
        rnd = self.start(allocations)
        for i in range(len(self.task.stages)):
            self.infer(rnd, i)
            self.fuse(rnd, i)
        return self.score(rnd)

    def start(self, allocations: list[Allocation]) -> Round:
        """Begin a round. Without the bank, every trial gets its own streams and generates afresh."""
        self.bank.reset()
        return Round(list(allocations), shared=self.bank.enabled)

    def first_stage_coverage(self) -> dict[str, int]:
        """Per model of the first stage: the questions whose sample stream the bank holds (what a
        replay can start from; later stages' streams depend on the first stage's outputs)."""
        stage = self.task.stages[0]
        models = [m.name for m in self.space.stages[0].models]
        keys = {
            m: [
                stream_key(m, self.render(stage, j, None), stage.decoding.key(), self.world)
                for j in range(len(self.items))
            ]
            for m in models
        }
        self.bank.load([k for ks in keys.values() for k in ks])
        return {m: sum(self.bank.count(k) > 0 for k in ks) for m, ks in keys.items()}

    def render(self, stage: StageSpec, j: int, upstream: str | None) -> str:
        item = self.items[j]
        selected = ""
        if upstream is not None and item.candidates:
            ids = [i for i in parse_ids(upstream) if 1 <= i <= len(item.candidates)]
            selected = "\n".join(f"[{i}] {item.candidates[i - 1]}" for i in ids)
        return stage.prompt.format(
            question=item.question,
            candidates=self._candidates_text[j],
            upstream=upstream or "",
            selected=selected,
        )

    def infer(self, rnd: Round, i: int) -> None:
        """Generate, in one backend call, every sample stage ``i`` needs beyond what the bank holds."""
        stage = self.task.stages[i]
        need: dict[tuple[Allocation, str], int] = defaultdict(int)
        for a in rnd.allocations:
            _, model, s = a.choices[i]
            scope = rnd.scope(a, i)
            if scope in rnd.failed_scopes:  # an upstream stage failed: nothing to generate
                continue
            need[(scope, model)] = max(need[(scope, model)], s)
        prompts: dict[tuple[int, str | None], str] = {}
        want: dict[str, tuple[int, str, str, int, str | None]] = {}  # key -> (item, model, prompt, n, upstream)
        for (prefix, model), n in need.items():
            upstream = rnd.fused[prefix] if i else [None] * len(self.items)
            salt = self.world if rnd.shared else f"{self.world}|{prefix.choices[-1][0]}"
            keys = []
            for j, u in enumerate(upstream):
                prompt = prompts.get((j, u))
                if prompt is None:
                    prompt = prompts[(j, u)] = self.render(stage, j, u)
                key = stream_key(model, prompt, stage.decoding.key(), salt)
                keys.append(key)
                if key not in want or want[key][3] < n:
                    want[key] = (j, model, prompt, n, u)
            rnd.streams[(prefix, model)] = keys
        self._generate(stage, want, rnd)

    def _generate(
        self, stage: StageSpec, want: dict, rnd: Round, decoding: Decoding | None = None, candidates: dict | None = None
    ) -> None:
        self.bank.load(list(want))
        todo, meta = [], []
        for key, (j, model, prompt, n, u) in want.items():
            have = self.bank.count(key)
            self.bank.hits += min(have, n)
            if have < n:
                todo.append(
                    Request(
                        model=model,
                        prompt=prompt,
                        n=n - have,
                        start=have,
                        decoding=decoding or stage.decoding,
                        stage=stage.name,
                        item=self.items[j],
                        upstream=u,
                        candidates=(candidates or {}).get(key, ()),
                    )
                )
                meta.append((key, j, model))
        if not todo:
            return
        role = "fuse" if candidates else "sample"
        spec = self._stage_by_name[stage.name]
        for (key, j, model), gen in zip(meta, self.backend.generate(todo)):
            if gen.error:
                rnd.failed[key] = f"{model} on stage '{stage.name}', question {self.items[j].id}: {gen.error}"
                continue
            self.bank.append(
                key, model, stage.name, self.items[j].id, gen.prompt_tokens, gen.texts, gen.output_tokens,
                world=self.world, role=role,
            )  # fmt: skip
            rnd.generated_tokens += sum(gen.output_tokens)
            m = spec.model(model)
            tokens = gen.prompt_tokens + sum(gen.output_tokens)  # one prompt encoding per request
            rnd.generated_flops += 2.0 * m.params * tokens
            if m.price_per_mtok is None:
                rnd.unpriced = True
            else:
                rnd.generated_usd += m.price_per_mtok * tokens / 1e6
        self.bank.flush()  # on disk as soon as generated: a search killed later in the round keeps them

    def _stream(self, key: str):
        return self.bank.get(key)

    def fuse(self, rnd: Round, i: int) -> None:
        """Fuse the first S samples of each stream into one output per item and trial prefix."""
        stage = self.task.stages[i]
        params = self._stage_by_name[stage.name].model
        parse = PARSERS[stage.parser]
        pending = {}  # (key, S) -> fused text, or the fusion key for llm
        fuse_want, fuse_cands = {}, {}
        scopes = {rnd.scope(a, i + 1): a for a in rnd.allocations}
        for sc, a in list(scopes.items()):
            why = self._failure(rnd, a, i)
            if why:
                rnd.failed_scopes[sc] = why
                del scopes[sc]
        for a in scopes.values():
            _, model, s = a.choices[i]
            keys = rnd.streams[(rnd.scope(a, i), model)]
            salt = self.world if rnd.shared else f"{self.world}|trial:{a.key}"
            for j, key in enumerate(keys):
                if (key, s) in pending:
                    continue
                texts = self._stream(key).texts[:s]
                if s == 1:
                    pending[(key, s)] = texts[0]
                elif stage.fusion == "id_vote":
                    pending[(key, s)] = id_vote_merge(texts)
                elif stage.fusion == "vote":
                    pending[(key, s)] = majority_vote(texts, parse)
                else:
                    upstream = rnd.fused[rnd.scope(a, i)][j] if i else None
                    fprompt = fusion_prompt(self.render(stage, j, upstream), texts)
                    fkey = stream_key(model, fprompt, stage.fuse_decoding.key(), salt)
                    pending[(key, s)] = ("llm", fkey)
                    fuse_want[fkey] = (j, model, fprompt, 1, upstream)
                    fuse_cands[fkey] = tuple(texts)
        if fuse_want:
            self._generate(stage, fuse_want, rnd, stage.fuse_decoding, fuse_cands)
        for sc, a in scopes.items():
            _, model, s = a.choices[i]
            keys = rnd.streams[(rnd.scope(a, i), model)]
            fkeys = [pending[(k, s)][1] for k in keys if isinstance(pending[(k, s)], tuple)]
            why = next((rnd.failed[k] for k in fkeys if k in rnd.failed), "")
            if why:
                rnd.failed_scopes[sc] = f"fuser call failed: {why}"
                continue
            p = params(model).params
            out, spent = [], []
            for key in keys:
                v = pending[(key, s)]
                stream = self._stream(key)
                sample_flops = 2 * p * (stream.prompt_tokens + sum(stream.tokens[:s]))
                fuse_flops = 0.0
                if isinstance(v, tuple):
                    fs = self._stream(v[1])
                    v = fs.texts[0]
                    fuse_flops = 2 * p * (fs.prompt_tokens + fs.tokens[0])
                out.append(v)
                spent.append((sample_flops, fuse_flops))
            rnd.fused[sc] = out
            rnd.spent[sc] = spent

    def _failure(self, rnd: Round, a: Allocation, i: int) -> str:
        """Why stage i of ``a`` has no outputs this round ("" when it has them)."""
        up = rnd.scope(a, i)
        if up in rnd.failed_scopes:
            return rnd.failed_scopes[up]
        _, model, s = a.choices[i]
        for key in rnd.streams[(up, model)]:
            if key in rnd.failed:
                return rnd.failed[key]
            if self.bank.count(key) < s:  # the backend returned fewer samples than asked for
                return f"{model} on stage '{self.task.stages[i].name}': {self.bank.count(key)} of {s} samples"
        return ""

    def _item_scores(self, i: int, j: int, text: str) -> tuple[float, ...]:
        """Metrics of stage i's fused output on item j, in the order of ``_metric_names(i)``."""
        stage, item = self.task.stages[i], self.items[j]
        if i == len(self.task.stages) - 1:
            pred = PARSERS[stage.parser](text)
            return tuple(METRICS[m](pred, item.answers) for m in self.task.metrics)
        if stage.kind == "select":
            return tuple(retrieval_prf(parse_ids(text), item.gold_ids))
        return (METRICS["em"](PARSERS[stage.parser](text), item.answers),)

    def _metric_names(self, i: int) -> tuple[str, ...]:
        stage = self.task.stages[i]
        if i == len(self.task.stages) - 1:
            return self.task.metrics
        if stage.kind == "select":
            return tuple(f"{stage.name}/{m}" for m in ("precision", "recall", "f1"))
        return (f"{stage.name}/em",)

    def item_flops(self, rnd: Round, a: Allocation) -> list[tuple[float, float]]:
        """Per question, the spent (sampling, fuser) FLOPs of ``a`` summed over its stages (after ``fuse``)."""
        out = [(0.0, 0.0)] * len(self.items)
        for i in range(len(self.task.stages)):
            out = [(s + x, f + y) for (s, f), (x, y) in zip(out, rnd.spent[rnd.scope(a, i + 1)])]
        return out

    def score(self, rnd: Round) -> list[TrialResult]:
        """Score every allocation of the round on its fused outputs.

        Trials sharing a stage prefix share its outputs, so metrics and spent FLOPs are computed
        once per prefix, and once per distinct (item, output text).
        """
        wall = (time.perf_counter() - rnd.started) / max(1, len(rnd.allocations))
        n, last = len(self.items), len(self.task.stages)
        memo: dict[tuple[int, int, str], tuple[float, ...]] = {}
        per_prefix: dict[Allocation, tuple[dict[str, float], float, float]] = {}
        main = self.task.metrics.index(self.task.metric)
        per_item: dict[Allocation, tuple[float, ...]] = {}

        def prefix(i: int, sc: Allocation) -> tuple[dict[str, float], float, float]:
            if sc not in per_prefix:
                vals = []
                for j, text in enumerate(rnd.fused[sc]):
                    v = memo.get((i, j, text))
                    if v is None:
                        v = memo[(i, j, text)] = self._item_scores(i, j, text)
                    vals.append(v)
                names = self._metric_names(i)
                if i == last - 1:
                    per_item[sc] = tuple(v[main] for v in vals)
                metrics = {name: sum(v[k] for v in vals) / n for k, name in enumerate(names)}
                spent = rnd.spent[sc]
                per_prefix[sc] = (metrics, sum(x[0] for x in spent), sum(x[1] for x in spent))
            return per_prefix[sc]

        results = []
        for a in rnd.allocations:
            why = next(
                (rnd.failed_scopes[sc] for k in range(1, last + 1) if (sc := rnd.scope(a, k)) in rnd.failed_scopes), ""
            )
            if why:
                results.append(self._failed(a, why, wall))
                continue
            metrics: dict[str, float] = {}
            sample_flops = fuse_flops = 0.0
            for i in range(last):
                m, sf, ff = prefix(i, rnd.scope(a, i + 1))
                metrics.update(m)
                sample_flops += sf
                fuse_flops += ff
            cost = self.space.cost_model.cost(a)
            results.append(
                TrialResult(
                    allocation=a,
                    score=metrics[self.task.metric],
                    metrics=metrics,
                    cost=cost,
                    flops_planned=cost.flops * n,
                    flops_spent=sample_flops + fuse_flops,
                    fusion_flops_spent=fuse_flops,
                    samples_used=sum(s for _, _, s in a.choices) * n,
                    wall_s=wall,
                    item_scores=per_item[rnd.scope(a, last)],
                    outputs=tuple(rnd.fused[rnd.scope(a, last)]),
                )
            )
        return results

    def _failed(self, a: Allocation, why: str, wall: float) -> TrialResult:
        """A trial whose generation failed: recorded with the reason, never the best."""
        cost = self.space.cost_model.cost(a)
        n = len(self.items)
        return TrialResult(a, 0.0, {}, cost, cost.flops * n, 0.0, 0.0, 0, wall, status="failed", error=why)
