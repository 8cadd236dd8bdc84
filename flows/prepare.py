"""Validate ``agenttts evaluate`` and ``agenttts run`` before any compute: the allocation, the items,
and (evaluate) that the evaluation split does not overlap the search's train split.

No Prefect import here, so bad input stops in about a second with one message and nothing logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from components.datasets import load_items
from components.errors import ConfigError, DatasetError
from components.items import Item
from components.metrics import normalize_answer
from components.space import Allocation
from flows.allocation import resolve_allocation
from flows.build import Context, build, load_data
from flows.runs import ArchivedSearch

SPLITS = ("test", "train")


@dataclass
class Plan:
    """A validated evaluation or run: what to run, on which items, and where it comes from."""

    ctx: Context
    allocation: Allocation
    search: ArchivedSearch | None
    source: str  # where the allocation came from, in words
    items: list[Item]
    split: str  # test | train | input (agenttts run)

    @property
    def search_best(self) -> bool:
        """Whether the allocation is its search's best: only then do the search's train score and this
        held-out score describe one allocation (not so with a stage overridden, or a re-projected champion)."""
        if self.search is None or not self.search.best_allocation:
            return False
        return Allocation.parse(self.search.best_allocation) == self.allocation


def _key(it: Item) -> str:
    return normalize_answer(it.question)


def search_train_items(search: ArchivedSearch, cfg: dict) -> list[Item]:
    """The train split the search scored on, rebuilt from the config it logged."""
    text = search.archive.read_text(search.run_id, "config.yaml")
    if text is None:
        raise ConfigError(f"run={search.run_id}: cannot read its config.yaml to check the split")
    scfg = yaml.safe_load(text)
    try:
        train, _ = load_data(scfg)
    except DatasetError as exc:
        raise ConfigError(f"run={search.run_id}: cannot rebuild its train split to check overlap: {exc}") from None
    return train


def check_no_overlap(items: list[Item], train: list[Item], what: str) -> None:
    """Refuse ``items`` when any of them (same id or same question) is in ``train``."""
    ids, questions = {it.id for it in train}, {_key(it) for it in train}
    shared = [it for it in items if it.id in ids or _key(it) in questions]
    if shared:
        ex = ", ".join(it.id for it in shared[:3])
        raise ConfigError(
            f"split=test overlaps {what}: {len(shared)} of its {len(items)} questions are train questions "
            f"(e.g. {ex}); evaluate on held-out data (same data.path/data.seed/data.train_size as the search)"
        )


def prepare_evaluate(cfg: dict) -> Plan:
    """``agenttts evaluate``: the allocation on the ``split`` (test by default), held out from training."""
    split = str(cfg.get("split") or "test")
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {list(SPLITS)}, got {split!r}")
    ctx = build(cfg)
    alloc, search, source = resolve_allocation(cfg, ctx.space, ctx.task.name)
    items = ctx.test if split == "test" else ctx.train
    if not items:
        raise ConfigError(f"split={split} is empty (data.test_size={cfg['data']['test_size']}, or the file is short)")
    if split == "test":
        check_no_overlap(items, ctx.train, "the train split of this config")
        if search is not None:
            check_no_overlap(items, search_train_items(search, cfg), f"the train split of search {search.run_id}")
    return Plan(ctx, alloc, search, source, items, split)


def prepare_run(cfg: dict) -> Plan:
    """``agenttts run``: the allocation on every input of ``data.path`` (in file order)."""
    path = (cfg.get("data") or {}).get("path")
    fmt = cfg["task"]["data"]["format"]
    if not path:
        raise ConfigError(f"agenttts run needs the inputs: data.path=FILE (task {cfg['task']['name']!r}, format {fmt})")
    if not cfg.get("predictions"):
        raise ConfigError("predictions= must name the output file, e.g. predictions=predictions.jsonl")
    ctx = build(cfg, with_data=False)
    alloc, search, source = resolve_allocation(cfg, ctx.space, ctx.task.name)
    items = load_items(fmt, Path(path).expanduser())
    if not items:
        raise DatasetError(f"{path}: no inputs")
    out = Path(cfg["predictions"])
    if not out.parent.exists():
        raise ConfigError(f"predictions={out}: folder {out.parent} does not exist")
    return Plan(ctx, alloc, search, source, items, "input")


__all__ = ["Plan", "check_no_overlap", "prepare_evaluate", "prepare_run", "search_train_items"]
