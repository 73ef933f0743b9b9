"""HNAS's supernet forms: the upsampling position (:class:`~srnas_nni.spaces.hnas.UpsamplingPosition`)
under one-shot strategies.

* ``RandomOneShot`` / ``ENAS``: :class:`UpsamplingPositionPathSampling` runs the stack at one sampled
  position per step.
* ``DARTS`` / ``GumbelDARTS``: :class:`UpsamplingPositionDifferentiable` mixes every position by
  softmax(alpha), sharing the LR prefix of normal cells between positions.

The cells' own choices (``LayerChoice`` ops, ``InputSelect`` inputs) take NNI's forms. ``Proxyless`` has
no form of the position: NNI's check names it.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ...nni_adapter.oneshot import BaseSuperNetModule
from ..hnas import HNASCell, UpsamplingPosition, run_cells_from
from .common import DifferentiableChoice

from nni.mutable import Categorical  # noqa: E402

__all__ = ["UpsamplingPositionPathSampling", "UpsamplingPositionDifferentiable"]


class UpsamplingPositionPathSampling(UpsamplingPosition, BaseSuperNetModule):
    """Path sampling (RandomOneShot, ENAS): each step runs the stack at one sampled position."""

    def __init__(self, normal_cells: Sequence[HNASCell], upsampling_cell: HNASCell, position: Categorical):
        super().__init__(normal_cells, upsampling_cell, position)
        self._sampled: int | None = None

    @classmethod
    def mutate(cls, module, name, memo, mutate_kwargs):
        if type(module) is UpsamplingPosition:
            return cls(list(module.normal_cells), module.upsampling_cell, module.position)

    def resample(self, memo: dict[str, Any]) -> dict[str, Any]:
        self._sampled = memo[self.label] if self.label in memo else self.position.random()
        return {self.label: self._sampled}

    def export(self, memo: dict[str, Any]) -> dict[str, Any]:
        return {} if self.label in memo else {self.label: self.position.random()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._sampled is None:
            raise RuntimeError("resample() the supernet before running it")
        return self.run(x, int(self._sampled))


class UpsamplingPositionDifferentiable(UpsamplingPosition, DifferentiableChoice):
    """DARTS relaxation: ``sum_p softmax(alpha)_p * stack_p(x)`` over every position ``p``.

    The LR prefix (normal cells before the upsampling cell) is shared by all positions, so one
    forward costs ``L - 1`` LR cells, ``L`` upsampling cells and ``(L - 1) L / 2`` HR cells.
    """

    def __init__(self, normal_cells: Sequence[HNASCell], upsampling_cell: HNASCell, position: Categorical,
                 alpha: torch.Tensor, softmax: nn.Module):
        super().__init__(normal_cells, upsampling_cell, position)
        self._init_relaxation(alpha, softmax)

    @property
    def relaxed_choice(self) -> Categorical:
        return self.position

    @classmethod
    def relax(cls, module, alpha, softmax):
        return cls(list(module.normal_cells), module.upsampling_cell, module.position, alpha, softmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.mixture_weights()
        # Positions whose weight is exactly 0 (sparse relaxations) are not computed; the shared LR
        # prefix runs only as far as the last active position.
        active = (weights.detach() != 0).tolist()
        s0, s1 = x, x
        total = None
        for position in range(self.num_cells):
            if not any(active[position:]):
                break
            if position > 0:
                s0, s1 = s1, self.normal_cells[position - 1](s0, s1)
            if not active[position]:
                continue
            up = self.upsampling_cell(s0, s1)
            out = run_cells_from(list(self.normal_cells), position, up, up)[1]
            total = weights[position] * out if total is None else total + weights[position] * out
        return total
