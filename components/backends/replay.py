"""The ``replay`` backend: evaluates from the sample bank alone, generating nothing.

The Environment asks a backend only for samples the bank does not hold, so any call here means a
sample is missing: the error names the (model, stage, question) of each missing stream and how many
samples it has and needs. Streams are found under the same key the recording backend wrote, so
``world`` must be the recording run's world: ``""`` for real runs, ``path:<override>`` or
``served:<override>`` for runs made with a model override (``backend.world`` in the config).
"""

from __future__ import annotations

import re

from components.backends.base import Generation, Request
from components.errors import MissingSampleError


class ReplayBackend:
    """A backend that only replays; ``generate`` raises MissingSampleError naming what is absent."""

    name = "replay"

    def __init__(self, world: str = ""):
        self.world = world
        # a simulator's world is "sim<SIM_VERSION>:<scenario>:..." (once "sim:"): its samples are simulated
        self.simulated = re.match(r"sim\d*:", world) is not None

    def check(self) -> None:
        """Nothing to reach."""

    def generate(self, requests: list[Request]) -> list[Generation]:
        if not requests:
            return []
        shown = []
        for r in requests[:5]:
            what = "fuser call" if r.is_fusion else "samples"
            q = r.item.id if r.item is not None else "?"
            shown.append(f"model={r.model} stage={r.stage} question={q}: {what} {r.start + 1}..{r.start + r.n}")
        first = f"; the first {len(shown)}" if len(requests) > len(shown) else ""
        raise MissingSampleError(
            f"backend=replay: the sample bank lacks samples of {len(requests)} stream(s){first}: "
            + "; ".join(shown)
            + f" (world '{self.world}'; record them with a real backend first, or import a bank file)"
        )
