"""HNAS: hierarchical search over cells and the upsampling position (Guo et al., arXiv 2003.04619).

This module holds the space (the network, its mutable modules) and its cost model
(:meth:`HNASSpace.cost`); the supernet forms of the upsampling position are in
:mod:`srnas_nni.spaces.oneshot.hnas`.

Network (official code ``guoyongcs/HNAS-SR``, ``src/model/arch.py``)::

    mean shift -> stem conv3x3 (3 -> 4C, no bias) -> L cells -> conv3x3 (4C -> 3) -> mean shift back

Exactly one of the ``L`` cells is the *upsampling cell*; the other ``L - 1`` are *normal cells*
sharing one genotype. Every cell reads the two previous cell outputs ``(s0, s1)``, preprocesses each
with ReLU + 1x1 conv (no bias) to ``C`` channels, and has ``num_nodes`` intermediate nodes; node
``i`` picks two inputs among the ``i + 2`` earlier states (0 = ``s0``, 1 = ``s1``, ``k >= 2`` = node
``k - 2``), applies one op to each and sums them. The cell output concatenates all nodes
(``num_nodes * C`` channels). After the upsampling cell both ``s0`` and ``s1`` are its output, so
every later cell runs at HR resolution: an early position costs far more Mult-Adds.

Levels and labels (all values JSON-friendly):

* ``normal/node{i}/input{j}`` (list of one int, ``j`` in 0, 1) and ``normal/node{i}/op{j}`` (op
  name): the normal cell, shared by all normal cells (one genotype, as in the paper).
* ``up/node{i}/input{j}`` and ``up/node{i}/op{j}``: the upsampling cell.
* ``up/position`` (int in ``0 .. L-1``): the index of the upsampling cell in the stack, owned by
  :class:`UpsamplingPosition`, a custom mutable module that builds the plain cell stack when frozen
  and has its own supernet forms (path sampling for RandomOneShot/ENAS, a relaxation for
  DARTS/GumbelDARTS; :mod:`srnas_nni.spaces.oneshot.hnas`).

Ops, with the official definitions (no BatchNorm anywhere in the retrained network):

* normal (``COMPACT_PRIMITIVES``): ``rcab`` (conv3x3-ReLU-conv3x3 with bias, channel attention with
  reduction 3, plus input), ``skip_connect``, ``sep_conv_3x3``/``sep_conv_5x5`` ([ReLU, depthwise,
  pointwise] twice, no bias), ``dil_conv_3x3``/``dil_conv_5x5`` (ReLU, depthwise dilation 2,
  pointwise, no bias);
* upsampling (``COMPACT_PRIMITIVES_UPSAMPLING``): ``sub_pixel`` (conv3x3 C -> r^2 C with bias +
  PixelShuffle per x2 step, one x3 step), ``deconvolution`` (ConvTranspose2d with bias, kernel 3
  for x2/x3, 5 for x4), ``bilinear``, ``nearest``, ``area``. Edges reading the cell inputs upsample
  by the scale; edges between nodes run at stride 1, where ``sub_pixel`` and the interpolations are
  identities and ``deconvolution`` is a stride-1 3x3 transposed conv (as in the official code). The
  op label is one decision whichever input is chosen; the module holds both variants and freezing
  keeps only the one the chosen input needs.

Constructor arguments: ``scale`` (2, 3, 4); ``channels`` (C, the node width; cell outputs and the
stem are ``num_nodes * C``, i.e. the official ``stem_multiplier`` 4 at 4 nodes); ``layers`` (L, cells
in the stack, upsampling one included); ``num_nodes`` (4);
``normal_ops`` / ``upsampling_ops`` (subsets of the op names above, in that order by default).

Differences from the official code, and why:

* x3 ``deconvolution`` uses kernel 3, stride 3, padding 0 (the official padding 1 gives ``3H - 2``
  pixels, which cannot be summed with the other x3 edges); x2 and x4 are the official layers.
* The mean shifts are fixed buffers (:class:`~srnas_nni.models.ops.MeanShift`), not EDSR's two 3x3x1x1
  convolutions with bias: the official parameter count includes those 24 frozen numbers.
* The upsampling cell is computed once and its output used as both ``s0`` and ``s1`` (the official
  forward calls it twice on the same inputs, which gives the same tensors at twice the cost).
* Supernet: the official ENAS supernet keeps a normal *and* an upsampling cell at every position.
  Here the space holds ``L - 1`` normal cells and one upsampling cell; position ``p`` runs normal
  cells ``0 .. p-1`` at LR, the upsampling cell, then normal cells ``p .. L-2`` at HR. Frozen
  models are the same either way (``L - 1`` normal cells and one upsampling cell).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from ..nni_adapter.oneshot import BaseSuperNetModule
from ..models.ops import (
    RCAB, Interpolate, MeanShift, SeparableConv2d, SubPixelUpsampler, TransposedConvUpsampler, conv2d,
)
from . import register_space
from .base import InputSelect, SpaceCost, SRModelSpace

from nni.mutable import Categorical, label_scope  # noqa: E402
from nni.nas.nn.pytorch import LayerChoice, MutableModule  # noqa: E402

__all__ = [
    "NORMAL_OPS", "UPSAMPLING_OPS", "HNASSpace", "HNASCell", "CellStack", "CellEdge", "SearchableEdge",
    "UpsamplingPosition", "run_cells_from",
]

NORMAL_OPS: tuple[str, ...] = ("rcab", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
UPSAMPLING_OPS: tuple[str, ...] = ("sub_pixel", "deconvolution", "bilinear", "nearest", "area")

#: Channel-attention reduction of the official ``rcab`` op (``RCAB(C, 3, 3)``).
RCAB_REDUCTION = 3
#: Kernel of the official ``deconvolution`` op per stride (x3 is ours, see the module docstring).
DECONV_KERNEL = {1: 3, 2: 3, 3: 3, 4: 5}
_INTERPOLATIONS = ("bilinear", "nearest", "area")


# --------------------------------------------------------------------------------------------
# Ops


def _relu_conv1x1(in_channels: int, out_channels: int) -> nn.Sequential:
    # Not in-place: the cell inputs are read again by the next cell.
    return nn.Sequential(nn.ReLU(), conv2d(in_channels, out_channels, 1, bias=False))


def _separable_twice(channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), SeparableConv2d(channels, channels, kernel_size, bias=False),
                         nn.ReLU(), SeparableConv2d(channels, channels, kernel_size, bias=False))


def _dilated(channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), SeparableConv2d(channels, channels, kernel_size, dilation=2, bias=False))


def make_normal_op(name: str, channels: int) -> nn.Module:
    if name == "rcab":
        return RCAB(channels, 3, reduction=RCAB_REDUCTION)
    if name == "skip_connect":
        return nn.Identity()
    if name.startswith("sep_conv_"):
        return _separable_twice(channels, int(name[-1]))
    if name.startswith("dil_conv_"):
        return _dilated(channels, int(name[-1]))
    raise ValueError(f"unknown HNAS normal op {name!r}; choose from {NORMAL_OPS}")


def make_upsampling_op(name: str, channels: int, stride: int) -> nn.Module:
    """An upsampling-cell op; ``stride`` is the scale on edges from cell inputs, 1 between nodes."""
    if name == "sub_pixel":
        return SubPixelUpsampler(channels, stride, activation=False) if stride > 1 else nn.Identity()
    if name == "deconvolution":
        return TransposedConvUpsampler(channels, channels, stride, kernel_size=DECONV_KERNEL[stride])
    if name in _INTERPOLATIONS:
        return Interpolate(stride, name) if stride > 1 else nn.Identity()
    raise ValueError(f"unknown HNAS upsampling op {name!r}; choose from {UPSAMPLING_OPS}")


# --------------------------------------------------------------------------------------------
# Cells


class CellEdge(nn.Module):
    """Frozen edge: ``op(states[source])``."""

    def __init__(self, source: int, op: nn.Module):
        super().__init__()
        self.source = int(source)
        self.op = op

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        return self.op(states[self.source])

    def extra_repr(self) -> str:
        return f"source={self.source}"


class SearchableEdge(MutableModule):
    """One input of a node: which earlier state (``InputSelect``) and which op (``LayerChoice``).

    ``op_between_nodes`` is the op used when the chosen state is an intermediate node; ``op_from_inputs``
    (the same label, other weights) when it is a cell input. They differ only in the upsampling cell
    (stride = scale vs 1); in the normal cell both names refer to the same ``LayerChoice``.
    """

    def __init__(self, input_choice: InputSelect, op_from_inputs: LayerChoice, op_between_nodes: LayerChoice | None):
        super().__init__()
        self.input_choice = input_choice
        self.op_from_inputs = op_from_inputs
        self.op_between_nodes = op_between_nodes  # None: the same op serves every input

    def _op_for(self, source: int) -> nn.Module:
        if source >= 2 and self.op_between_nodes is not None:
            return self.op_between_nodes
        return self.op_from_inputs

    def _needed_sources(self) -> Iterable[int]:
        """The states whose edge output is read: path sampling and dry runs need only the chosen one."""
        choice = self.input_choice
        if isinstance(choice, BaseSuperNetModule):
            chosen = getattr(choice, "_sampled", None)  # PathSamplingInput; differentiable ones read all
        else:
            chosen = getattr(choice, "_dry_run_choice", None)
        if chosen is None:
            return range(choice.n_candidates)
        return [chosen] if isinstance(chosen, int) else list(chosen)

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        needed = set(self._needed_sources())
        edges = [self._op_for(s)(states[s]) if s in needed else None for s in range(len(states))]
        return self.input_choice(edges)

    def freeze(self, sample: dict[str, Any]) -> CellEdge:
        self.validate(sample)
        chosen = self.input_choice.choice.freeze(sample)
        source = int(chosen[0] if isinstance(chosen, (list, tuple)) else chosen)
        return CellEdge(source, copy.deepcopy(self._op_for(source).freeze(sample)))


class HNASCell(nn.Module):
    """A cell: preprocess both inputs, ``len(nodes)`` nodes of summed edges, concatenate the nodes.

    ``nodes[i]`` lists node ``i``'s edges: :class:`SearchableEdge` in the space, :class:`CellEdge`
    once frozen.
    """

    def __init__(self, preprocess0: nn.Module, preprocess1: nn.Module, nodes: Sequence[Sequence[nn.Module]]):
        super().__init__()
        self.preprocess0 = preprocess0
        self.preprocess1 = preprocess1
        self.nodes = nn.ModuleList(nn.ModuleList(edges) for edges in nodes)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for edges in self.nodes:
            total = edges[0](states)
            for edge in edges[1:]:
                total = total + edge(states)
            states.append(total)
        return torch.cat(states[2:], dim=1)

    def freeze(self, sample: dict[str, Any]) -> "HNASCell":
        """The plain cell of ``sample`` (only the chosen ops, weights copied)."""
        return HNASCell(copy.deepcopy(self.preprocess0), copy.deepcopy(self.preprocess1),
                        [[edge.freeze(sample) for edge in edges] for edges in self.nodes])


def build_cell(kind: str, channels: int, num_nodes: int, ops: Sequence[str], scale: int) -> HNASCell:
    """A searchable cell labelled ``<node{i}/input{j}, node{i}/op{j}>`` in the current label scope."""
    cell_in = num_nodes * channels  # every cell output (and the stem) has num_nodes * C channels
    nodes = []
    for i in range(num_nodes):
        edges = []
        with label_scope(f"node{i}"):
            for j in range(2):
                input_choice = InputSelect(i + 2, 1, reduction="sum", label=f"input{j}")
                if kind == "normal":
                    op = LayerChoice({name: make_normal_op(name, channels) for name in ops}, label=f"op{j}")
                    edges.append(SearchableEdge(input_choice, op, None))
                else:
                    from_inputs = LayerChoice({name: make_upsampling_op(name, channels, scale) for name in ops},
                                              label=f"op{j}")
                    between = LayerChoice({name: make_upsampling_op(name, channels, 1) for name in ops},
                                          label=f"op{j}")
                    edges.append(SearchableEdge(input_choice, from_inputs, between))
        nodes.append(edges)
    return HNASCell(_relu_conv1x1(cell_in, channels), _relu_conv1x1(cell_in, channels), nodes)


class CellStack(nn.Module):
    """The frozen body: cells in order; the one at ``upsampling_index`` feeds both inputs of the next."""

    def __init__(self, cells: Sequence[nn.Module], upsampling_index: int):
        super().__init__()
        self.cells = nn.ModuleList(cells)
        self.upsampling_index = int(upsampling_index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = x
        for index, cell in enumerate(self.cells):
            out = cell(s0, s1)
            s0, s1 = (out, out) if index == self.upsampling_index else (s1, out)
        return s1

    def extra_repr(self) -> str:
        return f"upsampling_index={self.upsampling_index}"


# --------------------------------------------------------------------------------------------
# The network-level choice


def run_cells_from(normal_cells: Sequence[nn.Module], start: int, s0: torch.Tensor, s1: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``normal_cells[start:]`` on the cell inputs ``(s0, s1)``; the last two outputs."""
    for cell in normal_cells[start:]:
        s0, s1 = s1, cell(s0, s1)
    return s0, s1


class UpsamplingPosition(MutableModule):
    """``up/position``: where the upsampling cell sits among ``len(normal_cells) + 1`` cells.

    Position ``p`` runs ``normal_cells[:p]`` at LR, ``upsampling_cell``, then ``normal_cells[p:]``
    at HR. Freezing gives a plain :class:`CellStack`. The space's own (dry-run) forward uses the
    categorical's default.
    """

    def __init__(self, normal_cells: Sequence[HNASCell], upsampling_cell: HNASCell, position: Categorical):
        super().__init__()
        if list(position.values) != list(range(len(normal_cells) + 1)):
            raise ValueError("the position categorical must range over 0 .. len(normal_cells)")
        self.normal_cells = nn.ModuleList(normal_cells)
        self.upsampling_cell = upsampling_cell
        self.position = self.add_mutable(position)

    @property
    def label(self) -> str:
        return self.position.label

    @property
    def num_cells(self) -> int:
        return len(self.normal_cells) + 1

    def run(self, x: torch.Tensor, position: int) -> torch.Tensor:
        s0, s1 = run_cells_from(list(self.normal_cells)[:position], 0, x, x)
        out = self.upsampling_cell(s0, s1)
        return run_cells_from(list(self.normal_cells), position, out, out)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x, int(self.position.default()))

    def freeze(self, sample: dict[str, Any]) -> CellStack:
        self.validate(sample)
        position = int(self.position.freeze(sample))
        normal = [cell.freeze(sample) for cell in self.normal_cells]
        cells = normal[:position] + [self.upsampling_cell.freeze(sample)] + normal[position:]
        return CellStack(cells, position)


# --------------------------------------------------------------------------------------------
# The space


def _check_ops(ops: Sequence[str], allowed: Sequence[str], what: str) -> list[str]:
    ops = list(ops)
    unknown = [op for op in ops if op not in allowed]
    if not ops or unknown or len(set(ops)) != len(ops):
        raise ValueError(f"{what} must be distinct names from {list(allowed)}, got {ops}")
    return ops


@register_space("hnas")
class HNASSpace(SRModelSpace):
    """The HNAS space (see the module docstring)."""

    supernet_forms = "hnas"

    def __init__(self, scale: int = 2, channels: int = 64, layers: int = 12, num_nodes: int = 4,
                 normal_ops: Sequence[str] = NORMAL_OPS, upsampling_ops: Sequence[str] = UPSAMPLING_OPS):
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"HNAS supports x2, x3 and x4, not x{scale}")
        if channels < 1 or layers < 1 or num_nodes < 1:
            raise ValueError("channels, layers and num_nodes must be positive")
        self.scale = int(scale)
        self.channels = int(channels)
        self.layers = int(layers)
        self.num_nodes = int(num_nodes)
        self.normal_ops = _check_ops(normal_ops, NORMAL_OPS, "normal_ops")
        self.upsampling_ops = _check_ops(upsampling_ops, UPSAMPLING_OPS, "upsampling_ops")
        width = self.num_nodes * self.channels  # stem and cell outputs

        with label_scope("normal"):
            normal_cells = [build_cell("normal", self.channels, self.num_nodes, self.normal_ops, self.scale)
                            for _ in range(self.layers - 1)]
        with label_scope("up"):
            upsampling_cell = build_cell("up", self.channels, self.num_nodes, self.upsampling_ops, self.scale)
            # Default = last position: the cheapest dry run of the space.
            position = Categorical(list(range(self.layers)), default=self.layers - 1, label="position")
        self.network = nn.Sequential()
        self.network.add_module("sub_mean", MeanShift(sign=-1))
        self.network.add_module("stem", conv2d(3, width, 3, bias=False))
        self.network.add_module("body", UpsamplingPosition(normal_cells, upsampling_cell, position))
        self.network.add_module("tail", conv2d(width, 3, 3))
        self.network.add_module("add_mean", MeanShift(sign=1))
        self._build_cost_tables()

    def controller_levels(self) -> dict[str, list[str]]:
        """Normal cell, upsampling cell, then the network-level ``up/position`` (HNAS's three LSTMs)."""
        labels = list(self.simplify())
        cell = lambda prefix: [label for label in labels if label.startswith(prefix + "/node")]  # noqa: E731
        return {"normal": cell("normal"), "up": cell("up"), "up/position": ["up/position"]}

    # ----------------------------------------------------------------------------------------
    # Cost model: per-op (params, MACs per pixel of the op's input, MACs independent of size).

    def _build_cost_tables(self) -> None:
        c, s = self.channels, self.scale
        self._normal_cost = {name: self._normal_op_cost(name, c) for name in self.normal_ops}
        self._up_from_inputs_cost = {name: self._upsampling_op_cost(name, c, s) for name in self.upsampling_ops}
        self._up_between_cost = {name: self._upsampling_op_cost(name, c, 1) for name in self.upsampling_ops}
        width = self.num_nodes * c
        self._preprocess = 2 * width * c  # params = MACs per pixel (1x1, no bias), both inputs
        self._stem = 3 * width * 9
        self._tail_weights = width * 3 * 9

    @staticmethod
    def _normal_op_cost(name: str, c: int) -> tuple[int, int, int]:
        if name == "rcab":
            hidden = max(1, c // RCAB_REDUCTION)
            attention = c * hidden + hidden + hidden * c + c
            return 2 * (9 * c * c + c) + attention, 18 * c * c, 2 * c * hidden
        if name == "skip_connect":
            return 0, 0, 0
        k = int(name[-1])
        per_pixel = k * k * c + c * c
        if name.startswith("sep_conv_"):
            return 2 * per_pixel, 2 * per_pixel, 0
        return per_pixel, per_pixel, 0  # dil_conv

    @staticmethod
    def _upsampling_op_cost(name: str, c: int, stride: int) -> tuple[int, int, int]:
        """Params and MACs per *input* pixel of an upsampling-cell op at ``stride``."""
        if name == "deconvolution":
            k = DECONV_KERNEL[stride]
            # MACs = output elements x C_in x k^2 (the measure convention for transposed convs).
            return k * k * c * c + c, stride * stride * c * c * k * k, 0
        if name == "sub_pixel" and stride > 1:
            params = macs = 0
            area = 1  # pixels of the current step relative to the input
            for factor in ([3] if stride == 3 else [2] * int(math.log2(stride))):
                out = factor * factor * c
                params += 9 * c * out + out
                macs += 9 * c * out * area
                area *= factor * factor
            return params, macs, 0
        return 0, 0, 0  # interpolations, and sub_pixel between nodes, are identities or free

    @staticmethod
    def _source(value: Any) -> int:
        return int(value[0] if isinstance(value, (list, tuple)) else value)

    def cost(self, sample: dict[str, Any], hr_size: tuple[int, int] = (720, 1280)) -> SpaceCost:
        """Exact params and Mult-Adds of ``freeze(sample)`` (the ``measure`` convention), analytically."""
        self.check_sample(sample)  # decisions cached by the base class
        s = self.scale
        lr_pixels = math.ceil(hr_size[0] / s) * math.ceil(hr_size[1] / s)
        hr_pixels = lr_pixels * s * s
        position = int(sample["up/position"])

        normal_params = normal_per_pixel = normal_fixed = 0
        up_params = up_macs = 0
        for i in range(self.num_nodes):
            for j in range(2):
                params, per_pixel, fixed = self._normal_cost[sample[f"normal/node{i}/op{j}"]]
                normal_params += params
                normal_per_pixel += per_pixel
                normal_fixed += fixed
                up_op = sample[f"up/node{i}/op{j}"]
                if self._source(sample[f"up/node{i}/input{j}"]) < 2:
                    params, per_pixel, _ = self._up_from_inputs_cost[up_op]
                    up_macs += per_pixel * lr_pixels
                else:
                    params, per_pixel, _ = self._up_between_cost[up_op]
                    up_macs += per_pixel * hr_pixels
                up_params += params

        normal_cells = self.layers - 1
        params = (self._stem + self.layers * self._preprocess + normal_cells * normal_params + up_params
                  + self._tail_weights + 3)
        normal_cell_macs = lambda pixels: (self._preprocess + normal_per_pixel) * pixels + normal_fixed  # noqa: E731
        multadds = (self._stem * lr_pixels
                    + position * normal_cell_macs(lr_pixels)
                    + self._preprocess * lr_pixels + up_macs
                    + (normal_cells - position) * normal_cell_macs(hr_pixels)
                    + self._tail_weights * hr_pixels)
        return SpaceCost(int(params), int(multadds))
