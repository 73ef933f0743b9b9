"""Parameters and Mult-Adds of an SR model, by the convention of the SR literature.

Convention (CARN, FALSR, DLSR and most lightweight-SR papers):

* **Mult-Adds** = multiply-accumulate operations to produce one ``1280x720`` HR image (batch 1).
  The LR input is ``ceil(720 / s) x ceil(1280 / s)``: 640x360 at x2, 427x240 at x3, 320x180 at x4.
  Counted: convolutions of any kind (grouped, depthwise, dilated: ``Cout*Hout*Wout * Cin/groups *
  kh*kw``), transposed convolutions (counted as ``thop`` counts them, ``output elements *
  Cin/groups * kh*kw``, which is how FSRCNN's published 6.0G was obtained; not the
  ``input elements * ...`` of the scatter form) and matrix products (``mm``, ``addmm``, ``bmm``,
  ``baddbmm``, ``mv``, ``dot``, fused attention: product of the dimensions). Not counted: biases,
  activations, additions and other elementwise arithmetic, pixel shuffle, interpolation, gathers.
  The ops that ran but were not counted are listed in :attr:`CostReport.uncounted`, so nothing
  that carries compute disappears silently (views and tensor creation are left out of that list).
* **Params** = elements of the learnable parameters (``requires_grad``), biases included, each
  tensor counted once even when a module is reused (CARN-M's recursion). Buffers (fixed mean
  shifts, BatchNorm statistics) are not parameters.

How: the forward pass runs under a ``TorchDispatchMode`` that sees every aten op, so functional
calls (``F.conv2d`` with a weight of one's own) are counted as well as modules. It runs on the
``meta`` device (shapes only, no data, milliseconds even at 1280x720): the parameters and buffers
are swapped for meta stand-ins for the duration of the pass and the very same tensor objects put
back afterwards, so the model is neither copied nor moved, and its train/eval flags are restored
(the pass itself runs in eval mode, i.e. measures inference). A model that cannot run on ``meta``
(e.g. it calls ``.item()``) is run once on the CPU with a zero input instead; the report's
``device`` says which. The first meta pass of a process takes about a second longer: torch's meta
kernels import their symbolic-shape helpers (sympy) then.
"""

from __future__ import annotations

import math
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ..errors import ModelSpecError

__all__ = ["CostReport", "measure", "lr_size_for", "count_params", "DEFAULT_HR_SIZE"]

#: (height, width) of the HR image the convention counts Mult-Adds for.
DEFAULT_HR_SIZE: tuple[int, int] = (720, 1280)


@dataclass(frozen=True)
class CostReport:
    """Result of :func:`measure`. ``hr_size`` and ``lr_size`` are ``(height, width)``."""

    params: int
    multadds: int
    scale: int
    hr_size: tuple[int, int]
    lr_size: tuple[int, int]
    #: aten op name -> calls that ran but are not Mult-Adds by convention (activations, additions,
    #: pixel_shuffle, interpolation, index_select, cat, ...).
    uncounted: dict[str, int] = field(default_factory=dict, hash=False)
    #: where the forward pass ran: "meta" normally, "cpu" for models that cannot run on meta.
    device: str = "meta"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (lists for sizes)."""
        return {
            "params": self.params,
            "multadds": self.multadds,
            "hr_size": list(self.hr_size),
            "lr_size": list(self.lr_size),
            "uncounted": dict(self.uncounted),
            "device": self.device,
        }

    def summary(self) -> str:
        """One line, e.g. ``1,591,939 params, 222.82 G Mult-Adds (x2, 1280x720 output)``."""
        h, w = self.hr_size
        return (f"{self.params:,} params, {self.multadds / 1e9:.2f} G Mult-Adds "
                f"(x{self.scale}, {w}x{h} output)")


def lr_size_for(hr_size: tuple[int, int], scale: int) -> tuple[int, int]:
    """LR ``(height, width)`` for an HR size: ``ceil`` of each side divided by the scale."""
    return (math.ceil(hr_size[0] / scale), math.ceil(hr_size[1] / scale))


def count_params(model: nn.Module) -> int:
    """Elements of the learnable parameters, each tensor once (``parameters()`` de-duplicates)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------------------------
# Counting rules: aten op (overload packet) -> Mult-Adds of one call from its arguments/output.


def _prod(values) -> int:
    return math.prod(int(v) for v in values)


def _convolution_macs(args: tuple, out: torch.Tensor) -> int:
    # aten.convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
    weight, transposed, groups = args[1], bool(args[6]), int(args[8])
    kernel = _prod(weight.shape[2:])
    if transposed:
        # weight is (Cin, Cout/groups, k...); count per output element as thop does.
        return out.numel() * (int(weight.shape[0]) // groups) * kernel
    # weight is (Cout, Cin/groups, k...).
    return out.numel() * int(weight.shape[1]) * kernel


def _mm_macs(a: torch.Tensor, b: torch.Tensor) -> int:
    return int(a.shape[0]) * int(a.shape[1]) * int(b.shape[1])


def _bmm_macs(a: torch.Tensor, b: torch.Tensor) -> int:
    return int(a.shape[0]) * int(a.shape[1]) * int(a.shape[2]) * int(b.shape[2])


def _attention_macs(args: tuple, out: Any) -> int:
    # Fused scaled-dot-product attention: q (..., L, E), k (..., S, E), v (..., S, Ev).
    # Two matrix products: q @ k^T and softmax(.) @ v (softmax itself is not counted).
    query, key, value = args[0], args[1], args[2]
    batch = _prod(query.shape[:-2])
    length_q, embed = int(query.shape[-2]), int(query.shape[-1])
    length_kv, embed_v = int(key.shape[-2]), int(value.shape[-1])
    return batch * length_q * length_kv * (embed + embed_v)


_RULES: dict[str, Callable[[tuple, Any], int]] = {
    "convolution": _convolution_macs,
    "_convolution": _convolution_macs,
    "mm": lambda args, out: _mm_macs(args[0], args[1]),
    "addmm": lambda args, out: _mm_macs(args[1], args[2]),
    "bmm": lambda args, out: _bmm_macs(args[0], args[1]),
    "baddbmm": lambda args, out: _bmm_macs(args[1], args[2]),
    "mv": lambda args, out: int(args[0].shape[0]) * int(args[0].shape[1]),
    "addmv": lambda args, out: int(args[1].shape[0]) * int(args[1].shape[1]),
    "dot": lambda args, out: int(args[0].shape[0]),
}
for _name in ("_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu",
              "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
              "_scaled_dot_product_fused_attention_overrideable"):
    _RULES[_name] = _attention_macs

# Ops that carry no compute worth listing: creation, aliasing, copies/conversions, random init.
# Names as ``_op_name`` gives them (in-place suffix dropped); view ops are recognised by schema.
_BOOKKEEPING_OPS = frozenset({
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros", "zeros_like",
    "new_zeros", "ones", "ones_like", "new_ones", "full", "full_like", "new_full", "scalar_tensor",
    "arange", "lift_fresh", "lift_fresh_copy", "detach", "alias", "_unsafe_view", "clone", "copy",
    "_to_copy", "_local_scalar_dense", "sym_size", "sym_stride", "sym_numel", "sym_storage_offset",
    "is_same_size", "resize", "set", "uniform", "normal", "random", "fill", "zero",
})


def _op_name(func) -> str:
    """``relu`` for ``aten.relu.default`` and ``aten.relu_.default`` alike; ``ns::op`` outside aten."""
    name = func.overloadpacket.__name__
    if name.endswith("_") and not name.startswith("__"):
        name = name[:-1]  # in-place variant: the same computation, tallied under one name
    return name if func.namespace == "aten" else f"{func.namespace}::{name}"


def _is_bookkeeping(func, name: str) -> bool:
    return bool(getattr(func, "is_view", False)) or name in _BOOKKEEPING_OPS


class _MultAddCounter(TorchDispatchMode):
    """Sums Mult-Adds of counted ops and tallies the other compute ops by name."""

    def __init__(self) -> None:
        super().__init__()
        self.multadds = 0
        self.uncounted: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = _op_name(func)
        rule = _RULES.get(name)
        if rule is not None:
            self.multadds += int(rule(args, out))
        elif not _is_bookkeeping(func, name):
            self.uncounted[name] += 1
        return out


# --------------------------------------------------------------------------------------------


def _input_dtype(model: nn.Module) -> torch.dtype:
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


@contextmanager
def _stand_ins(model: nn.Module, make: Callable[[torch.Tensor, bool], torch.Tensor]) -> Iterator[None]:
    """Temporarily replace every parameter and buffer by ``make(tensor, is_parameter)``.

    The original tensor objects are put back afterwards. A tensor shared by several modules gets one
    stand-in. (``torch.func.functional_call`` does the same job but, on torch 2.13, leaves a module
    registered under two names holding the stand-ins, i.e. it would corrupt CARN-M-like models.)
    """
    swapped: list[tuple[dict[str, Any], str, torch.Tensor]] = []
    made: dict[int, torch.Tensor] = {}
    try:
        for module in model.modules():  # each module once, however many names it has
            stores: tuple[tuple[dict[str, Any], bool], ...] = (
                (module._parameters, True), (module._buffers, False))
            for store, is_parameter in stores:
                for name, tensor in list(store.items()):
                    if tensor is None:
                        continue
                    if id(tensor) not in made:
                        made[id(tensor)] = make(tensor, is_parameter)
                    swapped.append((store, name, tensor))
                    store[name] = made[id(tensor)]
        yield
    finally:
        for store, name, tensor in reversed(swapped):
            store[name] = tensor


def _meta_stand_in(tensor: torch.Tensor, is_parameter: bool) -> torch.Tensor:
    return torch.empty_like(tensor, device="meta")


def _cpu_stand_in(tensor: torch.Tensor, is_parameter: bool) -> torch.Tensor:
    # Real values (a data-dependent model may branch on them). Buffers are copied so that a forward
    # writing to its buffers cannot touch the model's own; parameters are only read.
    return tensor.detach().to("cpu", copy=not is_parameter)


def _run_counted(model: nn.Module, make: Callable[[torch.Tensor, bool], torch.Tensor],
                 x: torch.Tensor) -> _MultAddCounter:
    counter = _MultAddCounter()
    with torch.no_grad(), _stand_ins(model, make), counter:
        model(x)
    return counter


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def measure(model: nn.Module, scale: int, hr_size: tuple[int, int] = DEFAULT_HR_SIZE,
            in_channels: int | None = None) -> CostReport:
    """Parameters and Mult-Adds of ``model`` producing an ``hr_size`` (height, width) image at ``scale``.

    Args:
        model: an SR model (any ``nn.Module`` taking one NCHW tensor). Not modified, copied or moved.
        scale: the upscaling factor; the LR input is ``ceil(hr_size / scale)``.
        hr_size: ``(height, width)`` of the HR output the count refers to.
        in_channels: input channels; default ``model.in_channels``, else 3.

    Raises:
        ValueError: bad ``scale``/``hr_size``, or a ``scale`` that contradicts ``model.scale``.
        ModelSpecError: the forward pass fails (the message names the model class and input shape).
    """
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    scale = int(scale)
    model_scale = getattr(model, "scale", None)
    if isinstance(model_scale, int) and model_scale != scale:
        raise ValueError(f"{type(model).__name__} is an x{model_scale} model; cannot measure it at x{scale}")
    hr = (int(hr_size[0]), int(hr_size[1]))
    if min(hr) < 1:
        raise ValueError(f"hr_size must be positive (height, width), got {tuple(hr_size)}")
    lr = lr_size_for(hr, scale)
    channels = int(in_channels if in_channels is not None else getattr(model, "in_channels", 3))
    shape = (1, channels, *lr)
    dtype = _input_dtype(model)

    training_flags = [(module, module.training) for module in model.modules()]
    model.eval()  # inference cost: e.g. BatchNorm uses running statistics, Dropout is a no-op
    try:
        try:
            counter = _run_counted(model, _meta_stand_in, torch.empty(shape, dtype=dtype, device="meta"))
            device = "meta"
        except Exception as meta_error:  # noqa: BLE001 - any failure on meta: try real tensors
            try:
                counter = _run_counted(model, _cpu_stand_in, torch.zeros(shape, dtype=dtype))
            except Exception as cpu_error:  # noqa: BLE001 - reported as a one-line user error
                raise ModelSpecError(
                    f"cannot measure {type(model).__name__}: its forward pass fails on an input of shape "
                    f"{shape} (x{scale}, HR {hr[0]}x{hr[1]}): {_first_line(cpu_error)} "
                    f"(on meta: {_first_line(meta_error)})"
                ) from cpu_error
            device = "cpu"
    finally:
        for module, flag in training_flags:
            module.training = flag

    return CostReport(
        params=count_params(model),
        multadds=int(counter.multadds),
        scale=scale,
        hr_size=hr,
        lr_size=lr,
        uncounted=dict(sorted(counter.uncounted.items())),
        device=device,
    )
