"""Trilevel NAS search space (Wu, Huang, Kumar, Sukthanker, Timofte, Van Gool; arXiv 2101.06658).

This module holds the space (the network, its mutable modules) and its cost model
(:meth:`TrilevelSpace.cost`); the supernet forms of the network path are in
:mod:`srnas_nni.spaces.oneshot.trilevel`.

Three levels of decisions, relaxed together in the paper:

* **network level** (``network/path``): the *path* through the network, a string over ``C``
  (a cell) and ``U`` (an upsampling layer), e.g. ``"CCCUCU"``: stem cell, two cells, upsample,
  cell, upsample. It fixes the depth and where the upsampling layers sit. The paper's supernet
  grows a tree of all such paths (every prefix is a node), mixes the exits' feature maps with
  weights gamma and derives the path to the heaviest exit; here that is the custom mutable
  module :class:`NetworkPath` (a ``Categorical`` over the path strings) with its own supernet
  forms: one path per step for ``RandomOneShot``, and every exit computed once over a shared
  prefix trie and mixed with softmax(gamma) for ``DARTS``/``GumbelDARTS``.
* **cell level** (``cell{k}/op{j}``): a cell is a chain of ``ops_per_cell`` ops with a scaled
  residual, ``x + 0.2 * chain(x)``; each position picks one of ``conv1x1`` (1x1 conv +
  LeakyReLU, AGD's "skip", a real layer because widths change), ``conv3x3`` (3x3 conv +
  LeakyReLU), ``residual`` (3x3, LeakyReLU, 3x3, plus a 1x1 shortcut, LeakyReLU) and
  ``dwsblock`` (inverted depthwise-separable block: 1x1 expansion x4, depthwise 3x3, 1x1
  projection, plus a 1x1 shortcut, LeakyReLU).
* **kernel level** (``cell{k}/op{j}/width``): the output width of op ``j`` (and so the input
  width of op ``j+1``) for the ``ops_per_cell - 1`` inner edges of a chain, from
  ``width_ratios`` x ``channels`` rounded like the derived code's ``make_divisible`` (default
  ``{4, 6, 8, 10, 12}/12`` of 64 -> ``{24, 32, 40, 56, 64}``). The last op returns to
  ``channels`` so the residual adds up. Widths are ``nni.choice`` values on NNI's
  ``MutableConv2d`` in/out channels, so one-shot strategies share one weight tensor across
  widths (NNI's ``MixedConv2d``: slicing for path sampling, weighted masks for DARTS), which is
  the paper's slimmable ("US") convolution; a ``LayerChoice`` over widths would give every width
  its own weights instead.

Network: ``conv3x3(3 -> C)``, the path, a tail, ``(tanh + 1) / 2`` (as the derived code).

* ``upsampling="progressive"`` (the fork's variant A, default): ``U`` is nearest
  interpolation + conv3x3 + LeakyReLU, and cells after it run at the higher resolution; tail
  conv3x3(C -> 3) at HR. A path must hold exactly the scale's upsamplers: x4 two x2 stages (the
  derived code), x2 one x2 stage, x3 one x3 stage (our extension: the same construction with a
  single nearest-x3 + conv stage). Only such paths are candidates, i.e. the candidate exits are
  the tree nodes that are already at HR: an exit before the last upsampler has no HR image.
* ``upsampling="pixelshuffle"`` (variant B): ``U`` is a plain conv3x3 + LeakyReLU at LR (up to
  ``lr_up_layers`` of them), every cell runs at LR and the tail is conv3x3(C -> 3 s^2) +
  ``PixelShuffle(s)``; every prefix of the tree is a candidate exit and the same path string is
  valid at every scale.

Labels: ``cell{k}/op{j}`` (k = 0 .. stem_cells + max_cells - 1, j = 0 .. ops_per_cell - 1),
``cell{k}/op{j}/width`` (j = 0 .. ops_per_cell - 2) and ``network/path``. Cell ``k`` is the k-th
cell *along* the path, shared by all paths that reach it (the derived code gives every node of
the path tree its own cell; sharing by position keeps the labels stable and the space a product,
and one set of weights per position is what a weight-sharing supernet wants). The first
``stem_cells`` cells are always present (the derived code's fixed stem cell); their ops and
widths are still searched. Cells beyond a sample's path length are unused but keep their labels.

Constructor arguments: ``scale`` (2, 3, 4; default 4, the derived code's only scale),
``channels`` (base width nf, 64), ``stem_cells`` (fixed leading cells, 1), ``max_cells`` (most
searched cells on a path, 4), ``ops_per_cell`` (chain length, 5), ``width_ratios`` and
``width_divisor`` (the width menu), ``op_candidates`` (subset of the four primitives),
``residual_scale`` (0.2), ``dws_expansion`` (4), ``upsampling`` and ``lr_up_layers`` (variant B
only, 2).

What differs from the derived code, and why: no BatchNorm (its SR config disables it); cells
shared by path position (above); the up layers of variant A are listed per position along the
path too (the first and second ``U`` of a path); search-time tricks (sparsestmax, the order
loss, the FLOPs penalty, slimmable sandwich training) belong to strategies, not to the space.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import register_space
from .base import SpaceCost, SRModelSpace, frozen_copy

from nni.mutable import Categorical, SampleValidationError, label_scope  # noqa: E402
from nni.nas.nn.pytorch import LayerChoice, MutableConv2d, MutableModule  # noqa: E402

__all__ = [
    "TrilevelSpace", "NetworkPath", "SelectedPath", "TrilevelCell", "ChainOp", "NearestUpsampleConv",
    "candidate_paths", "make_divisible", "path_steps", "OP_NAMES", "CELL", "UP",
]

#: The four cell primitives, in the derived code's order.
OP_NAMES: tuple[str, ...] = ("conv1x1", "conv3x3", "residual", "dwsblock")

CELL, UP = "C", "U"
_LEAKY_SLOPE = 0.2


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a width to a multiple of ``divisor`` (never below it, never more than 10% down)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return int(rounded)


@lru_cache(maxsize=None)
def candidate_paths(stem_cells: int, max_cells: int, up_layers: int, complete_only: bool) -> tuple[str, ...]:
    """Every path of the tree: ``stem_cells`` C's then any interleaving of <= ``max_cells`` C's and
    <= ``up_layers`` U's; with ``complete_only`` only those holding all ``up_layers`` U's.

    Ordered by length then alphabetically (shallow, cheap paths first).
    """
    found: set[str] = set()

    def grow(path: str, cells: int, ups: int) -> None:
        if not complete_only or ups == up_layers:
            found.add(path)
        if cells < max_cells:
            grow(path + CELL, cells + 1, ups)
        if ups < up_layers:
            grow(path + UP, cells, ups + 1)

    grow(CELL * stem_cells, 0, 0)
    return tuple(sorted(found, key=lambda p: (len(p), p)))


def _leaky() -> nn.LeakyReLU:
    return nn.LeakyReLU(_LEAKY_SLOPE, inplace=False)


def _conv(cin: Any, cout: Any, kernel: int, *, groups: Any = 1) -> nn.Module:
    """Bias-free stride-1 "same" conv whose channel counts may be ``nni.choice`` values.

    ``MutableConv2d`` freezes to a plain ``nn.Conv2d`` (NNI's ``wraps``), and becomes a
    weight-sharing ``MixedConv2d`` under one-shot strategies.
    """
    return MutableConv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False)


class ChainOp(nn.Module):
    """One cell primitive from ``cin`` to ``cout`` channels (either may be a width choice)."""

    def __init__(self, name: str, cin: Any, cout: Any, *, dws_expansion: int = 4):
        super().__init__()
        if name not in OP_NAMES:
            raise ValueError(f"unknown Trilevel op {name!r}; expected one of {OP_NAMES}")
        self.name = name
        self.act = _leaky()
        if name == "conv1x1":
            self.body = _conv(cin, cout, 1)
        elif name == "conv3x3":
            self.body = _conv(cin, cout, 3)
        elif name == "residual":
            self.body = nn.Sequential(_conv(cin, cout, 3), _leaky(), _conv(cout, cout, 3))
            self.shortcut = _conv(cin, cout, 1)
        else:  # dwsblock: inverted bottleneck (MobileNetV2 style) with a 1x1 shortcut
            hidden = cin * dws_expansion
            self.body = nn.Sequential(
                _conv(cin, hidden, 1), _leaky(),
                _conv(hidden, hidden, 3, groups=hidden), _leaky(),
                _conv(hidden, cout, 1),
            )
            self.shortcut = _conv(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if hasattr(self, "shortcut"):
            out = out + self.shortcut(x)
        return self.act(out)

    def extra_repr(self) -> str:
        return self.name


def _op_weights(name: str, cin: int, cout: int, dws_expansion: int) -> int:
    """Weights (= params, the convs are bias-free) and per-pixel Mult-Adds of one :class:`ChainOp`."""
    if name == "conv1x1":
        return cin * cout
    if name == "conv3x3":
        return 9 * cin * cout
    if name == "residual":
        return 9 * cin * cout + 9 * cout * cout + cin * cout
    hidden = cin * dws_expansion
    return cin * hidden + 9 * hidden + hidden * cout + cin * cout


class TrilevelCell(nn.Module):
    """A chain of mixed ops with a scaled residual: ``x + residual_scale * chain(x)``."""

    def __init__(self, ops: Sequence[nn.Module], residual_scale: float = 0.2):
        super().__init__()
        self.chain = nn.Sequential(*ops)
        self.residual_scale = residual_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual_scale * self.chain(x)


class NearestUpsampleConv(nn.Module):
    """Variant-A upsampler: nearest x``factor``, conv3x3 (with bias), LeakyReLU (0.2).

    ``factor=1`` is variant B's plain LR conv layer.
    """

    def __init__(self, channels: int, factor: int):
        super().__init__()
        self.factor = int(factor)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = _leaky()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor > 1:
            x = F.interpolate(x, scale_factor=self.factor, mode="nearest")
        return self.act(self.conv(x))

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


class SelectedPath(nn.Sequential):
    """The frozen form of :class:`NetworkPath`: the chosen cells and up layers, in path order."""

    def __init__(self, path: str, layers: Iterable[nn.Module]):
        super().__init__(*layers)
        self.path = path

    def extra_repr(self) -> str:
        return f"path={self.path!r}"


def path_steps(path: str) -> list[tuple[str, int]]:
    """``"CCUC"`` -> ``[("C", 0), ("C", 1), ("U", 0), ("C", 2)]``: which cell / up layer each step uses."""
    counts = {CELL: 0, UP: 0}
    steps = []
    for step in path:
        steps.append((step, counts[step]))
        counts[step] += 1
    return steps


class NetworkPath(MutableModule):
    """The network-level decision: which path of cells (``C``) and up layers (``U``) runs.

    ``cells[k]`` is the k-th cell along any path, ``ups[u]`` the u-th up layer; ``path_choice``
    is the ``Categorical`` over the candidate path strings (label ``network/path``). Freezing
    gives a :class:`SelectedPath`; one-shot strategies replace it with one of its supernet forms
    (:mod:`srnas_nni.spaces.oneshot.trilevel`).
    """

    def __init__(self, cells: Sequence[nn.Module], ups: Sequence[nn.Module], path_choice: Categorical):
        super().__init__()
        self.cells = nn.ModuleList(cells)
        self.ups = nn.ModuleList(ups)
        self.path_choice = self.add_mutable(path_choice)
        for path in path_choice.values:
            self._check_fits(path)

    @property
    def label(self) -> str:
        return self.path_choice.label

    @property
    def paths(self) -> list[str]:
        return list(self.path_choice.values)

    def _check_fits(self, path: str) -> None:
        if path.count(CELL) > len(self.cells) or path.count(UP) > len(self.ups) or set(path) - {CELL, UP}:
            raise ValueError(f"path {path!r} does not fit {len(self.cells)} cells and {len(self.ups)} up layers")

    def layers_of(self, path: str) -> list[nn.Module]:
        return [self.cells[i] if kind == CELL else self.ups[i] for kind, i in path_steps(path)]

    def run_path(self, x: torch.Tensor, path: str) -> torch.Tensor:
        for layer in self.layers_of(path):
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Dry run of the raw space: the default (first, shallowest) path.
        return self.run_path(x, self.path_choice.default())

    @classmethod
    def create_fixed_module(cls, sample: dict, cells: Sequence[nn.Module], ups: Sequence[nn.Module],
                            path_choice: Categorical) -> nn.Module:
        # Inside a frozen model context the cells were already built frozen.
        path = path_choice.freeze(sample)
        return SelectedPath(path, [cells[i] if kind == CELL else ups[i] for kind, i in path_steps(path)])

    def freeze(self, sample: dict[str, Any]) -> nn.Module:
        self.validate(sample)
        path = self.path_choice.freeze(sample)
        return SelectedPath(path, [frozen_copy(layer, sample) for layer in self.layers_of(path)])

    def extra_repr(self) -> str:
        return f"label={self.label!r}, paths={len(self.path_choice.values)}"


class TrilevelNetwork(nn.Module):
    """Stem conv, the path, the tail, ``(tanh + 1) / 2``."""

    def __init__(self, head: nn.Module, path: nn.Module, tail: nn.Module):
        super().__init__()
        self.head = head
        self.path = path
        self.tail = tail

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.tail(self.path(self.head(x)))
        return (torch.tanh(out) + 1) / 2


_UP_FACTORS = {2: (2,), 3: (3,), 4: (2, 2)}


@register_space("trilevel")
class TrilevelSpace(SRModelSpace):
    """Trilevel NAS: network path x cell ops x kernel widths (see the module docstring)."""

    supernet_forms = "trilevel"  # network/path; NNI's forms cover LayerChoice and MutableConv2d

    def __init__(
        self,
        scale: int = 4,
        channels: int = 64,
        stem_cells: int = 1,
        max_cells: int = 4,
        ops_per_cell: int = 5,
        width_ratios: Sequence[float] = (4 / 12, 6 / 12, 8 / 12, 10 / 12, 1.0),
        width_divisor: int = 8,
        op_candidates: Sequence[str] = OP_NAMES,
        residual_scale: float = 0.2,
        dws_expansion: int = 4,
        upsampling: str = "progressive",
        lr_up_layers: int = 2,
    ):
        super().__init__()
        if scale not in _UP_FACTORS:
            raise ValueError(f"trilevel supports x2, x3 and x4, not x{scale}")
        if upsampling not in ("progressive", "pixelshuffle"):
            raise ValueError(f"upsampling must be 'progressive' or 'pixelshuffle', not {upsampling!r}")
        if stem_cells < 0 or max_cells < 0 or stem_cells + max_cells < 1:
            raise ValueError("need at least one cell (stem_cells + max_cells >= 1)")
        if ops_per_cell < 1:
            raise ValueError(f"ops_per_cell must be >= 1, got {ops_per_cell}")
        unknown = [op for op in op_candidates if op not in OP_NAMES]
        if unknown or not op_candidates:
            raise ValueError(f"op_candidates must be a non-empty subset of {OP_NAMES}, got {list(op_candidates)}")
        self.scale = int(scale)
        self.channels = int(channels)
        self.stem_cells = int(stem_cells)
        self.max_cells = int(max_cells)
        self.ops_per_cell = int(ops_per_cell)
        self.op_candidates = tuple(op_candidates)
        self.dws_expansion = int(dws_expansion)
        self.upsampling = upsampling
        self.widths = tuple(sorted({make_divisible(r * channels, width_divisor) for r in width_ratios}))
        if upsampling == "progressive":
            self.up_factors: tuple[int, ...] = _UP_FACTORS[self.scale]
        else:
            if lr_up_layers < 0:
                raise ValueError(f"lr_up_layers must be >= 0, got {lr_up_layers}")
            self.up_factors = (1,) * int(lr_up_layers)
        self.paths = candidate_paths(self.stem_cells, self.max_cells, len(self.up_factors),
                                     upsampling == "progressive")

        cells = [self._build_cell(k, residual_scale) for k in range(self.stem_cells + self.max_cells)]
        ups = [NearestUpsampleConv(self.channels, factor) for factor in self.up_factors]
        with label_scope("network"):
            path = NetworkPath(cells, ups, Categorical(list(self.paths), label="path"))
        head = nn.Conv2d(3, self.channels, 3, padding=1)
        if upsampling == "progressive":
            tail: nn.Module = nn.Conv2d(self.channels, 3, 3, padding=1)
        else:
            tail = nn.Sequential(nn.Conv2d(self.channels, 3 * self.scale ** 2, 3, padding=1),
                                 nn.PixelShuffle(self.scale))
        self.network = TrilevelNetwork(head, path, tail)
        self._prepare_cost_tables()

    # ---------------------------------------------------------------------------------------
    # construction

    def _build_cell(self, k: int, residual_scale: float) -> TrilevelCell:
        ops = []
        with label_scope(f"cell{k}"):
            cin: Any = self.channels
            for j in range(self.ops_per_cell):
                if j < self.ops_per_cell - 1:
                    with label_scope(f"op{j}"):
                        cout: Any = Categorical(list(self.widths), label="width")
                else:
                    cout = self.channels  # the chain returns to C for the residual
                candidates = {name: ChainOp(name, cin, cout, dws_expansion=self.dws_expansion)
                              for name in self.op_candidates}
                ops.append(LayerChoice(candidates, label=f"op{j}"))
                cin = cout
        return TrilevelCell(ops, residual_scale)

    def controller_levels(self) -> dict[str, list[str]]:
        """The cells first, the network-level path last (conditioned on the cells)."""
        levels = super().controller_levels()
        levels["network"] = levels.pop("network")
        return levels

    # ---------------------------------------------------------------------------------------
    # cost model

    def _prepare_cost_tables(self) -> None:
        c = self.channels
        self._op_set = frozenset(self.op_candidates)
        self._width_set = frozenset(self.widths)
        self._path_set = frozenset(self.paths)
        self._head_params = 27 * c + c
        self._head_weights = 27 * c
        self._up_params = 9 * c * c + c
        self._up_weights = 9 * c * c
        out_channels = 3 if self.upsampling == "progressive" else 3 * self.scale ** 2
        self._tail_params = 9 * c * out_channels + out_channels
        self._tail_weights = 9 * c * out_channels
        self._op_labels = [[f"cell{k}/op{j}" for j in range(self.ops_per_cell)]
                           for k in range(self.stem_cells + self.max_cells)]
        self._width_labels = [[f"cell{k}/op{j}/width" for j in range(self.ops_per_cell - 1)]
                              for k in range(self.stem_cells + self.max_cells)]

    def _cell_weights(self, sample: dict[str, Any], k: int) -> int:
        widths = [self.channels]
        for label in self._width_labels[k]:
            width = sample.get(label)
            if width not in self._width_set:
                raise SampleValidationError(f"{label}: {width!r} is not one of {list(self.widths)}")
            widths.append(width)
        widths.append(self.channels)
        total = 0
        for j, label in enumerate(self._op_labels[k]):
            name = sample.get(label)
            if name not in self._op_set:
                raise SampleValidationError(f"{label}: {name!r} is not one of {list(self.op_candidates)}")
            total += _op_weights(name, widths[j], widths[j + 1], self.dws_expansion)
        return total

    def cost(self, sample: dict[str, Any], hr_size: tuple[int, int] = (720, 1280)) -> SpaceCost:
        """Params and Mult-Adds of ``freeze(sample)`` computed from the sample alone (exact).

        Cell convs are bias-free, so a cell's params are its weights and its Mult-Adds are
        weights x pixels at the resolution it runs at along the path.
        """
        try:
            path = sample["network/path"]
        except KeyError:
            raise SampleValidationError("network/path: missing from the sample") from None
        if path not in self._path_set:
            raise SampleValidationError(f"network/path: {path!r} is not a candidate path of this space")
        height, width = math.ceil(hr_size[0] / self.scale), math.ceil(hr_size[1] / self.scale)
        pixels = height * width
        params = self._head_params + self._tail_params
        multadds = self._head_weights * pixels
        cell_index = up_index = 0
        for step in path:
            if step == CELL:
                weights = self._cell_weights(sample, cell_index)
                params += weights
                multadds += weights * pixels
                cell_index += 1
            else:
                factor = self.up_factors[up_index]
                height, width = height * factor, width * factor
                pixels = height * width
                params += self._up_params
                multadds += self._up_weights * pixels
                up_index += 1
        multadds += self._tail_weights * pixels  # progressive: at HR; pixelshuffle: at LR
        for unused in range(cell_index, len(self._op_labels)):
            self._cell_weights(sample, unused)  # validates the labels of cells off the path too
        return SpaceCost(int(params), int(multadds))
