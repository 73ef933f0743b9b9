"""Scalarisations: how the multi-objective result (PSNR, params, Mult-Adds) becomes the single
``'default'`` number NNI ranks by (NNI maximises it).

Every scalarisation maps a metrics dict with ``psnr`` (dB), ``params`` and ``multadds`` (ints, at
the 1280x720 convention) to a float, higher is better. Select one by name with
:func:`make_scalarization`:

``psnr``
    the validation PSNR itself.
``hnas``
    HNAS's joint reward ``lambda * PSNR - (1 - lambda) * cost`` with
    ``cost = multadds / 1e9 * cost_per_gmac``. The official code uses ``cost = 0.5e-8 * MACs``
    measured on a 48x48 LR input; at x2 that input has 1/100 of the pixels of the 640x360 LR
    input of the 720p convention, so the same weight is ``0.05`` per G Mult-Adds (the default).
    ``lambda`` defaults to 0.5 (the code's default; its README search uses 0.2).
``deconas``
    DeCoNAS's ``PSNR - lambda * complexity`` with ``complexity = params / reference_params``,
    the fraction of the parameters of the reference (the whole space with every choice on, in
    DeCoNAS). ``lambda`` defaults to 2 (the code's ``cb_rate``); ``reference_params`` is required.
``budget``
    PSNR when ``params <= max_params`` and ``multadds <= max_multadds`` (either may be omitted),
    else ``PSNR - penalty * (relative excess summed over the violated budgets)``; ``penalty``
    defaults to 10 dB per 100 % excess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import SRNASError

__all__ = ["Scalarization", "SCALARIZATIONS", "make_scalarization"]


class Scalarization:
    """Base class: ``__call__(metrics) -> float``; ``describe()`` for logs and study notes."""

    name = "base"

    def __call__(self, metrics: Mapping[str, Any]) -> float:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


@dataclass
class PSNRObjective(Scalarization):
    name = "psnr"

    def __call__(self, metrics):
        return float(metrics["psnr"])

    def describe(self):
        return "PSNR (dB)"


@dataclass
class HNASReward(Scalarization):
    lam: float = 0.5
    cost_per_gmac: float = 0.05
    name = "hnas"

    def __post_init__(self):
        if not 0.0 <= self.lam <= 1.0:
            raise SRNASError(f"objective hnas: lam = {self.lam} must lie in [0, 1]")

    def __call__(self, metrics):
        cost = metrics["multadds"] / 1e9 * self.cost_per_gmac
        return self.lam * float(metrics["psnr"]) - (1.0 - self.lam) * cost

    def describe(self):
        return f"{self.lam} * PSNR - {1 - self.lam:g} * {self.cost_per_gmac} * Mult-Adds[G]"


@dataclass
class DeCoNASReward(Scalarization):
    reference_params: int | None = None
    lam: float = 2.0
    name = "deconas"

    def __post_init__(self):
        if not self.reference_params or self.reference_params <= 0:
            raise SRNASError("objective deconas needs reference_params > 0 (parameters of the full space)")

    def __call__(self, metrics):
        return float(metrics["psnr"]) - self.lam * metrics["params"] / self.reference_params

    def describe(self):
        return f"PSNR - {self.lam} * params / {self.reference_params}"


@dataclass
class BudgetObjective(Scalarization):
    max_params: int | None = None
    max_multadds: int | None = None
    penalty: float = 10.0
    name = "budget"

    def __post_init__(self):
        if self.max_params is None and self.max_multadds is None:
            raise SRNASError("objective budget needs max_params and/or max_multadds")
        for key in ("max_params", "max_multadds"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise SRNASError(f"objective budget: {key} = {value} must be > 0")

    def __call__(self, metrics):
        excess = 0.0
        if self.max_params is not None and metrics["params"] > self.max_params:
            excess += metrics["params"] / self.max_params - 1.0
        if self.max_multadds is not None and metrics["multadds"] > self.max_multadds:
            excess += metrics["multadds"] / self.max_multadds - 1.0
        return float(metrics["psnr"]) - self.penalty * excess

    def describe(self):
        return f"PSNR within params <= {self.max_params}, Mult-Adds <= {self.max_multadds}"


SCALARIZATIONS: dict[str, type[Scalarization]] = {
    "psnr": PSNRObjective,
    "hnas": HNASReward,
    "deconas": DeCoNASReward,
    "budget": BudgetObjective,
}


def make_scalarization(name: str, **options: Any) -> Scalarization:
    if name not in SCALARIZATIONS:
        raise SRNASError(f"unknown objective {name!r}; available: {', '.join(SCALARIZATIONS)}")
    cls = SCALARIZATIONS[name]
    try:
        return cls(**options)
    except TypeError:
        allowed = [f for f in cls.__dataclass_fields__]
        raise SRNASError(f"objective {name}: unknown option(s) in {sorted(options)}; allowed: {allowed}") from None
