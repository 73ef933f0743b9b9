"""HiNAS: hierarchical (cell + width) search space for SR (Zhang et al., arXiv 2012.13212, IJCV 2022).

This module holds the space (the network, its mutable modules) and its cost model
(:meth:`HiNASSpace.cost`); the supernet forms of the trellis and the nodes are in
:mod:`srnas_nni.spaces.oneshot.hinas`.

The network::

    LR ──head──► stem ──► [cell layer 0] ──router──► [cell layer 1] ──► ... ──tail──► (+) ──► HR
     └───────────────────────── bicubic x scale (MATLAB imresize) ───────────────────────┘

* **head**: conv3x3(3 -> ``stem_channels``) [+ BN] + LeakyReLU(0.2), conv3x3 to ``num_nodes * C_0`` channels
  (the cell-output width of the narrowest level; the stem is the "layer -1" state at level 0).
* **inner space** (one DARTS cell architecture per layer): the cell preprocesses its two inputs
  with LeakyReLU + conv1x1 [+ BN] to the node width ``C``: ``s0`` is the path input of the cell,
  ``s1`` the path input of the previous cell ("two layers back"; the stem for layer 0). Node ``i``
  (``num_nodes`` = 3 nodes) reads 2 of the ``2 + i`` earlier states, puts one op on each and sums
  them; the cell output concatenates the nodes (``num_nodes * C`` channels). Ops (``ops``), all ``C -> C``
  at stride 1: ``conv_3x3`` (LeakyReLU, conv, BN), ``sep_conv_3x3``/``sep_conv_5x5`` (twice
  [LeakyReLU, depthwise, pointwise, BN]), ``dil_conv_3x3``/``dil_conv_5x5`` (full conv dilated 2,
  LeakyReLU, BN), ``identity`` and ``zero``.
* **layer-wise architecture sharing (LWAS)**: every cell of layer ``l``, whatever its width, uses
  the same decisions (same labels), different layers have their own.
* **outer space** (width trellis): ``len(width_factors)`` levels of node width
  ``C_w = int(base_width * factor_w)`` (1x, 1.5x, 2x). After each cell a router makes a narrower,
  same-width and wider copy (conv1x1 [+ BN]; the same-width copy is the identity), and the path
  chooses one per layer. The path starts at level 0 (the stem), so it moves by at most one level
  per layer.
* **tail**: conv3x3(``num_nodes * C`` -> ``3 * scale^2``) + PixelShuffle(``scale``), plus the bicubic
  upsampled input (global residual; interpolation is not counted in Mult-Adds).

Labels (a sample is a flat dict of them)::

    layer{l}/node{i}/inputs   two distinct indices of the 2 + i earlier states (list of int);
                              states 0 and 1 are the preprocessed s0 and s1, state 2 + k node k
    layer{l}/node{i}/op{j}    op on the j-th listed input (str from ``ops``)
    outer/layer{l}/width      "narrower" | "same" | "wider": the router output layer l takes from
                              the previous cell (the stem for layer 0)

This is how a derived DARTS genotype is written (top-2 incoming edges per node, one op per kept
edge). The width decision is a move rather than an absolute level so that every combination of
values is a valid trellis path (independent random sampling never produces a jump of two levels);
a move off the trellis ("narrower" at the narrowest level, "wider" at the widest) keeps the width,
as the paper masks those router outputs. The space size counts those duplicates.

Frozen form: a plain chain ``head -> (router, cell) x num_layers -> tail`` at the decoded widths,
routers being conv1x1 [+ BN] where the width changes and nothing otherwise.

One-shot: every reachable (layer, width) cell in one supernet (path sampling for ``RandomOneShot``,
the paper's weighted trellis with cell sharing and Viterbi export for ``DARTS``/``GumbelDARTS``); those
supernet forms are in :mod:`srnas_nni.spaces.oneshot.hinas`.

What differs from the official code (``hkzhang91/HiNAS``) and why:

* The retraining decoder (DeepLabV3+-like ASPP with separable atrous convs and an endpoint skip) is
  replaced by the plain conv + PixelShuffle tail the issue specifies; the supernet's final sigmoid
  and bilinear residual are not used (bicubic residual everywhere, so search and retrain agree).
* The same-width router output is the identity (the code uses conv1x1 + BN for all three copies),
  so a frozen chain has 1x1 convs only where the width changes.
* ``s1`` is the previous cell's path input; the code's exact "two layers back" wiring was not
  verifiable. In the trellis, cell (l, w) preprocesses each possible source width with its own
  conv1x1 and weighs them with the same transition weights as ``s0``.
* Convolutions followed by BatchNorm have no bias (as in DARTS code); ``batch_norm=False`` removes
  every BN and gives each conv a bias.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from ..nni_adapter.oneshot import current_model
from ..models.imresize import imresize
from ..models.ops import SeparableConv2d, Zero, conv2d
from . import register_space
from .base import InputSelect, SpaceCost, SRModelSpace, frozen_copy

from nni.mutable import Categorical, label_scope  # noqa: E402
from nni.nas.nn.pytorch import LayerChoice, MutableModule  # noqa: E402

__all__ = [
    "OP_NAMES", "DEFAULT_OPS", "WIDTH_MOVES", "LEVEL_STEPS", "HiNASSpace", "HiNASCell", "HiNASNode", "WidthTrellis",
    "WidthPathBody", "decode_width_path", "move_between", "freeze_width_path", "make_op", "op_cost",
]

OP_NAMES: tuple[str, ...] = ("conv_3x3", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
                             "identity", "zero")
#: The derived cell never keeps 'zero' (DARTS drops 'none' when deriving), so it is not a choice by default.
DEFAULT_OPS: tuple[str, ...] = OP_NAMES[:-1]
WIDTH_MOVES: tuple[str, ...] = ("narrower", "same", "wider")
LEVEL_STEPS = {"narrower": -1, "same": 0, "wider": 1}
LEAKY_SLOPE = 0.2


# --------------------------------------------------------------------------------------------
# Operations and their exact cost (params, Mult-Adds per LR pixel)


def _norm(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


def _act() -> nn.Module:
    # Not in-place: a state feeds several edges.
    return nn.LeakyReLU(LEAKY_SLOPE)


def make_op(name: str, channels: int, batch_norm: bool) -> nn.Module:
    """One candidate op of the cell (``channels -> channels``, spatial size kept)."""
    bias = not batch_norm
    if name == "conv_3x3":
        return nn.Sequential(_act(), conv2d(channels, channels, 3, bias=bias), _norm(channels, batch_norm))
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        k = int(name[-1])

        def unit() -> list[nn.Module]:
            return [_act(), SeparableConv2d(channels, channels, k, bias=bias), _norm(channels, batch_norm)]

        return nn.Sequential(*unit(), *unit())
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        k = int(name[-1])
        return nn.Sequential(conv2d(channels, channels, k, dilation=2, bias=bias), _act(),
                             _norm(channels, batch_norm))
    if name == "identity":
        return nn.Identity()
    if name == "zero":
        return Zero()
    raise ValueError(f"unknown HiNAS op {name!r}; known: {', '.join(OP_NAMES)}")


def _conv_cost(cin: int, cout: int, k: int, batch_norm: bool, groups: int = 1) -> tuple[int, int]:
    """(params, Mult-Adds per pixel) of a conv [+ BN]: bias only without BN."""
    weight = cout * (cin // groups) * k * k
    extra = 2 * cout if batch_norm else cout
    return weight + extra, weight


def op_cost(name: str, channels: int, batch_norm: bool) -> tuple[int, int]:
    """(params, Mult-Adds per LR pixel) of :func:`make_op`."""
    c = channels
    bias = 0 if batch_norm else c
    norm = 2 * c if batch_norm else 0
    if name == "conv_3x3":
        return 9 * c * c + bias + norm, 9 * c * c
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        k2 = int(name[-1]) ** 2
        unit_macs = k2 * c + c * c
        return 2 * (unit_macs + 2 * bias + norm), 2 * unit_macs
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        k2 = int(name[-1]) ** 2
        return k2 * c * c + bias + norm, k2 * c * c
    if name in ("identity", "zero"):
        return 0, 0
    raise ValueError(f"unknown HiNAS op {name!r}")


def _conv_norm(cin: int, cout: int, k: int, batch_norm: bool) -> nn.Sequential:
    return nn.Sequential(conv2d(cin, cout, k, bias=not batch_norm), _norm(cout, batch_norm))


def _preprocess(cin: int, cout: int, batch_norm: bool) -> nn.Sequential:
    return nn.Sequential(_act(), *_conv_norm(cin, cout, 1, batch_norm))


def _router(cin: int, cout: int, batch_norm: bool) -> nn.Module:
    return nn.Identity() if cin == cout else _conv_norm(cin, cout, 1, batch_norm)


def _router_cost(cin: int, cout: int, batch_norm: bool) -> tuple[int, int]:
    return (0, 0) if cin == cout else _conv_cost(cin, cout, 1, batch_norm)


class _Tail(nn.Sequential):
    """conv3x3 to ``out_channels * scale^2`` then PixelShuffle (one step, any scale)."""

    def __init__(self, channels: int, scale: int, out_channels: int = 3):
        super().__init__(conv2d(channels, out_channels * scale * scale, 3), nn.PixelShuffle(scale))


# --------------------------------------------------------------------------------------------
# Inner space: node and cell


class HiNASNode(nn.Module):
    """A DARTS node: two of the earlier states, one op on each, summed.

    Built inside ``label_scope("layer{l}")`` / ``label_scope("node{i}")``: labels ``inputs``, ``op0``,
    ``op1``. Frozen, ``inputs`` is a plain :class:`~srnas_nni.spaces.base.SelectedInputs` and the
    ops are the chosen modules.
    """

    def __init__(self, num_states: int, channels: int, ops: Sequence[str], batch_norm: bool):
        super().__init__()
        self.num_states = num_states
        self.channels = channels
        self.op_names = tuple(ops)
        self.batch_norm = batch_norm
        self.inputs = InputSelect(num_states, 2, reduction="none", label="inputs")
        frozen = current_model()
        if frozen is not None:
            # Freezing: build only the chosen op (a LayerChoice would build every candidate, then keep one).
            self.op0 = make_op(Categorical(list(ops), label="op0").freeze(frozen), channels, batch_norm)
            self.op1 = make_op(Categorical(list(ops), label="op1").freeze(frozen), channels, batch_norm)
        else:
            self.op0 = LayerChoice({name: make_op(name, channels, batch_norm) for name in ops}, label="op0")
            self.op1 = LayerChoice({name: make_op(name, channels, batch_norm) for name in ops}, label="op1")

    @classmethod
    def assemble(cls, inputs: nn.Module, op0: nn.Module, op1: nn.Module) -> HiNASNode:
        """A frozen node from its parts (used by the supernets' weight-keeping ``freeze``)."""
        node = cls.__new__(cls)
        nn.Module.__init__(node)
        node.inputs, node.op0, node.op1 = inputs, op0, op1
        return node

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        first, second = self.inputs(states)
        return self.op0(first) + self.op1(second)


class HiNASCell(nn.Module):
    """Preprocess ``s0`` and ``s1`` to the node width, ``num_nodes`` nodes, concatenate the nodes.

    ``s1_sources`` maps each level ``s1`` may come from to its channel count: one entry in a frozen
    chain, up to three in the trellis (one conv1x1 per source width). ``s1`` is preprocessed by
    the caller (``preprocess1[str(level)]``) so that the trellis can weigh the sources.
    """

    def __init__(self, channels: int, s0_channels: int, s1_sources: dict[int, int], num_nodes: int,
                 ops: Sequence[str], batch_norm: bool):
        super().__init__()
        self.channels = channels
        self.preprocess0 = _preprocess(s0_channels, channels, batch_norm)
        self.preprocess1 = nn.ModuleDict({str(level): _preprocess(c, channels, batch_norm)
                                          for level, c in s1_sources.items()})
        nodes = []
        for i in range(num_nodes):
            with label_scope(f"node{i}"):
                nodes.append(HiNASNode(2 + i, channels, ops, batch_norm))
        self.nodes = nn.ModuleList(nodes)

    def forward(self, s0: torch.Tensor, s1_preprocessed: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), s1_preprocessed]
        for node in self.nodes:
            states.append(node(states))
        return torch.cat(states[2:], dim=1)


# --------------------------------------------------------------------------------------------
# Outer space: width trellis


def decode_width_path(moves: Sequence[str], num_levels: int) -> list[int]:
    """Width level per layer from the per-layer moves, starting at level 0 (moves off the trellis keep the level)."""
    level, levels = 0, []
    for move in moves:
        level = min(num_levels - 1, max(0, level + LEVEL_STEPS[move]))
        levels.append(level)
    return levels


def move_between(source: int, target: int) -> str:
    return WIDTH_MOVES[target - source + 1]


class WidthPathBody(nn.Module):
    """The frozen body: ``(router, cell)`` per layer at fixed widths, then the tail."""

    def __init__(self, routers: Iterable[nn.Module], cells: Iterable[HiNASCell], tail: nn.Module,
                 levels: Sequence[int]):
        super().__init__()
        self.routers = nn.ModuleList(routers)
        self.cells = nn.ModuleList(cells)
        self.tail = tail
        self.levels = list(levels)

    def forward(self, stem: torch.Tensor) -> torch.Tensor:
        previous_output, previous_input = stem, stem
        for router, cell in zip(self.routers, self.cells):
            cell_input = router(previous_output)
            (preprocess1,) = cell.preprocess1.values()
            previous_output = cell(cell_input, preprocess1(previous_input))
            previous_input = cell_input
        return self.tail(previous_output)

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


class _TrellisLayout:
    """Shared geometry of the trellis: widths, reachable levels and allowed transitions."""

    def __init__(self, num_layers: int, node_widths: Sequence[int], num_nodes: int):
        self.num_layers = num_layers
        self.node_widths = list(node_widths)
        self.num_nodes = num_nodes
        self.num_levels = len(node_widths)
        # Level reachable at layer l from level 0 ("layer -1" is the stem): 0 .. l + 1.
        self.reachable = {-1: [0]}
        for layer in range(num_layers):
            self.reachable[layer] = list(range(min(self.num_levels, layer + 2)))

    def out_channels(self, level: int) -> int:
        return self.num_nodes * self.node_widths[level]  # the cell concatenates its nodes

    def sources(self, layer: int, level: int) -> list[int]:
        """Levels of layer ``layer - 1`` that can move to ``level`` at ``layer``."""
        return [v for v in self.reachable[layer - 1] if abs(v - level) <= 1]

    def targets(self, layer: int, source: int) -> list[int]:
        """Levels of ``layer`` that the level ``source`` of layer ``layer - 1`` can move to."""
        return [w for w in self.reachable[layer] if abs(w - source) <= 1]


def _build_cell(layout: _TrellisLayout, layer: int, level: int, s1_levels: Sequence[int], num_nodes: int,
                ops: Sequence[str], batch_norm: bool) -> HiNASCell:
    with label_scope(f"layer{layer}"):
        return HiNASCell(layout.node_widths[level], layout.out_channels(level),
                         {v: layout.out_channels(v) for v in s1_levels}, num_nodes, ops, batch_norm)


class WidthTrellis(MutableModule):
    """The outer space: all reachable (layer, width) cells, routers and tails, and the width labels.

    A custom mutable module: its decisions are ``outer/layer{l}/width`` (registered with
    ``add_mutable``); frozen (``freeze`` or a model context), it is a :class:`WidthPathBody`. One-shot
    strategies replace it with one of its supernet forms (:mod:`srnas_nni.spaces.oneshot.hinas`).
    """

    def __init__(self, num_layers: int, node_widths: Sequence[int], num_nodes: int, ops: Sequence[str],
                 batch_norm: bool, scale: int):
        super().__init__()
        self.init_kwargs = dict(num_layers=num_layers, node_widths=list(node_widths), num_nodes=num_nodes,
                                ops=list(ops), batch_norm=batch_norm, scale=scale)
        layout = _TrellisLayout(num_layers, node_widths, num_nodes)
        self.layout = layout
        self.width_choices = [self.add_mutable(choice) for choice in _width_choices(num_layers)]
        self.routers = nn.ModuleDict()
        self.cells = nn.ModuleDict()
        for layer in range(num_layers):
            for level in layout.reachable[layer]:
                sources = layout.sources(layer, level)
                for source in sources:
                    self.routers[f"{layer}_{source}_{level}"] = _router(
                        layout.out_channels(source), layout.out_channels(level), batch_norm)
                self.cells[f"{layer}_{level}"] = _build_cell(layout, layer, level, sources, num_nodes, ops,
                                                             batch_norm)
        self.tails = nn.ModuleDict({str(level): _Tail(layout.out_channels(level), scale)
                                    for level in layout.reachable[num_layers - 1]})

    @classmethod
    def create_fixed_module(cls, sample: dict, num_layers: int, node_widths: Sequence[int], num_nodes: int,
                            ops: Sequence[str], batch_norm: bool, scale: int) -> WidthPathBody:
        moves = [choice.freeze(sample) for choice in _width_choices(num_layers)]
        layout = _TrellisLayout(num_layers, node_widths, num_nodes)
        levels = decode_width_path(moves, layout.num_levels)
        routers, cells = [], []
        for layer, level in enumerate(levels):
            # s0 is routed from the previous cell's output; s1 is the previous cell's own input, which is
            # at the previous level too (the stem, level 0, for layer 0).
            source = levels[layer - 1] if layer > 0 else 0
            routers.append(_router(layout.out_channels(source), layout.out_channels(level), batch_norm))
            cells.append(_build_cell(layout, layer, level, [source], num_nodes, ops, batch_norm))
        return WidthPathBody(routers, cells, _Tail(layout.out_channels(levels[-1]), scale), levels)

    def freeze(self, sample: dict[str, Any]) -> WidthPathBody:
        self.validate(sample)
        return freeze_width_path(self, sample)

    def forward(self, stem: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("the HiNAS width trellis runs after freeze(sample) or as a one-shot supernet "
                           "(RandomOneShot / DARTS), not as a raw model space")


def freeze_width_path(trellis: WidthTrellis, sample: dict[str, Any]) -> WidthPathBody:
    """The chain of the sampled path, with copies of the weights of ``trellis`` (or of one of its supernet
    forms, which hold its modules) for it."""
    levels = decode_width_path([choice.freeze(sample) for choice in trellis.width_choices],
                               trellis.layout.num_levels)
    routers, cells = [], []
    for layer, level in enumerate(levels):
        source = levels[layer - 1] if layer > 0 else 0
        routers.append(frozen_copy(trellis.routers[f"{layer}_{source}_{level}"], sample))
        cell = frozen_copy(trellis.cells[f"{layer}_{level}"], sample)
        cell.preprocess1 = nn.ModuleDict({str(source): cell.preprocess1[str(source)]})  # the path's s1 only
        cells.append(cell)
    return WidthPathBody(routers, cells, frozen_copy(trellis.tails[str(levels[-1])], sample), levels)


def _width_choices(num_layers: int) -> list[Categorical]:
    choices = []
    with label_scope("outer"):
        for layer in range(num_layers):
            with label_scope(f"layer{layer}"):
                choices.append(Categorical(list(WIDTH_MOVES), label="width"))
    return choices


# --------------------------------------------------------------------------------------------
# The space


class HiNASNetwork(nn.Module):
    """head -> body (trellis or frozen chain, tail included) + bicubic upsampled input."""

    def __init__(self, head: nn.Module, body: nn.Module, scale: int):
        super().__init__()
        self.head = head
        self.body = body
        self.scale = scale
        self.in_channels = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.head(x)) + imresize(x, self.scale)


@register_space("hinas")
class HiNASSpace(SRModelSpace):
    """HiNAS search space (see the module docstring).

    Args:
        scale: 2, 3 or 4.
        base_width: ``F``, the node width of the narrowest level (the code retrains with 16,
            searches with 8); a cell outputs ``num_nodes * C`` channels.
        num_layers: cells on the path (the SR config: 2).
        num_nodes: nodes per cell (3); node ``i`` chooses 2 of ``2 + i`` states.
        width_factors: node width multipliers of the levels (1, 1.5, 2).
        stem_channels: width of the first head conv (64).
        ops: op names the nodes choose from (default: all but ``zero``).
        batch_norm: BN after convs as in the code (``False``: biases instead).
    """

    supernet_forms = "hinas"  # the width trellis and the nodes

    def __init__(self, scale: int = 2, base_width: int = 16, num_layers: int = 2, num_nodes: int = 3,
                 width_factors: Sequence[float] = (1.0, 1.5, 2.0), stem_channels: int = 64,
                 ops: Sequence[str] = DEFAULT_OPS, batch_norm: bool = True):
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"HiNAS supports x2, x3 and x4, not x{scale}")
        unknown = [op for op in ops if op not in OP_NAMES]
        if unknown or not ops or all(op == "zero" for op in ops):
            raise ValueError(f"ops must be a non-empty list from {list(OP_NAMES)} with an op other than 'zero', "
                             f"got {list(ops)}")
        if num_layers < 1 or num_nodes < 1 or not width_factors:
            raise ValueError("num_layers, num_nodes and width_factors must be positive / non-empty")
        self.scale = int(scale)
        self.base_width = int(base_width)
        self.num_layers = int(num_layers)
        self.num_nodes = int(num_nodes)
        self.ops = [str(op) for op in ops]
        self.batch_norm = bool(batch_norm)
        self.stem_channels = int(stem_channels)
        self.node_widths = [int(self.base_width * f) for f in width_factors]
        if min(self.node_widths) < 1:
            raise ValueError(f"every node width must be >= 1, got {self.node_widths}")
        layout = _TrellisLayout(self.num_layers, self.node_widths, self.num_nodes)
        self.network = self._build_network(layout)
        self._build_cost_tables(layout)

    def _build_network(self, layout: _TrellisLayout) -> HiNASNetwork:
        """The whole network; inside ``model_context(sample)`` every mutable comes out frozen."""
        head = nn.Sequential(
            conv2d(3, self.stem_channels, 3, bias=not self.batch_norm), _norm(self.stem_channels, self.batch_norm),
            _act(), conv2d(self.stem_channels, layout.out_channels(0), 3),
        )
        body = WidthTrellis(self.num_layers, self.node_widths, self.num_nodes, self.ops, self.batch_norm,
                            self.scale)
        return HiNASNetwork(head, body, self.scale)

    # ---- controller levels -----------------------------------------------------------------

    def controller_levels(self) -> dict[str, list[str]]:
        """The layer cells first, the outer (width-path) level last (conditioned on the cells)."""
        levels = super().controller_levels()
        levels["outer"] = levels.pop("outer")
        return levels

    # ---- cost model ----------------------------------------------------------------------

    def _build_cost_tables(self, layout: _TrellisLayout) -> None:
        bn = self.batch_norm
        widths = self.node_widths
        out = [layout.out_channels(w) for w in range(len(widths))]
        head = _conv_cost(3, self.stem_channels, 3, bn)
        head2 = _conv_cost(self.stem_channels, out[0], 3, False)
        self._fixed_cost = (head[0] + head2[0], head[1] + head2[1])
        levels = range(len(widths))
        self._op_table = [{name: op_cost(name, widths[w], bn) for name in self.ops} for w in levels]
        self._pre_table = [[_conv_cost(out[v], widths[w], 1, bn) for w in levels] for v in levels]
        self._router_table = [[_router_cost(out[v], out[w], bn) for w in levels] for v in levels]
        self._tail_table = [_conv_cost(out[w], 3 * self.scale * self.scale, 3, False) for w in levels]
        self._move_labels = [f"outer/layer{layer}/width" for layer in range(self.num_layers)]
        self._op_labels = [[(f"layer{layer}/node{i}/op0", f"layer{layer}/node{i}/op1") for i in range(self.num_nodes)]
                           for layer in range(self.num_layers)]

    def cost(self, sample: dict[str, Any], hr_size: tuple[int, int] = (720, 1280)) -> SpaceCost:
        """Exact params and Mult-Adds of ``freeze(sample)`` from tables built at construction."""
        levels = decode_width_path([sample[label] for label in self._move_labels], len(self.node_widths))
        params, per_pixel = self._fixed_cost
        for layer, level in enumerate(levels):
            source = levels[layer - 1] if layer > 0 else 0
            for p, m in (self._router_table[source][level], self._pre_table[level][level],
                         self._pre_table[source][level]):
                params += p
                per_pixel += m
            ops = self._op_table[level]
            for label0, label1 in self._op_labels[layer]:
                p0, m0 = ops[sample[label0]]
                p1, m1 = ops[sample[label1]]
                params += p0 + p1
                per_pixel += m0 + m1
        tail = self._tail_table[levels[-1]]
        params += tail[0]
        per_pixel += tail[1]
        lr_pixels = math.ceil(hr_size[0] / self.scale) * math.ceil(hr_size[1] / self.scale)
        return SpaceCost(int(params), int(per_pixel * lr_pixels))
