"""DLSR: the hierarchical, differentiable SR search space of Huang et al. (arXiv 2105.03939).

This module holds the space (the network, its mutable modules) and its cost model
(:meth:`DLSRSpace.cost`); the supernet forms of the input fusions are in
:mod:`srnas_nni.spaces.oneshot.dlsr`.

The network is RFDN's (residual feature distillation network) with two levels left open:

* **Backbone** (fixed): ``conv 3x3 (3 -> channels)`` -> ``num_cells`` distillation cells ->
  ``1x1 (num_cells * channels -> channels)`` + LeakyReLU over *all* cell outputs -> ``conv 3x3`` ->
  plus the stem output (long skip) -> ``conv 3x3 (channels -> 3 * scale^2)`` + ``PixelShuffle(scale)``.
  Every convolution runs at LR resolution. No mean shift (the official code has none).
* **Cell level** (:class:`DistillationCell`, RFDN's RFDB): three stages; stage ``i`` keeps a 1x1
  "distilled" branch (``channels -> channels / 2``) and refines the features with a searched op plus
  a residual: ``r_i = LReLU(op_i(r_{i-1}) + r_{i-1})``. Then ``conv 3x3 (channels -> channels / 2)``,
  the concatenation of the four halves, ``1x1 (2 * channels -> channels)`` and enhanced spatial
  attention (:class:`EnhancedSpatialAttention`). The three refine ops are the only searched part of a
  cell and they are **shared by all cells** (one decision each, the same label in every cell), from
  nine candidates (:data:`REFINE_OPS`): plain convolutions 1x1/3x3/5x5/7x7, separable convolutions
  3x3/5x5/7x7 (DARTS' ``[ReLU, depthwise, pointwise] x 2``) and dilated convolutions 3x3/5x5
  (``ReLU, depthwise with dilation 2, pointwise``), all bias-free as in the official ``operations_hh.py``.
* **Network level**: cell ``k`` reads the concatenation of ``inputs_per_cell`` (2) outputs chosen
  among all earlier cells, fused by ``1x1 (2 * channels -> channels)`` + LeakyReLU
  (:class:`CellInputFusion`); the first cells, which have fewer predecessors than that, are chained.
  With the defaults: cells 1-2 chained, cells 3-6 each pick 2 of their 2, 3, 4, 5 predecessors.

Labels (a sample is a flat dict of these):

* ``cell/refine0``, ``cell/refine1``, ``cell/refine2``: the op of stage 0/1/2 of every cell, one of
  the names in :data:`REFINE_OPS` (e.g. ``"sep_conv_3x3"``);
* ``network/cell3/inputs`` ... ``network/cell6/inputs``: a list of 2 distinct indices of earlier cell
  outputs (0 = cell 1), in concatenation order.

Default size: 9^3 refine ops x C(2,2) C(3,2) C(4,2) C(5,2) = 729 x 180 = 131,220 architectures.

Constructor arguments: ``scale`` (2, 3, 4; one ``PixelShuffle(scale)`` step as in RFDN), ``channels``
(nf, 48 in the paper; a multiple of 4 because ESA works at ``channels / 4``), ``num_cells`` (6),
``inputs_per_cell`` (2: how many earlier outputs a searched cell fuses), ``refine_ops`` (the candidate
names, default all nine), ``negative_slope`` (0.05, RFDN's LeakyReLU).

Cost: only the three refine ops change the frozen network's size (every input fusion is
``2 * channels -> channels`` whatever it reads); :meth:`DLSRSpace.cost` adds the three ops' tabulated
weights (x cells, x LR pixels for Mult-Adds) to constants computed at construction, with ESA's
strided and pooled maps sized by the same function the forward pass uses.

One-shot: NNI's forms mix or sample the refine ops (one alpha per label, so all cells share it as in
DLSR's single ``alphas[3, 9]``); the input fusions have their own supernet forms, DLSR's relaxation of
the network level for ``DARTS``/``GumbelDARTS`` among them, in :mod:`srnas_nni.spaces.oneshot.dlsr`.

Freezing (the base class's ``frozen_copy``) copies only what the frozen network keeps, so frozen
networks never share weights with the space or with each other.

Differences from the official code (``DawnHH/DLSR-PyTorch``, ``models/rfdn_block_6_beta_search.py``,
``models/beta1_para_loss.py``, ``models/operations_hh.py``), and why:

* x3/x4 use one ``conv + PixelShuffle(scale)`` (the code is hard-wired to x2; RFDN does x4 this way,
  and it reproduces the paper's 18G Mult-Adds at x4).
* ESA on tiny inputs: the official strided 3x3 and 7x7/3 max-pool need an LR side of at least 15
  pixels. Here the strided conv's input is zero-padded to 3 pixels and the pool kernel shrinks to the
  map when the map is smaller than 7, so any input size works; for inputs of 15 pixels or more per side
  this is the official computation exactly.
* Input choices are ordinary NNI input choices (:class:`~srnas_nni.spaces.base.InputSelect`); the
  search supernet of the official code (weighted concat of all earlier outputs, a wide 1x1) is the
  DARTS supernet form here instead of the space itself, so that the space's frozen networks are exactly
  the retrained ones.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..models.ops import DistillationCell, PixelShuffleTail, SeparableConv2d, conv2d, esa_map_sizes
from . import register_space
from .base import InputSelect, SpaceCost, SRModelSpace

from nni.mutable import CategoricalMultiple, SampleValidationError, label_scope  # noqa: E402
from nni.nas.nn.pytorch import LayerChoice  # noqa: E402

__all__ = ["REFINE_OPS", "NUM_STAGES", "DLSRSpace", "CellInputFusion", "make_refine_op", "refine_op_weights"]

#: The nine candidate refine ops of DLSR (``PRIMITIVES`` of the official search code), in its order.
REFINE_OPS: tuple[str, ...] = (
    "conv_1x1", "conv_3x3", "conv_5x5", "conv_7x7",
    "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7",
    "dil_conv_3x3", "dil_conv_5x5",
)

#: Number of refine stages in a distillation cell.
NUM_STAGES = 3


def _refine_op_shape(name: str) -> tuple[str, int]:
    """``"sep_conv_5x5"`` -> ``("sep", 5)``."""
    kind, _, size = name.rpartition("_")
    kernel = int(size.split("x")[0])
    return {"conv": "conv", "sep_conv": "sep", "dil_conv": "dil"}[kind], kernel


def make_refine_op(name: str, channels: int) -> nn.Module:
    """One candidate refine op (``channels -> channels``, same size), as ``operations_hh.py`` defines it.

    ``conv_k``: a plain bias-free conv; ``sep_conv_k``: ``[ReLU, depthwise k, pointwise] x 2``;
    ``dil_conv_k``: ``ReLU, depthwise k with dilation 2, pointwise``. The ReLUs are not in place: the
    op's input is also the stage's residual.
    """
    kind, kernel = _refine_op_shape(name)
    if kind == "conv":
        return conv2d(channels, channels, kernel, bias=False)
    if kind == "sep":
        return nn.Sequential(
            nn.ReLU(), SeparableConv2d(channels, channels, kernel, bias=False),
            nn.ReLU(), SeparableConv2d(channels, channels, kernel, bias=False),
        )
    return nn.Sequential(nn.ReLU(), SeparableConv2d(channels, channels, kernel, dilation=2, bias=False))


def refine_op_weights(name: str, channels: int) -> int:
    """Weights of :func:`make_refine_op` (no biases); also its Mult-Adds per LR pixel."""
    kind, kernel = _refine_op_shape(name)
    if kind == "conv":
        return channels * channels * kernel * kernel
    separable = channels * kernel * kernel + channels * channels
    return 2 * separable if kind == "sep" else separable


class CellInputFusion(nn.Module):
    """A searched cell's input: the chosen earlier cell outputs, concatenated, ``1x1`` + LeakyReLU.

    ``select`` is an :class:`InputSelect` (``reduction="concat"``) in the space and a
    :class:`SelectedInputs` once frozen; ``fuse`` maps ``n_chosen * channels`` to ``channels``.
    """

    def __init__(self, select: nn.Module, fuse: nn.Conv2d, negative_slope: float = 0.05):
        super().__init__()
        self.select = select
        self.fuse = fuse
        self.negative_slope = negative_slope

    def forward(self, earlier: list[torch.Tensor]) -> torch.Tensor:
        return F.leaky_relu(self.fuse(self.select(earlier)), self.negative_slope)


class DLSRNetwork(nn.Module):
    """The whole DLSR network (space or frozen): stem, cells with their input fusions, tail."""

    def __init__(self, stem: nn.Module, cells: Sequence[nn.Module], fusions: dict[int, nn.Module],
                 collect: nn.Module, lr_conv: nn.Module, tail: nn.Module, negative_slope: float = 0.05):
        super().__init__()
        self.stem = stem
        self.cells = nn.ModuleList(cells)
        # Keyed by the 1-based cell number ("3" ... "6"); cells without a fusion read the previous output.
        self.fusions = nn.ModuleDict({str(k): m for k, m in fusions.items()})
        self.collect = collect
        self.lr_conv = lr_conv
        self.tail = tail
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.stem(x)
        outputs: list[torch.Tensor] = []
        features = stem
        for number, cell in enumerate(self.cells, start=1):
            key = str(number)
            if key in self.fusions:
                features = self.fusions[key](outputs)
            features = cell(features)
            outputs.append(features)
        collected = F.leaky_relu(self.collect(torch.cat(outputs, dim=1)), self.negative_slope)
        return self.tail(self.lr_conv(collected) + stem)


@register_space("dlsr")
class DLSRSpace(SRModelSpace):
    """DLSR's search space: shared refine ops in RFDN cells, top-2 connections between cells.

    See the module docstring for the structure, the labels and what each argument means.
    """

    supernet_forms = "dlsr"  # the input fusions

    def __init__(self, scale: int = 2, channels: int = 48, num_cells: int = 6, inputs_per_cell: int = 2,
                 refine_ops: Sequence[str] | None = None, negative_slope: float = 0.05):
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"DLSR supports x2, x3 and x4, not x{scale}")
        if channels < 4 or channels % 4:
            raise ValueError(f"channels must be a positive multiple of 4 (ESA uses channels / 4), got {channels}")
        if num_cells < 1:
            raise ValueError(f"num_cells must be >= 1, got {num_cells}")
        if inputs_per_cell < 1:
            raise ValueError(f"inputs_per_cell must be >= 1, got {inputs_per_cell}")
        ops = tuple(REFINE_OPS if refine_ops is None else refine_ops)
        unknown = [op for op in ops if op not in REFINE_OPS]
        if unknown or not ops or len(set(ops)) != len(ops):
            raise ValueError(f"refine_ops must be distinct names from {list(REFINE_OPS)}, got {list(ops)}")
        self.scale = int(scale)
        self.channels = int(channels)
        self.num_cells = int(num_cells)
        self.inputs_per_cell = int(inputs_per_cell)
        self.refine_ops = ops
        self.negative_slope = float(negative_slope)

        cells = []
        for _ in range(num_cells):
            with label_scope("cell"):
                # The same label in every cell: one decision per stage, shared by all cells.
                stage_ops = [
                    LayerChoice({op: make_refine_op(op, channels) for op in ops}, label=f"refine{stage}")
                    for stage in range(NUM_STAGES)
                ]
            cells.append(DistillationCell(channels, stage_ops, negative_slope))

        fusions: dict[int, nn.Module] = {}
        for number in range(1, num_cells + 1):
            earlier = number - 1
            if earlier < inputs_per_cell:
                continue  # too few predecessors to choose from: chained
            with label_scope("network"), label_scope(f"cell{number}"):
                select = InputSelect(earlier, n_chosen=inputs_per_cell, reduction="concat", label="inputs")
            fusions[number] = CellInputFusion(select, nn.Conv2d(inputs_per_cell * channels, channels, 1),
                                              negative_slope)

        self.network = DLSRNetwork(
            stem=conv2d(self.in_channels, channels, 3),
            cells=cells,
            fusions=fusions,
            collect=nn.Conv2d(num_cells * channels, channels, 1),
            lr_conv=conv2d(channels, channels, 3),
            tail=PixelShuffleTail(channels, scale, self.in_channels),
            negative_slope=negative_slope,
        )
        self._build_cost_tables()

    # ------------------------------------------------------------------------------------------
    # Cost model

    def _build_cost_tables(self) -> None:
        """Constant parts of params and Mult-Adds, and per-op weights (computed once)."""
        c, d, f, n = self.channels, self.channels // 2, self.channels // 4, self.num_cells
        rgb = self.in_channels
        tail_out = rgb * self.scale * self.scale
        fused_cells = sum(1 for k in range(1, n + 1) if k - 1 >= self.inputs_per_cell)

        # Weights of stride-1 convolutions at full LR size (their Mult-Adds are weights x LR pixels).
        esa_full = c * f + f * f + f * c
        cell_full = NUM_STAGES * c * d + c * d * 9 + 4 * d * c + esa_full
        self._full_weights = (
            rgb * c * 9 + n * cell_full + fused_cells * self.inputs_per_cell * c * c
            + n * c * c + c * c * 9 + c * tail_out * 9
        )
        # ESA's strided 3x3 runs on the strided map, its three 3x3 on the pooled map.
        self._esa_strided_weights = n * f * f * 9
        self._esa_pooled_weights = n * 3 * f * f * 9

        esa_params = esa_full + 4 * f * f * 9 + (f + f + 4 * f + c)
        cell_params = cell_full - esa_full + esa_params + NUM_STAGES * d + d + c
        self._fixed_params = (
            rgb * c * 9 + c + n * cell_params
            + fused_cells * (self.inputs_per_cell * c * c + c)
            + n * c * c + c + c * c * 9 + c + c * tail_out * 9 + tail_out
        )
        self._op_weights = {op: refine_op_weights(op, c) for op in self.refine_ops}
        # The input choices' own mutables, to validate samples without walking the module tree.
        self._input_labels: dict[str, CategoricalMultiple] = {
            fusion.select.label: fusion.select.choice for fusion in self.network.fusions.values()
        }

    def _check_cost_sample(self, sample: dict[str, Any]) -> list[str]:
        """The three refine op names of ``sample``; NNI's ``SampleValidationError`` if it does not fit."""
        expected = {f"cell/refine{i}" for i in range(NUM_STAGES)} | set(self._input_labels)
        if set(sample) != expected:
            missing, unknown = sorted(expected - set(sample)), sorted(set(sample) - expected)
            raise SampleValidationError(f"sample labels do not fit the space: missing {missing}, unknown {unknown}")
        ops = [sample[f"cell/refine{i}"] for i in range(NUM_STAGES)]
        for i, op in enumerate(ops):
            if op not in self._op_weights:
                raise SampleValidationError(f"cell/refine{i}: {op!r} is not one of {list(self.refine_ops)}")
        for label, choice in self._input_labels.items():
            problem = choice.check_contains(sample)
            if problem is not None:
                raise SampleValidationError(f"{label}: {problem}")
        return ops

    def cost(self, sample: dict[str, Any], hr_size: tuple[int, int] = (720, 1280)) -> SpaceCost:
        """Exact params and Mult-Adds of ``freeze(sample)`` for an ``hr_size`` output, without building it."""
        ops = self._check_cost_sample(sample)
        lr_h, lr_w = math.ceil(hr_size[0] / self.scale), math.ceil(hr_size[1] / self.scale)
        strided_h, pooled_h = esa_map_sizes(lr_h)
        strided_w, pooled_w = esa_map_sizes(lr_w)
        op_weights = self.num_cells * sum(self._op_weights[op] for op in ops)
        multadds = (
            (self._full_weights + op_weights) * lr_h * lr_w
            + self._esa_strided_weights * strided_h * strided_w
            + self._esa_pooled_weights * pooled_h * pooled_w
        )
        return SpaceCost(params=self._fixed_params + op_weights, multadds=multadds)
