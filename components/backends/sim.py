"""The ``sim`` backend: the embedded default. Every output it returns is simulated."""

from __future__ import annotations

import hashlib

from components.scenario import Scenario
from components.simulator import SIM_VERSION, SimWorld


class SimBackend(SimWorld):
    """A :class:`SimWorld` as a Backend; ``world`` salts sample-bank keys with the scenario, its seed,
    the simulator's version and a fingerprint of its stages (models and behaviours): samples banked
    under another simulator or another calibration are never replayed as this world's."""

    name = "sim"
    simulated = True

    def __init__(self, scenario: Scenario, replica: int = 0):
        super().__init__(scenario, replica)
        # a replica's samples differ from the world's: they must never share bank entries
        behaviour = hashlib.blake2b(repr(scenario.stages).encode(), digest_size=4).hexdigest()
        self.world = f"sim{SIM_VERSION}:{scenario.name}:v{scenario.version}:seed{scenario.seed}:{behaviour}" + (
            f":replica{replica}" if replica else ""
        )
