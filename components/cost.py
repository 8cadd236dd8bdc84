"""The cost model: inference FLOPs, the paper's normalized budget units, and dollars.

FLOPs of one stage for one question (AgentTTS, Appendix A.2, attention terms dropped; the prompt is
encoded once and shared by the S samples when ``prefix_sharing`` is on)::

    flops = 2 · params · (Np + S · Nd)

The paper's budget unit is one sample of a 3B model on a 128-token prompt with 64 output tokens
(Theorem 1). Solving ``2·3e9·(128 + 64·B) = flops`` for B gives, per stage::

    B = (params / 3e9) · (Np + S · Nd) / 64 − 2

e.g. Qwen2.5-72B retrieval (Np=2048, Nd=128), S=1: 24 · 2176 / 64 − 2 = 814 units (Table 5).

An LLM fuser call (prompt = stage prompt + the S candidates, one output) is always reported;
it is charged against the budget only when ``count_fusion`` is on (off in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass

#: FLOPs of one budget unit's worth of marginal compute: 2 · 3e9 · 64.
FLOPS_PER_UNIT = 2 * 3e9 * 64
#: The unit's own prompt of 128 tokens, expressed in units (the "− 2" of the closed form).
UNIT_OFFSET = 2.0
BUDGET_KINDS = ("units", "flops", "usd")


def flops_to_units(sample_flops: float, stages: int = 1, fuser_flops: float = 0.0) -> float:
    """Budget units of ``sample_flops`` spent over ``stages`` stages (each pays the "− 2" once); a
    fuser's FLOPs count without offset.

    >>> flops_to_units(FLOPS_PER_UNIT * 10, stages=2)
    6.0
    """
    return (sample_flops + fuser_flops) / FLOPS_PER_UNIT - UNIT_OFFSET * stages


@dataclass(frozen=True)
class StageCost:
    """Cost of one stage of an allocation, per question."""

    stage: str
    model: str
    samples: int
    flops: float
    units: float
    usd: float | None
    fusion_flops: float
    fusion_units: float
    fusion_usd: float | None


@dataclass(frozen=True)
class AllocationCost:
    """Per-stage and total cost of an allocation, per question, with and without the fuser calls."""

    stages: tuple[StageCost, ...]
    count_fusion: bool

    @property
    def flops(self) -> float:
        return sum(s.flops + (s.fusion_flops if self.count_fusion else 0.0) for s in self.stages)

    @property
    def units(self) -> float:
        return sum(s.units + (s.fusion_units if self.count_fusion else 0.0) for s in self.stages)

    @property
    def usd(self) -> float | None:
        if any(s.usd is None for s in self.stages):
            return None
        return sum(s.usd + (s.fusion_usd if self.count_fusion else 0.0) for s in self.stages)

    @property
    def fusion_flops(self) -> float:
        return sum(s.fusion_flops for s in self.stages)

    @property
    def fusion_units(self) -> float:
        return sum(s.fusion_units for s in self.stages)

    def measure(self, kind: str) -> float | None:
        """The total in a budget kind: ``units``, ``flops`` or ``usd``."""
        return {"units": self.units, "flops": self.flops, "usd": self.usd}[kind]


def flops(
    params: float, prompt_tokens: float, output_tokens: float, samples: int, prefix_sharing: bool = True
) -> float:
    """Inference FLOPs of S samples on one prompt.

    >>> flops(3e9, 256, 64, 50) / 1e12
    20.736
    """
    prompt = prompt_tokens if prefix_sharing else samples * prompt_tokens
    return 2.0 * params * (prompt + samples * output_tokens)


def units(
    params: float, prompt_tokens: float, output_tokens: float, samples: int, prefix_sharing: bool = True
) -> float:
    """The paper's normalized budget of S samples (Table 5 values after rounding).

    >>> round(units(72e9, 2048, 128, 1)), round(units(3e9, 256, 64, 50))
    (814, 52)
    >>> round(units(7e9, 2048, 128, 1)), round(units(70e9, 256, 64, 1))
    (77, 115)
    """
    return flops_to_units(flops(params, prompt_tokens, output_tokens, samples, prefix_sharing))


class CostModel:
    """Prices allocations of a search space.

    Args:
        stages: the space's stages (``components.space.Stage``).
        count_fusion: charge the LLM fuser call against the budget.
        prefix_sharing: the S samples share one prompt encoding (the paper's assumption).
        lengths: measured ``(stage, model) -> (prompt_tokens, output_tokens)`` replacing declared ones.
    """

    def __init__(self, stages, count_fusion: bool = False, prefix_sharing: bool = True, lengths: dict | None = None):
        self.stages = {s.name: s for s in stages}
        self.count_fusion = count_fusion
        self.prefix_sharing = prefix_sharing
        self.lengths = dict(lengths or {})

    def token_lengths(self, stage: str, model: str) -> tuple[float, float]:
        s = self.stages[stage]
        return self.lengths.get((stage, model), (s.prompt_tokens, s.output_tokens))

    def stage_cost(self, stage: str, model: str, samples: int) -> StageCost:
        s = self.stages[stage]
        m = s.model(model)
        np_, nd = self.token_lengths(stage, model)
        f = flops(m.params, np_, nd, samples, self.prefix_sharing)
        fused = s.fusion == "llm" and samples > 1
        ff = 2.0 * m.params * (np_ + samples * nd + nd) if fused else 0.0
        price = m.price_per_mtok
        usd = None if price is None else price * (np_ + samples * nd) / 1e6
        fusd = None if price is None else (price * (np_ + samples * nd + nd) / 1e6 if fused else 0.0)
        return StageCost(stage, model, samples, f, flops_to_units(f), usd, ff, flops_to_units(0.0, 0, ff), fusd)

    def cost(self, allocation) -> AllocationCost:
        """Cost of an allocation per question."""
        return AllocationCost(tuple(self.stage_cost(st, m, s) for st, m, s in allocation.choices), self.count_fusion)
