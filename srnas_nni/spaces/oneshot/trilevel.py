"""Trilevel's supernet forms: the network path (:class:`~srnas_nni.spaces.trilevel.NetworkPath`) under
one-shot strategies.

* ``RandomOneShot``: :class:`NetworkPathSampling` runs one sampled path per step.
* ``DARTS`` / ``GumbelDARTS``: :class:`NetworkPathDifferentiable` is the paper's relaxed tree: every
  candidate exit once, over a shared prefix trie, mixed by softmax(gamma); export takes the heaviest.

The cells' op choices and kernel widths take NNI's forms (``LayerChoice``; ``MutableConv2d`` becomes a
weight-sharing ``MixedConv2d``, the paper's slimmable convolution).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ...nni_adapter.oneshot import BaseSuperNetModule
from ..trilevel import CELL, NetworkPath, path_steps
from .common import DifferentiableChoice

from nni.mutable import Categorical  # noqa: E402

__all__ = ["NetworkPathSampling", "NetworkPathDifferentiable"]


class NetworkPathSampling(NetworkPath, BaseSuperNetModule):
    """Path-sampling supernet form of :class:`NetworkPath` (``RandomOneShot``): one path per step."""

    def __init__(self, cells: Sequence[nn.Module], ups: Sequence[nn.Module], path_choice: Categorical):
        super().__init__(cells, ups, path_choice)
        self._sampled: str | None = None

    @classmethod
    def mutate(cls, module: nn.Module, name: str, memo: dict[str, Any], mutate_kwargs: dict[str, Any]):
        if type(module) is NetworkPath:
            return cls(list(module.cells), list(module.ups), module.path_choice)
        return None

    def resample(self, memo: dict[str, Any]) -> dict[str, Any]:
        self._sampled = memo[self.label] if self.label in memo else self.path_choice.random()
        return {self.label: self._sampled}

    def export(self, memo: dict[str, Any]) -> dict[str, Any]:
        # Like NNI's path-sampling layers: a random path (the search happens elsewhere).
        return {} if self.label in memo else {self.label: self.path_choice.random()}

    def export_probs(self, memo: dict[str, Any]) -> dict[str, Any]:
        if self.label in memo:
            return {}
        uniform = 1.0 / len(self.path_choice.values)
        return {self.label: {path: uniform for path in self.path_choice.values}}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._sampled is None:
            raise RuntimeError(f"{self.label}: resample() must pick a path before the forward pass")
        return self.run_path(x, self._sampled)


class NetworkPathDifferentiable(NetworkPath, DifferentiableChoice):
    """Differentiable supernet form of :class:`NetworkPath` (``DARTS``, ``GumbelDARTS``).

    Every candidate exit is computed once, sharing prefixes (a trie walk: ``"CCU"`` reuses the
    features of ``"CC"``), and the output is ``sum_j softmax(gamma)_j * h_j``: the paper's relaxed
    mixture of exits. ``export`` takes the heaviest exit. ``softmax`` is the strategy's (a
    sparsestmax module can be passed through ``mutate_kwargs['softmax']``).
    """

    def __init__(self, cells: Sequence[nn.Module], ups: Sequence[nn.Module], path_choice: Categorical,
                 alpha: torch.Tensor, softmax: nn.Module):
        super().__init__(cells, ups, path_choice)
        self._init_relaxation(alpha, softmax)

    @property
    def relaxed_choice(self) -> Categorical:
        return self.path_choice

    @classmethod
    def relax(cls, module, alpha, softmax):
        return cls(list(module.cells), list(module.ups), module.path_choice, alpha, softmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.mixture_weights()
        # Exits whose weight is exactly 0 (sparse relaxations) are not computed at all.
        active = (weights.detach() != 0).tolist()
        features: dict[str, torch.Tensor] = {}
        mixture: torch.Tensor | None = None
        for index, path in enumerate(self.path_choice.values):
            if not active[index]:
                continue
            # Longest already-computed prefix, then the remaining steps.
            start = len(path)
            while start > 0 and path[:start] not in features:
                start -= 1
            out = features[path[:start]] if start > 0 else x
            steps = path_steps(path)
            for position in range(start, len(path)):
                kind, i = steps[position]
                out = (self.cells[i] if kind == CELL else self.ups[i])(out)
                features[path[:position + 1]] = out
            term = weights[index] * out
            mixture = term if mixture is None else mixture + term
        assert mixture is not None
        return mixture
