"""Supernet forms more than one space uses: the DARTS mixin of a single choice, and path sampling of
:class:`~srnas_nni.spaces.base.InputSelect`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...nni_adapter.oneshot import BaseSuperNetModule, PathSamplingInput
from ..base import InputSelect, SelectedInputs

from nni.mutable import Categorical  # noqa: E402

__all__ = ["DifferentiableChoice", "PathSamplingInputSelect"]


class DifferentiableChoice(BaseSuperNetModule):
    """Mixin for the DARTS forms of custom single-choice modules (HNAS position, Trilevel path).

    One logit vector per label (``_arch_alpha``, created by the strategy and found in its memo),
    turned into mixture weights by the strategy's ``softmax`` (a sparsestmax plugs in here).
    A subclass is written ``SpaceModule + DifferentiableChoice``: it names its ``Categorical`` in
    :attr:`relaxed_choice`, builds itself from a ``SpaceModule`` in :meth:`relax` (calling
    :meth:`_init_relaxation`), and weights its candidates by :meth:`mixture_weights`.
    """

    _arch_parameter_names: list[str] = ["_arch_alpha"]

    @classmethod
    def mutate(cls, module: nn.Module, name: str, memo: dict[str, Any], mutate_kwargs: dict[str, Any]):
        if type(module) is not cls.__bases__[0]:
            return None
        if module.label not in memo:
            raise KeyError(f"{module.label}: no architecture logits in the DARTS memo")
        return cls.relax(module, memo[module.label], mutate_kwargs.get("softmax", nn.Softmax(-1)))

    @classmethod
    def relax(cls, module: nn.Module, alpha: torch.Tensor, softmax: nn.Module) -> "DifferentiableChoice":
        raise NotImplementedError

    @property
    def relaxed_choice(self) -> Categorical:
        raise NotImplementedError

    def _init_relaxation(self, alpha: torch.Tensor, softmax: nn.Module) -> None:
        choice = self.relaxed_choice
        if len(alpha) != len(choice.values):
            raise ValueError(f"{choice.label}: {len(alpha)} logits for {len(choice.values)} candidates")
        self._arch_alpha = alpha
        self._softmax = softmax

    def mixture_weights(self) -> torch.Tensor:
        return self._softmax(self._arch_alpha)

    def resample(self, memo: dict[str, Any]) -> dict[str, Any]:
        return {}

    def export(self, memo: dict[str, Any]) -> dict[str, Any]:
        choice = self.relaxed_choice
        if choice.label in memo:
            return {}
        return {choice.label: choice.values[int(torch.argmax(self._arch_alpha).item())]}

    def export_probs(self, memo: dict[str, Any]) -> dict[str, Any]:
        choice = self.relaxed_choice
        if choice.label in memo:
            return {}
        return {choice.label: dict(zip(choice.values, self.mixture_weights().detach().cpu().tolist()))}

    def arch_parameters(self):
        for name, parameter in self.named_parameters():
            if name in self._arch_parameter_names:
                yield parameter


class PathSamplingInputSelect(PathSamplingInput):
    """Path sampling (``RandomOneShot``) of :class:`InputSelect`.

    NNI's ``PathSamplingInput`` hook takes the exact ``InputChoice`` class only, and reduces only by
    sum, mean or concat; this one takes :class:`InputSelect` and also returns the picked tensors as a
    list, in sample order (``reduction='none'``, HiNAS's nodes). Frozen (e.g. the mutated space frozen
    with an exported sample), it is our plain :class:`SelectedInputs`, not NNI's ``ChosenInputs``.
    """

    @classmethod
    def mutate(cls, module, name, memo, mutate_kwargs):
        if type(module) is InputSelect:
            if module.n_chosen is None:
                raise ValueError(f"{module.label}: path sampling needs a fixed n_chosen")
            return cls(module.n_candidates, module.n_chosen, module.reduction, module.label)
        return None

    def _reduction(self, items: list[Any], sampled: list[Any]) -> Any:
        if self.reduction == "none":
            return list(items)
        return super()._reduction(items, sampled)

    def freeze(self, sample: dict) -> nn.Module:
        self.validate(sample)
        return SelectedInputs(self.choice.freeze(sample), self.reduction)
