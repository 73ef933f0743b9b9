"""The two rewards of a sampled architecture, from its PSNR and its own cost.

Always the *sampled* architecture's own cost (``space.cost(sample, ...)``), never a measured supernet
(the released HNAS code measures the wrong model, PAPERS.md 1.3). ``reward:`` picks one
(:func:`make_reward`):

* ``hnas`` (:class:`HNASJointReward`): ``lambda * PSNR - (1 - lambda) * cost`` with ``cost = cost_scale *
  Mult-Adds`` of the sample at a ``cost_lr_size`` x ``cost_lr_size`` LR input (HNAS: 0.5e-8, 48x48,
  lambda 0.5; README search 0.2).
* ``deconas`` (:class:`DeCoNASComplexityReward`): ``PSNR - lambda_cb * cb``, ``cb = (C(s) - C_min) /
  (C_max - C_min)`` clipped to [0, 1], with ``C`` the sample's ``complexity_metric`` (``params`` by
  default, or ``multadds`` at the same input) and ``C_min``/``C_max`` the cheapest and dearest
  architectures found by coordinate search over the labels (each label set to its cheapest/dearest
  value given the others, repeated until nothing changes). On DeCoNAS's space every bit adds its own
  slab of weights, so the search finds exactly the all-0 and all-1 patterns and ``cb = sum_selected
  P_bit / sum_all P_bit``: DeCoNAS's bit-weighted ratio, with the true per-bit parameter counts
  (``P_conv = P_dil = 9 C^2``, ``P_sep = 9 C + C^2``: the official code leaves out the pointwise
  weights) plus the ``C`` bias of each branch in use.

A reward is a callable ``reward(psnr, sample) -> float``.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping

from ...errors import SRNASError
from ...nni_adapter.loader import nni  # noqa: F401  (NNI imported under our warning filter)
from ...study.keys import plain_value
from .options import HierarchicalRLOptions

from nni.mutable import Categorical  # noqa: E402

__all__ = ["HNASJointReward", "DeCoNASComplexityReward", "make_reward"]


class HNASJointReward:
    """HNAS: ``lambda * PSNR - (1 - lambda) * cost_scale * MultAdds(sample at a cost_lr_size^2 LR input)``."""

    def __init__(self, space: Any, reward_lambda: float = 0.5, cost_scale: float = 0.5e-8, cost_lr_size: int = 48):
        if not 0.0 <= reward_lambda <= 1.0:
            raise SRNASError(f"hierarchical_rl: reward_lambda = {reward_lambda} must lie in [0, 1]")
        if cost_scale < 0 or cost_lr_size < 1:
            raise SRNASError(f"hierarchical_rl: cost_scale = {cost_scale} must be >= 0 and cost_lr_size = "
                             f"{cost_lr_size} >= 1")
        self.space = space
        self.reward_lambda = float(reward_lambda)
        self.cost_scale = float(cost_scale)
        self.hr_size = (int(cost_lr_size) * int(space.scale), int(cost_lr_size) * int(space.scale))

    def cost(self, sample: Mapping[str, Any]) -> float:
        return self.cost_scale * float(self.space.cost(dict(sample), hr_size=self.hr_size).multadds)

    def __call__(self, psnr: float, sample: Mapping[str, Any]) -> float:
        return self.reward_lambda * float(psnr) - (1.0 - self.reward_lambda) * self.cost(sample)


class DeCoNASComplexityReward:
    """DeCoNAS: ``PSNR - lambda_cb * cb(sample)`` with the relative complexity of the module docstring."""

    #: Labels with more alternatives than this are left at their start value by the extreme search.
    max_alternatives = 64

    def __init__(self, space: Any, lambda_cb: float = 2.0, complexity_metric: str = "params", cost_lr_size: int = 48):
        if complexity_metric not in ("params", "multadds"):
            raise SRNASError(f"hierarchical_rl: complexity_metric = {complexity_metric!r}; choose params or multadds")
        if lambda_cb < 0:
            raise SRNASError(f"hierarchical_rl: lambda_cb = {lambda_cb} must be >= 0")
        self.space = space
        self.lambda_cb = float(lambda_cb)
        self.metric = complexity_metric
        self.hr_size = (int(cost_lr_size) * int(space.scale), int(cost_lr_size) * int(space.scale))
        self.low, self.high = self._extremes()

    def measure(self, sample: Mapping[str, Any]) -> float:
        return float(getattr(self.space.cost(dict(sample), hr_size=self.hr_size), self.metric))

    def complexity(self, sample: Mapping[str, Any]) -> float:
        if self.high <= self.low:
            return 0.0
        return min(1.0, max(0.0, (self.measure(sample) - self.low) / (self.high - self.low)))

    def __call__(self, psnr: float, sample: Mapping[str, Any]) -> float:
        return float(psnr) - self.lambda_cb * self.complexity(sample)

    def _alternatives(self, mutable: Any) -> list[Any]:
        values = list(mutable.values)
        if isinstance(mutable, Categorical):
            return [plain_value(v) for v in values]
        if mutable.n_chosen is None:
            sizes = range(len(values) + 1)
        else:
            sizes = [int(mutable.n_chosen)]
        options = []
        for size in sizes:
            for combo in itertools.combinations(values, size):
                options.append([plain_value(v) for v in combo])
                if len(options) > self.max_alternatives:
                    return options[:1]
        return options

    def _extremes(self) -> tuple[float, float]:
        decisions = self.space.simplify()
        alternatives = {label: self._alternatives(m) for label, m in decisions.items()}
        results = []
        for sign in (1.0, -1.0):  # cheapest, then dearest
            sample = {label: options[0] for label, options in alternatives.items()}
            best = sign * self.measure(sample)
            for _ in range(10):  # coordinate passes until nothing changes
                changed = False
                for label, options in alternatives.items():
                    for option in options:
                        if option == sample[label]:
                            continue
                        trial = {**sample, label: option}
                        value = sign * self.measure(trial)
                        if value < best:
                            sample, best, changed = trial, value, True
                if not changed:
                    break
            results.append(sign * best)
        return results[0], results[1]


def make_reward(kind: str, space: Any, options: HierarchicalRLOptions) -> HNASJointReward | DeCoNASComplexityReward:
    """The reward ``kind`` (the option ``reward``) of ``space``, with its settings from ``options``."""
    if kind == "hnas":
        return HNASJointReward(space, options.reward_lambda, options.cost_scale, options.cost_lr_size)
    if kind == "deconas":
        return DeCoNASComplexityReward(space, options.lambda_cb, options.complexity_metric, options.cost_lr_size)
    raise SRNASError(f"hierarchical_rl: reward = {kind!r}; choose hnas or deconas")
