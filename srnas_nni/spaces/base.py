"""What every srnas-nni search space is.

An SR search space is an NNI :class:`~nni.nas.nn.pytorch.ModelSpace` whose constructor builds
one attribute, ``self.network``: the whole SR network, written once, with NNI mutables
(``LayerChoice``, :class:`InputSelect`, ``nni.choice`` values, custom mutable modules) where the
architecture is open. The space's ``forward`` is the network's.

Contract (checked for every registered space by ``tests/unit/spaces/test_spaces.py``):

* ``scale`` (2, 3 or 4) and ``in_channels = 3`` attributes; RGB LR in [0, 1] -> RGB HR;
* labels are explicit and read like a path (``normal/node2/op0``, ``up/position``), so a sample
  is a flat ``{label: value}`` dict that survives JSON;
* :meth:`SRModelSpace.freeze` validates the sample (NNI's ``SampleValidationError`` naming the
  label) and returns the frozen ``network``: a plain ``nn.Module`` with no NNI type in it, carrying
  ``scale`` and ``in_channels``;
* :meth:`SRModelSpace.cost` gives the frozen model's parameters and Mult-Adds (the
  :func:`srnas_nni.evaluation.cost.measure` convention) without building it, exactly and in well
  under 10 ms; the base implementation builds and measures (exact, slow) and spaces override it
  with a cost model;
* under NNI's one-shot strategies, the space's custom mutable modules become the supernet forms of
  :mod:`srnas_nni.spaces.oneshot` (named by :attr:`SRModelSpace.supernet_forms`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..nni_adapter.oneshot import MixedOperation, freeze_mixed_operation
from ..study.keys import plain_value

from nni.mutable import Categorical, CategoricalMultiple, Mutable, SampleValidationError  # noqa: E402
from nni.nas.nn.pytorch import ChosenInputs, InputChoice, LayerChoice, ModelSpace  # noqa: E402

__all__ = ["SRModelSpace", "InputSelect", "SelectedInputs", "SpaceCost", "NNI_MODULE_PREFIX", "frozen_copy"]

#: Frozen models must hold no module whose class comes from here.
NNI_MODULE_PREFIX = "nni."


@dataclass(frozen=True)
class SpaceCost:
    params: int
    multadds: int


class SelectedInputs(nn.Module):
    """The frozen form of :class:`InputSelect`: pick fixed inputs and reduce them."""

    def __init__(self, chosen: Sequence[int] | int | None, reduction: str = "sum"):
        super().__init__()
        if chosen is None:
            chosen = []
        self.chosen = [int(chosen)] if isinstance(chosen, int) else [int(c) for c in chosen]
        self.reduction = reduction

    def forward(self, inputs: list[torch.Tensor]):
        picked = [inputs[i] for i in self.chosen]
        if self.reduction == "none":
            return picked
        if not picked:
            raise RuntimeError("no input chosen")
        if self.reduction == "concat":
            return torch.cat(picked, dim=1)
        total = picked[0]
        for tensor in picked[1:]:
            total = total + tensor
        return total / len(picked) if self.reduction == "mean" else total

    def extra_repr(self) -> str:
        return f"chosen={self.chosen}, reduction={self.reduction!r}"


class InputSelect(InputChoice):
    """NNI's ``InputChoice`` whose frozen form is our plain :class:`SelectedInputs`.

    One-shot strategies treat it as an ``InputChoice`` (it is one); freezing no longer leaves
    NNI's ``ChosenInputs`` in the network.
    """

    @classmethod
    def create_fixed_module(cls, sample: dict, n_candidates: int, n_chosen: int | None = 1,
                            reduction: str = "sum", *, weights=None, label=None, **kwargs):
        chosen = cls._inner_choice(n_candidates, n_chosen, weights, label).freeze(sample)
        return SelectedInputs(chosen, reduction)

    def freeze(self, sample: dict) -> nn.Module:
        self.validate(sample)
        return SelectedInputs(self.choice.freeze(sample), self.reduction)


def frozen_copy(module: nn.Module, sample: dict[str, Any]) -> nn.Module:
    """A frozen copy of ``module`` holding only the chosen candidates.

    NNI's ``recursive_freeze`` deep-copies a parent with *all* its candidates before swapping the
    frozen children in (a second or more for a paper-size cell); this copies only what is kept.
    Weights are copied, so the frozen model never shares tensors with the space or the supernet
    (whose one-shot modules freeze weight-preserving). A supernet's weight-sharing mixed operations
    freeze through the adapter (:func:`~srnas_nni.nni_adapter.oneshot.freeze_mixed_operation`: NNI's
    own ``freeze`` fails on them).
    """
    if isinstance(module, LayerChoice):  # also the one-shot forms (subclasses)
        return frozen_copy(module[module.choice.freeze(sample)], sample)
    if isinstance(module, MixedOperation):
        return freeze_mixed_operation(module, sample)
    if isinstance(module, Mutable):
        frozen = module.freeze(sample)
        if isinstance(frozen, ChosenInputs):  # what NNI's supernet input modules freeze to
            return SelectedInputs(frozen.chosen, frozen.reduction)
        return copy.deepcopy(frozen)
    clone = copy.copy(module)
    clone._parameters = {name: copy.deepcopy(value) for name, value in module._parameters.items()}
    clone._buffers = {name: copy.deepcopy(value) for name, value in module._buffers.items()}
    clone._modules = {name: None if child is None else frozen_copy(child, sample)
                      for name, child in module._modules.items()}
    return clone


def _input_select_as_input_choice(module: nn.Module, name: str, memo: dict, mutate_kwargs: dict):
    """One-shot hook, after the space's own: NNI's supernet hooks accept exactly ``InputChoice``; ours
    is one in all but its frozen form, so hand it over as one (None lets the default hooks convert it)."""
    if type(module) is InputSelect:
        module.__class__ = InputChoice
    return None


class SRModelSpace(ModelSpace):
    """Base class of the SR search spaces (see the module docstring for the contract).

    A space with custom mutable modules names its supernet forms in :attr:`supernet_forms`.
    """

    scale: int
    in_channels: int = 3
    network: nn.Module
    #: The space's row of :data:`srnas_nni.spaces.oneshot.SUPERNET_FORMS` (None: NNI's hooks suffice).
    supernet_forms: str | None = None

    @classmethod
    def extra_oneshot_hooks(cls, strategy) -> list:
        """The mutation hooks NNI's one-shot ``strategy`` runs before its own (NNI calls this)."""
        from .oneshot import oneshot_hooks

        return oneshot_hooks(cls.supernet_forms, strategy) + [_input_select_as_input_choice]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def check_sample(self, sample: dict[str, Any]) -> None:
        """Raise NNI's ``SampleValidationError`` naming the label when ``sample`` does not fit."""
        # The decisions are fixed at construction (one-shot mutation keeps labels and values), so
        # the tree walk of simplify() (~0.2 s at paper size) runs once per space.
        if getattr(self, "_decisions", None) is None:
            self._decisions = self.simplify()
        decisions = self._decisions
        unknown = sorted(set(sample) - set(decisions))
        if unknown:
            raise SampleValidationError(f"unknown label(s) {unknown}; the space has {sorted(decisions)}")
        for label, mutable in decisions.items():
            if label not in sample:
                raise SampleValidationError(f"{label}: missing from the sample")
            problem = mutable.check_contains(sample)
            if problem is not None:
                raise SampleValidationError(f"{label}: {problem}")

    def freeze(self, sample: dict[str, Any]) -> nn.Module:
        self.check_sample(sample)
        network = frozen_copy(self.network, sample)
        network.scale = int(self.scale)
        network.in_channels = int(self.in_channels)
        # Neither NNI's classes nor our own mutable modules may survive freezing.
        leftovers = sorted({type(m).__module__ + "." + type(m).__name__ for m in network.modules()
                            if type(m).__module__.startswith(NNI_MODULE_PREFIX) or isinstance(m, Mutable)})
        if leftovers:
            raise TypeError(f"{type(self).__name__}.freeze left NNI modules in the network: {leftovers}")
        return network

    def cost(self, sample: dict[str, Any], hr_size: tuple[int, int] = (720, 1280)) -> SpaceCost:
        """Params and Mult-Adds of ``freeze(sample)``; subclasses override with a fast model."""
        from ..evaluation.cost import measure

        report = measure(self.freeze(sample), self.scale, hr_size=hr_size)
        return SpaceCost(report.params, report.multadds)

    def random_sample(self, random_state: np.random.RandomState | None = None) -> dict[str, Any]:
        """A uniformly random ``{label: value}`` sample (NNI's ``random()`` returns a frozen model)."""
        memo: dict[str, Any] = {}
        state = random_state if random_state is not None else np.random.RandomState()
        for mutable in self.simplify().values():
            mutable.random(memo, state)
        return {label: plain_value(value) for label, value in memo.items()}

    def controller_levels(self) -> dict[str, list[str]]:
        """The decisions grouped into the levels of a hierarchical controller, in controller order.

        Level name -> its labels. A hierarchical controller samples the levels in this order and
        conditions the *last* level (the network level, when there are several) on the final
        states of all the others (the cell levels). Default: labels grouped by their first path
        segment (``normal/node0/op0`` -> ``normal``) in :meth:`simplify` order; spaces whose
        network-level labels do not come last override this.
        """
        levels: dict[str, list[str]] = {}
        for label in self.simplify():
            levels.setdefault(label.split("/", 1)[0], []).append(label)
        return levels

    def labels(self) -> dict[str, list]:
        """Every decision of the space: label -> its candidate values (flat, de-duplicated)."""
        out: dict[str, list] = {}
        for label, mutable in self.simplify().items():
            if isinstance(mutable, Categorical):
                out[label] = list(mutable.values)
            elif isinstance(mutable, CategoricalMultiple):
                out[label] = list(mutable.values)
            else:
                out[label] = [repr(mutable)]
        return out

    def info(self) -> dict[str, Any]:
        """Labels, choices per label and log10 of the number of architectures.

        The size is the product over labels of the number of values each can take (a
        ``CategoricalMultiple`` of n candidates choosing k counts C(n, k), or 2^n subsets when
        ``n_chosen`` is free); constraints between labels, if any, are not subtracted.
        """
        log10_size = 0.0
        labels = {}
        for label, mutable in self.simplify().items():
            if isinstance(mutable, CategoricalMultiple):
                n = len(mutable.values)
                k = mutable.n_chosen
                count = math.comb(n, k) if k is not None else 2**n
                labels[label] = {"values": list(mutable.values), "n_chosen": k, "count": count}
            else:
                count = len(mutable.values)
                labels[label] = {"values": list(mutable.values), "count": count}
            log10_size += math.log10(count)
        return {"space": type(self).__name__, "scale": self.scale, "labels": labels,
                "num_labels": len(labels), "log10_size": log10_size}
