"""DeCoNAS's supernet forms: the dense layers (:class:`~srnas_nni.spaces.deconas.DenseLayerSpace`) and
the searched fusions (:class:`~srnas_nni.spaces.deconas.FusionSpace`) under one-shot strategies.

Each form takes over its space module in place (same weight slabs), by class: a form is written
``SpaceModule + mixin``.

* ``RandomOneShot`` (and ENAS): :class:`DenseLayerPathSampling` samples the bits (shared labels
  sample once per step) and runs the gathered slabs -- the official weight-sharing supernet;
* ``DARTS`` (and ``GumbelDARTS``, and ``Proxyless``, which keeps the same alphas):
  :class:`DenseLayerDifferentiable` relaxes each bit to ``p = softmax(alpha)[1]``: a branch reads
  every candidate scaled by its ``p``, is active with probability ``1 - prod(1 - p)``, the layer
  averages branches weighted by that activity and mixes in the empty-layer fallback by the
  probability that all branches are off. ``export`` keeps the bits whose ``alpha[1] > alpha[0]``.

The fusions' forms (:class:`FusionPathSampling`, :class:`FusionDifferentiable`) do the same for their
optional inputs. Freezing a supernet keeps its weights (the space modules' ``freeze`` copies the
gathered slabs into the plain layers).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ...nni_adapter.oneshot import BaseSuperNetModule
from ..deconas import DenseLayerSpace, FusionSpace

from nni.mutable import Categorical  # noqa: E402

__all__ = ["DenseLayerPathSampling", "DenseLayerDifferentiable", "FusionPathSampling", "FusionDifferentiable"]


class _InPlaceSupernet(BaseSuperNetModule):
    """A supernet class written ``SpaceClass + mixin``: its hook takes over an instance of exactly
    ``SpaceClass`` in place (same weights), then lets the mixin attach what it needs."""

    @classmethod
    def mutate(cls, module: nn.Module, name: str, memo: dict, mutate_kwargs: dict):
        if type(module) is cls.__bases__[0]:
            module.__class__ = cls
            module._become_supernet(memo, mutate_kwargs)
            return module
        return None

    def _become_supernet(self, memo: dict, mutate_kwargs: dict) -> None:
        pass


class _BitSampling(_InPlaceSupernet):
    """Path sampling over binary mutables: shared labels take the memo's value.

    Mixed into :class:`DenseLayerSpace` / :class:`FusionSpace`, which provide ``all_bits`` and
    ``chosen_inputs`` and run ``self.chosen`` in their forward.
    """

    def set_sample(self, sample: Mapping[str, Any]) -> None:
        self.chosen = self.chosen_inputs(sample)

    def resample(self, memo: dict[str, Any]) -> dict[str, Any]:
        result = {}
        for bit in self.all_bits():
            if bit.label not in memo and bit.label not in result:
                result[bit.label] = bit.random()
        self.set_sample({**memo, **result})
        return result

    def export(self, memo: dict[str, Any]) -> dict[str, Any]:
        # As NNI's PathSamplingLayer: a random-sampling supernet has no preferred architecture.
        return {bit.label: bit.random() for bit in self.all_bits() if bit.label not in memo}

    def export_probs(self, memo: dict[str, Any]) -> dict[str, Any]:
        return {bit.label: {value: 1.0 / len(bit.values) for value in bit.values}
                for bit in self.all_bits() if bit.label not in memo}


class DenseLayerPathSampling(DenseLayerSpace, _BitSampling):
    """One-shot (path-sampling) dense layer: sampled bits gather the weight slabs."""


class FusionPathSampling(FusionSpace, _BitSampling):
    """One-shot (path-sampling) fusion."""


class _BitDifferentiable(_InPlaceSupernet):
    """DARTS relaxation of binary mutables: ``p(bit on) = softmax(alpha)[1]`` (alphas shared by label).

    Mixed into the space classes like :class:`_BitSampling`; the alphas come from the strategy's memo.
    """

    def _become_supernet(self, memo: dict, mutate_kwargs: dict) -> None:
        self._softmax = mutate_kwargs.get("softmax", nn.Softmax(-1))
        self._arch_alpha = nn.ParameterDict()
        for bit in self.all_bits():
            if bit.label not in memo:
                raise KeyError(f"{bit.label}: no architecture parameter in the DARTS memo")
            self._arch_alpha[bit.label.replace("/", "__")] = memo[bit.label]

    def probability_on(self, bit: Categorical) -> torch.Tensor:
        return self._softmax(self._arch_alpha[bit.label.replace("/", "__")])[bit.values.index(1)]

    def resample(self, memo: dict[str, Any]) -> dict[str, Any]:
        return {}

    def export(self, memo: dict[str, Any]) -> dict[str, Any]:
        return {bit.label: int(self.probability_on(bit).item() > 0.5) for bit in self.all_bits()
                if bit.label not in memo}

    def export_probs(self, memo: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for bit in self.all_bits():
            if bit.label not in memo:
                weights = self._softmax(self._arch_alpha[bit.label.replace("/", "__")]).detach().cpu().tolist()
                out[bit.label] = dict(zip(bit.values, weights))
        return out

    def arch_parameters(self) -> Iterable[nn.Parameter]:
        yield from self._arch_alpha.values()


class DenseLayerDifferentiable(DenseLayerSpace, _BitDifferentiable):
    """DARTS dense layer (see the module docstring for the relaxation)."""

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        outputs, activity = [], []
        for kind, values in self.bits.items():
            probs = [self.probability_on(bit) for bit in values]
            x = torch.cat([p * state for p, state in zip(probs, states)], dim=1)
            outputs.append(self.branch_forward(kind, x, None))
            activity.append(1 - torch.prod(torch.stack([1 - p for p in probs])))
        activity_t = torch.stack(activity)
        mean = sum(a * out for a, out in zip(activity_t, outputs)) / (activity_t.sum() + 1e-6)
        all_off = torch.prod(1 - activity_t)
        out = (1 - all_off) * torch.relu(mean) + all_off * torch.relu(states[-1])
        return self.attention(out)


class FusionDifferentiable(FusionSpace, _BitDifferentiable):
    """DARTS fusion: each optional input is scaled by its probability of being fused."""

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        n = len(self.bits)
        scaled = [self.probability_on(bit) * states[i] for i, bit in enumerate(self.bits)] + [states[n]]
        return F.conv2d(torch.cat(scaled, dim=1), self.weight, self.bias)
