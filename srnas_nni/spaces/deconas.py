"""DeCoNAS: a densely connected search space for lightweight SR (Ahn & Cho, arXiv 2104.09048).

This module holds the space (the network, its mutable modules) and its cost model
(:meth:`DeCoNASSpace.cost`); the supernet forms of the dense layers and fusions are in
:mod:`srnas_nni.spaces.oneshot.deconas`.

The network is RDN-like and only the wiring inside its dense blocks is searched:

* **shallow features**: conv 3x3 (3 -> C), kept for the global residual, then conv 3x3 (C -> C);
* **DNBs** (densely connected blocks, ``num_blocks``, paper 4): the input of block ``b + 1`` is a
  1x1 fusion of ``[shallow, DNB_1, ..., DNB_b]`` ((b + 2) C -> C);
* **global fusion**: 1x1 over ``[shallow, DNB_1, ..., DNB_B]`` then conv 3x3, plus the first
  shallow conv's output (global residual);
* **upsampler**: conv 3x3 (C -> s^2 C) + pixel shuffle (two x2 stages for x4), then conv 3x3 to RGB;
  the DIV2K mean is subtracted at the input and added back at the output (no parameters).

**DNB.** ``num_layers`` layers (paper 4). Layer ``c`` (0-based) has ``c + 1`` candidate inputs:
the block input and the outputs of layers ``0 .. c-1``. Each of three branches -- ``conv`` (conv
3x3), ``sep`` (depthwise 3x3 without bias + pointwise 1x1) and ``dil`` (conv 3x3, dilation 3),
all pre-activated by ReLU and producing C channels -- reads its **own** subset of those
candidates, concatenated. The layer output is ReLU(mean of the active branches), followed by
channel attention (global pool, 1x1 C -> C/4, ReLU, 1x1 C/4 -> C, sigmoid gate). The block ends
with a local 1x1 fusion of ``[block input, layer outputs]`` ((L + 1) C -> C) plus the block input.

**A layer with no active branch** (every bit of its three branches off) outputs
ReLU(previous node) -- the latest of its candidates (the block input for layer 0) -- then the
channel attention, exactly as the official code does.

**Decisions and labels.** One binary decision per (layer, branch, candidate input), ints 0/1::

    dnb/layer{c}/{branch}/input{i}      c < num_layers, i <= c, branch in conv/sep/dil

3 x (1 + 2 + 3 + 4) = **30 decisions at paper size, shared by all DNBs** (one label, one
decision, in every block: the official controller emits one 30-bit pattern for the whole
network). The published bit order (layer-major, then input, then branch conv/sep/dil) is
:data:`BIT_ORDER` / :meth:`DeCoNASSpace.sample_from_bits`.

Per-candidate binary ``Categorical`` values were chosen over ``InputChoice(n_chosen=None)``: any
subset -- the empty one included -- is legal and the input width of each branch follows from it,
NNI's multi-trial samplers (random, evolution, RL) handle independent categoricals natively, and
NNI's one-shot input choices do not support ``n_chosen=None``. The layers are custom mutable
modules (:class:`DenseLayerSpace`) holding the official ENAS-style weight *slabs*: one C-channel
slice of weights per candidate input, gathered for the inputs in use. Their one-shot forms (the
official weight-sharing supernet for ``RandomOneShot``/``ENAS``, a relaxation of each bit for
``DARTS``/``GumbelDARTS``) are in :mod:`srnas_nni.spaces.oneshot.deconas`.

**Optional fusion search** (``search_fusions=True``, the official ``feature_fusion`` /
``rl_search`` option, off by default and in the released model): 4 more bits per level pick which
earlier outputs enter the fusions; the newest output always does::

    dnb/fusion/input{i}     i < num_layers: block input, layer 0 .. layer L-2 (shared by all DNBs)
    global_fusion/input{i}  i < num_blocks: shallow features, DNB 1 .. DNB B-1

Constructor arguments: ``scale`` (2, 3, 4), ``channels`` (C, 64), ``num_blocks`` (4),
``num_layers`` (4), ``branches`` (subset/order of ``conv``, ``sep``, ``dil``), ``dilation`` (3),
``attention_reduction`` (4; 0 disables channel attention), ``search_fusions`` (False),
``keep_unused_last_fusion`` (False; see below).

**Differences from the official code (TensorFlow, Junem360/DeCoNAS).** The official graph also
builds a DNB-to-DNB 1x1 fusion *after the last DNB* whose output is never read; TensorFlow counts
its (B + 1) C^2 + C weights (20,544 at C = 64), and so does the published 1,713K.
``keep_unused_last_fusion=True`` keeps that dead layer (parameters, no Mult-Adds, no gradient) so
the released model's count can be reproduced; it is off in the search space. The official input
normalisation is a BGR mean on [0, 255]; here the DIV2K RGB mean on [0, 1] (no parameters either
way).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..models.ops import ChannelAttention, MeanShift, SubPixelUpsampler, conv2d
from . import register_space
from .base import SpaceCost, SRModelSpace

from nni.mutable import Categorical, SampleValidationError, label_scope  # noqa: E402
from nni.nas.nn.pytorch import MutableModule  # noqa: E402

__all__ = [
    "BRANCHES", "BIT_ORDER", "DeCoNASSpace", "DeCoNASNetwork", "DenseBlock", "DenseLayer", "BranchOp",
    "InputFusion", "DenseLayerSpace", "FusionSpace",
]

#: The three branch ops of a dense layer, in the official bit order.
BRANCHES: tuple[str, ...] = ("conv", "sep", "dil")

#: Published order of the 30 bits: layer-major, then candidate input, then branch.
BIT_ORDER: str = "layer, input, branch"

_KERNEL = 3


# --------------------------------------------------------------------------------------------
# Plain (frozen) modules


class BranchOp(nn.Module):
    """ReLU then one branch op over the concatenation of ``num_inputs`` C-channel inputs -> C.

    ``conv``: conv 3x3; ``sep``: depthwise 3x3 (no bias, as the official ``separable_conv2d``)
    + pointwise 1x1 with bias; ``dil``: conv 3x3 with ``dilation``.
    """

    def __init__(self, kind: str, channels: int, num_inputs: int, *, dilation: int = 3):
        super().__init__()
        width = channels * num_inputs
        self.kind = kind
        if kind == "conv":
            self.op = conv2d(width, channels, _KERNEL)
        elif kind == "sep":
            self.op = nn.Sequential(conv2d(width, width, _KERNEL, groups=width, bias=False),
                                    conv2d(width, channels, 1))
        elif kind == "dil":
            self.op = conv2d(width, channels, _KERNEL, dilation=dilation)
        else:
            raise ValueError(f"unknown DeCoNAS branch {kind!r}; expected one of {BRANCHES}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(torch.relu(x))


class DenseLayer(nn.Module):
    """One frozen dense layer: each branch reads its chosen candidates; mean, ReLU, attention.

    ``chosen`` maps a branch to the candidate indices it reads (0 = block input, ``j + 1`` =
    layer ``j``); branches with no input are absent. With none active the layer passes
    ReLU(latest candidate) on, as the official code does.
    """

    def __init__(self, channels: int, chosen: Mapping[str, Sequence[int]], *, dilation: int = 3,
                 attention_reduction: int = 4):
        super().__init__()
        self.chosen = {kind: [int(i) for i in inputs] for kind, inputs in chosen.items() if inputs}
        self.branches = nn.ModuleDict({kind: BranchOp(kind, channels, len(inputs), dilation=dilation)
                                       for kind, inputs in self.chosen.items()})
        self.attention = ChannelAttention(channels, attention_reduction) if attention_reduction else nn.Identity()

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        if self.chosen:
            outputs = [branch(_concat(states, self.chosen[kind])) for kind, branch in self.branches.items()]
            out = torch.relu(torch.stack(outputs).mean(0) if len(outputs) > 1 else outputs[0])
        else:
            out = torch.relu(states[-1])
        return self.attention(out)

    def extra_repr(self) -> str:
        return f"chosen={self.chosen}"


class InputFusion(nn.Module):
    """1x1 conv over the concatenation of the chosen inputs (a local or global feature fusion)."""

    def __init__(self, channels: int, chosen: Sequence[int], out_channels: int | None = None):
        super().__init__()
        self.chosen = [int(i) for i in chosen]
        self.conv = conv2d(channels * len(self.chosen), out_channels or channels, 1)

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        return self.conv(_concat(states, self.chosen))

    def extra_repr(self) -> str:
        return f"chosen={self.chosen}"


class DenseBlock(nn.Module):
    """A DNB: dense layers over a growing list of states, local fusion, local residual."""

    def __init__(self, layers: Iterable[nn.Module], local_fusion: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.local_fusion = local_fusion

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states = [x]
        for layer in self.layers:
            states.append(layer(states))
        return self.local_fusion(states) + x


class DeCoNASNetwork(nn.Module):
    """The whole DeCoNAS network; its layers and fusions are plain or mutable modules."""

    def __init__(self, channels: int, scale: int, blocks: Iterable[nn.Module], block_fusions: Iterable[nn.Module],
                 global_fusion: nn.Module, unused_last_fusion: nn.Module | None = None):
        super().__init__()
        self.sub_mean = MeanShift(sign=-1)
        self.shallow_first = conv2d(3, channels, _KERNEL)
        self.shallow_second = conv2d(channels, channels, _KERNEL)
        self.blocks = nn.ModuleList(blocks)
        self.block_fusions = nn.ModuleList(block_fusions)
        if unused_last_fusion is not None:
            # The official graph's fusion after the last DNB: built, never run (see module docstring).
            self.unused_last_fusion = unused_last_fusion
        self.global_fusion = global_fusion
        self.global_conv = conv2d(channels, channels, _KERNEL)
        self.upsampler = SubPixelUpsampler(channels, scale, activation=False)
        self.tail = conv2d(channels, 3, _KERNEL)
        self.add_mean = MeanShift(sign=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shallow = self.shallow_first(self.sub_mean(x))
        outputs = [self.shallow_second(shallow)]
        block_input = outputs[0]
        for index, block in enumerate(self.blocks):
            outputs.append(block(block_input))
            if index < len(self.block_fusions):
                block_input = self.block_fusions[index](outputs)
        features = self.global_conv(self.global_fusion(outputs)) + shallow
        return self.add_mean(self.tail(self.upsampler(features)))


def _concat(states: list[torch.Tensor], chosen: Sequence[int]) -> torch.Tensor:
    return states[chosen[0]] if len(chosen) == 1 else torch.cat([states[i] for i in chosen], dim=1)


# --------------------------------------------------------------------------------------------
# Mutable modules (the search space)


def _bit(sample: Mapping[str, Any], bit: Categorical) -> int:
    return int(bit.freeze(sample))


def _uniform_(tensor: torch.Tensor, fan_in: int) -> None:
    # PyTorch's default conv init, with the fan-in of one candidate's slab (ENAS-style sharing).
    bound = 1.0 / math.sqrt(fan_in)
    nn.init.uniform_(tensor, -bound, bound)


class DenseLayerSpace(MutableModule):
    """A dense layer whose per-branch input subsets are open (one binary mutable per candidate).

    Holds the official weight slabs: for each branch one C-channel weight slice per candidate
    input, plus a bias; a choice of inputs gathers its slices. Its own ``forward`` runs the
    subsets in ``self.chosen`` (the all-off default in the raw space; sampled in the supernet).
    """

    def __init__(self, channels: int, bits: Mapping[str, Sequence[Categorical]], *, dilation: int = 3,
                 attention_reduction: int = 4):
        super().__init__()
        self.channels = channels
        self.bits = {kind: list(values) for kind, values in bits.items()}
        self.num_inputs = len(next(iter(self.bits.values())))
        self.dilation = dilation
        self.attention_reduction = attention_reduction
        for values in self.bits.values():
            for bit in values:
                self.add_mutable(bit)
        c, n, k = channels, self.num_inputs, _KERNEL
        self.weights = nn.ParameterDict()
        for kind in self.bits:
            if kind in ("conv", "dil"):
                self.weights[f"{kind}_weight"] = nn.Parameter(torch.empty(c, n * c, k, k))
                _uniform_(self.weights[f"{kind}_weight"], c * k * k)
            elif kind == "sep":
                self.weights["sep_depthwise"] = nn.Parameter(torch.empty(n * c, 1, k, k))
                _uniform_(self.weights["sep_depthwise"], k * k)
                self.weights["sep_pointwise"] = nn.Parameter(torch.empty(c, n * c, 1, 1))
                _uniform_(self.weights["sep_pointwise"], c)
            else:
                raise ValueError(f"unknown DeCoNAS branch {kind!r}; expected one of {BRANCHES}")
            self.weights[f"{kind}_bias"] = nn.Parameter(torch.empty(c))
            _uniform_(self.weights[f"{kind}_bias"], c * (1 if kind == "sep" else k * k))
        self.attention = ChannelAttention(c, attention_reduction) if attention_reduction else nn.Identity()
        self.chosen: dict[str, list[int]] = {kind: [] for kind in self.bits}

    # -- slabs -------------------------------------------------------------------------------

    def _input_channels(self, inputs: Sequence[int]) -> torch.Tensor:
        c = self.channels
        return torch.cat([torch.arange(i * c, (i + 1) * c) for i in inputs])

    def branch_forward(self, kind: str, x: torch.Tensor, inputs: Sequence[int] | None) -> torch.Tensor:
        """Run branch ``kind`` on ``x`` (the concatenated candidates ``inputs``; None = all)."""
        w = self.weights
        index = None if inputs is None else self._input_channels(inputs).to(x.device)
        x = torch.relu(x)
        if kind == "sep":
            depthwise, pointwise = w["sep_depthwise"], w["sep_pointwise"]
            if index is not None:
                depthwise, pointwise = depthwise[index], pointwise[:, index]
            x = F.conv2d(x, depthwise, padding=_KERNEL // 2, groups=x.shape[1])
            return F.conv2d(x, pointwise, w["sep_bias"])
        weight = w[f"{kind}_weight"] if index is None else w[f"{kind}_weight"][:, index]
        dilation = self.dilation if kind == "dil" else 1
        return F.conv2d(x, weight, w[f"{kind}_bias"], padding=dilation * (_KERNEL // 2), dilation=dilation)

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        active = {kind: inputs for kind, inputs in self.chosen.items() if inputs}
        if active:
            outputs = [self.branch_forward(kind, _concat(states, inputs), inputs) for kind, inputs in active.items()]
            out = torch.relu(torch.stack(outputs).mean(0) if len(outputs) > 1 else outputs[0])
        else:
            out = torch.relu(states[-1])
        return self.attention(out)

    # -- freezing ----------------------------------------------------------------------------

    def chosen_inputs(self, sample: Mapping[str, Any]) -> dict[str, list[int]]:
        return {kind: [i for i, bit in enumerate(values) if _bit(sample, bit)] for kind, values in self.bits.items()}

    @classmethod
    def create_fixed_module(cls, sample: dict, channels: int, bits: Mapping[str, Sequence[Categorical]], *,
                            dilation: int = 3, attention_reduction: int = 4) -> DenseLayer:
        chosen = {kind: [i for i, bit in enumerate(values) if _bit(sample, bit)] for kind, values in bits.items()}
        return DenseLayer(channels, chosen, dilation=dilation, attention_reduction=attention_reduction)

    def freeze(self, sample: dict[str, Any]) -> DenseLayer:
        """The plain layer for ``sample``, carrying this module's (supernet) weights."""
        self.validate(sample)
        layer = DenseLayer(self.channels, self.chosen_inputs(sample), dilation=self.dilation,
                           attention_reduction=self.attention_reduction)
        w = self.weights
        with torch.no_grad():
            for kind, branch in layer.branches.items():
                index = self._input_channels(layer.chosen[kind])
                if kind == "sep":
                    branch.op[0].weight.copy_(w["sep_depthwise"][index])
                    branch.op[1].weight.copy_(w["sep_pointwise"][:, index])
                    branch.op[1].bias.copy_(w["sep_bias"])
                else:
                    branch.op.weight.copy_(w[f"{kind}_weight"][:, index])
                    branch.op.bias.copy_(w[f"{kind}_bias"])
            layer.attention.load_state_dict(self.attention.state_dict())
        return layer

    def all_bits(self) -> list[Categorical]:
        return [bit for values in self.bits.values() for bit in values]


class FusionSpace(MutableModule):
    """A 1x1 fusion whose inputs (all but the newest, which always enters) are open bits."""

    def __init__(self, channels: int, bits: Sequence[Categorical]):
        super().__init__()
        self.channels = channels
        self.bits = list(bits)
        for bit in self.bits:
            self.add_mutable(bit)
        n = len(self.bits) + 1
        self.weight = nn.Parameter(torch.empty(channels, n * channels, 1, 1))
        self.bias = nn.Parameter(torch.empty(channels))
        _uniform_(self.weight, channels)
        _uniform_(self.bias, channels)
        self.chosen: list[int] = [len(self.bits)]

    def _index(self, inputs: Sequence[int], device: torch.device) -> torch.Tensor:
        c = self.channels
        return torch.cat([torch.arange(i * c, (i + 1) * c) for i in inputs]).to(device)

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        weight = self.weight[:, self._index(self.chosen, self.weight.device)]
        return F.conv2d(_concat(states, self.chosen), weight, self.bias)

    def chosen_inputs(self, sample: Mapping[str, Any]) -> list[int]:
        return [i for i, bit in enumerate(self.bits) if _bit(sample, bit)] + [len(self.bits)]

    @classmethod
    def create_fixed_module(cls, sample: dict, channels: int, bits: Sequence[Categorical]) -> InputFusion:
        return InputFusion(channels, [i for i, bit in enumerate(bits) if _bit(sample, bit)] + [len(bits)])

    def freeze(self, sample: dict[str, Any]) -> InputFusion:
        self.validate(sample)
        fusion = InputFusion(self.channels, self.chosen_inputs(sample))
        with torch.no_grad():
            fusion.conv.weight.copy_(self.weight[:, self._index(fusion.chosen, self.weight.device)])
            fusion.conv.bias.copy_(self.bias)
        return fusion

    def all_bits(self) -> list[Categorical]:
        return list(self.bits)


# --------------------------------------------------------------------------------------------
# The space


@register_space("deconas")
class DeCoNASSpace(SRModelSpace):
    """DeCoNAS search space (see the module docstring)."""

    supernet_forms = "deconas"  # the dense layers and the searched fusions

    def __init__(self, scale: int = 2, channels: int = 64, num_blocks: int = 4, num_layers: int = 4,
                 branches: Sequence[str] = BRANCHES, dilation: int = 3, attention_reduction: int = 4,
                 search_fusions: bool = False, keep_unused_last_fusion: bool = False):
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"DeCoNAS supports x2, x3 and x4, not x{scale}")
        branches = tuple(branches)
        if not branches or len(set(branches)) != len(branches) or not set(branches) <= set(BRANCHES):
            raise ValueError(f"branches must be distinct names from {BRANCHES}, got {list(branches)}")
        if channels < 1 or num_blocks < 1 or num_layers < 1:
            raise ValueError("channels, num_blocks and num_layers must be positive")
        if attention_reduction < 0 or (attention_reduction and channels // attention_reduction < 1):
            raise ValueError(f"attention_reduction {attention_reduction} does not fit {channels} channels")
        self.scale = int(scale)
        self.channels = int(channels)
        self.num_blocks = int(num_blocks)
        self.num_layers = int(num_layers)
        self.branches = branches
        self.dilation = int(dilation)
        self.attention_reduction = int(attention_reduction)
        self.search_fusions = bool(search_fusions)
        self.keep_unused_last_fusion = bool(keep_unused_last_fusion)

        # One set of mutables, handed to every DNB: same objects, same labels, one decision.
        with label_scope("dnb"):
            self.layer_bits: list[dict[str, list[Categorical]]] = []
            for c in range(num_layers):
                with label_scope(f"layer{c}"):
                    per_branch = {}
                    for kind in branches:
                        with label_scope(kind):
                            per_branch[kind] = [Categorical([0, 1], label=f"input{i}") for i in range(c + 1)]
                    self.layer_bits.append(per_branch)
            self.local_bits: list[Categorical] = []
            if search_fusions:
                with label_scope("fusion"):
                    self.local_bits = [Categorical([0, 1], label=f"input{i}") for i in range(num_layers)]
        self.global_bits: list[Categorical] = []
        if search_fusions:
            with label_scope("global_fusion"):
                self.global_bits = [Categorical([0, 1], label=f"input{i}") for i in range(num_blocks)]

        C = self.channels
        blocks = []
        for _ in range(num_blocks):
            layers = [DenseLayerSpace(C, bits, dilation=dilation, attention_reduction=attention_reduction)
                      for bits in self.layer_bits]
            local = FusionSpace(C, self.local_bits) if search_fusions else InputFusion(C, range(num_layers + 1))
            blocks.append(DenseBlock(layers, local))
        block_fusions = [InputFusion(C, range(b + 2)) for b in range(num_blocks - 1)]
        global_fusion = FusionSpace(C, self.global_bits) if search_fusions else InputFusion(C, range(num_blocks + 1))
        unused = InputFusion(C, range(num_blocks + 1)) if keep_unused_last_fusion else None
        self.network = DeCoNASNetwork(C, self.scale, blocks, block_fusions, global_fusion, unused)
        self._labels_in_order = [bit.label for bit in self.bit_mutables()]

    # -- decisions ---------------------------------------------------------------------------

    def bit_mutables(self) -> list[Categorical]:
        """Every decision, in the published order (layer, input, branch), then the fusion bits."""
        ordered = []
        for c, per_branch in enumerate(self.layer_bits):
            for i in range(c + 1):
                ordered.extend(per_branch[kind][i] for kind in self.branches)
        return ordered + self.local_bits + self.global_bits

    def sample_from_bits(self, bits: str | Sequence[int]) -> dict[str, int]:
        """A sample from the paper's bit string (``"1 1 1 | 1 1 0 ..."``; separators ignored)."""
        if isinstance(bits, str):
            bits = [int(ch) for ch in bits if ch in "01"]
        bits = [int(b) for b in bits]
        if len(bits) != len(self._labels_in_order):
            raise ValueError(f"expected {len(self._labels_in_order)} bits, got {len(bits)}")
        return dict(zip(self._labels_in_order, bits))

    # -- cost model --------------------------------------------------------------------------

    def _read_bits(self, sample: Mapping[str, Any]) -> dict[str, int]:
        values = {}
        for label in self._labels_in_order:
            if label not in sample:
                raise SampleValidationError(f"{label}: missing from the sample")
            value = sample[label]
            if value not in (0, 1) or isinstance(value, float):
                raise SampleValidationError(f"{label}: {value!r} not in [0, 1]")
            values[label] = int(value)
        if len(sample) != len(values):
            unknown = sorted(set(sample) - set(values))
            raise SampleValidationError(f"unknown label(s) {unknown}")
        return values

    def cost(self, sample: dict[str, Any], hr_size: tuple[int, int] = (720, 1280)) -> SpaceCost:
        """Exact params and Mult-Adds of ``freeze(sample)`` (the ``measure`` convention), analytically."""
        bits = self._read_bits(sample)
        C, k2, s = self.channels, _KERNEL * _KERNEL, self.scale
        height, width = -(-int(hr_size[0]) // s), -(-int(hr_size[1]) // s)
        pixels = height * width

        def conv(cin: int, cout: int, kernel_area: int = 1, groups: int = 1, bias: bool = True,
                 at: int = pixels) -> tuple[int, int]:
            weights = cout * (cin // groups) * kernel_area
            return weights + (cout if bias else 0), weights * at

        parts: list[tuple[int, int]] = []
        # One DNB (all blocks are identical: shared decisions).
        block: list[tuple[int, int]] = []
        hidden = C // self.attention_reduction if self.attention_reduction else 0
        for c, per_branch in enumerate(self.layer_bits):
            for kind, values in per_branch.items():
                n = sum(bits[bit.label] for bit in values)
                if not n:
                    continue
                if kind == "sep":
                    block += [conv(n * C, n * C, k2, groups=n * C, bias=False), conv(n * C, C)]
                else:
                    block.append(conv(n * C, C, k2))
            if hidden:  # channel attention: two 1x1 convs on a 1x1 map
                block += [conv(C, hidden, at=1), conv(hidden, C, at=1)]
        local_inputs = (sum(bits[b.label] for b in self.local_bits) + 1 if self.search_fusions
                        else self.num_layers + 1)
        block.append(conv(local_inputs * C, C))
        block_params, block_macs = (sum(p for p, _ in block), sum(m for _, m in block))

        parts += [conv(3, C, k2), conv(C, C, k2)]
        parts += [conv((b + 2) * C, C) for b in range(self.num_blocks - 1)]
        global_inputs = (sum(bits[b.label] for b in self.global_bits) + 1 if self.search_fusions
                         else self.num_blocks + 1)
        parts += [conv(global_inputs * C, C), conv(C, C, k2)]
        if self.keep_unused_last_fusion:
            parts.append((conv((self.num_blocks + 1) * C, C)[0], 0))
        at = pixels
        for factor in ([2, 2] if s == 4 else [s]):
            parts.append(conv(C, C * factor * factor, k2, at=at))
            at *= factor * factor
        parts.append(conv(C, 3, k2, at=at))
        params = sum(p for p, _ in parts) + self.num_blocks * block_params
        multadds = sum(m for _, m in parts) + self.num_blocks * block_macs
        return SpaceCost(int(params), int(multadds))
