"""The ``sim`` backend: the embedded default. Every output it returns is simulated."""

from __future__ import annotations

from components.scenario import Scenario
from components.simulator import SimWorld


class SimBackend(SimWorld):
    """A :class:`SimWorld` as a Backend; ``world`` salts sample-bank keys with the scenario and seed."""

    name = "sim"
    simulated = True

    def __init__(self, scenario: Scenario, replica: int = 0):
        super().__init__(scenario, replica)
        # a replica's samples differ from the world's: they must never share bank entries
        self.world = f"sim:{scenario.name}:v{scenario.version}:seed{scenario.seed}" + (
            f":replica{replica}" if replica else ""
        )
