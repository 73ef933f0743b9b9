"""The NNI 3.0 one-shot behaviour srnas_nni.nni_adapter.oneshot absorbs: freezing a mixed operation.

NNI's ``MixedOperation.freeze`` (the weight-sharing form of an ``nni.choice``-parametrised layer) builds
NNI's own ``Mutable*`` layer and loads a ``"bias": None`` entry into it; the adapter's
``freeze_mixed_operation`` builds the plain torch layer instead. The first two tests state what NNI does:
when they fail, NNI changed and ``freeze_mixed_operation`` may be dropped for NNI's ``freeze``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from srnas_nni.nni_adapter.oneshot import DARTS, MixedOperation, RandomOneShot, freeze_mixed_operation

from nni.mutable import Categorical  # noqa: E402
from nni.nas.nn.pytorch import ModelSpace, MutableConv2d  # noqa: E402

SAMPLE = {"width": 4}


class _WidthSpace(ModelSpace):
    def __init__(self, bias: bool):
        super().__init__()
        self.conv = MutableConv2d(3, Categorical([4, 8], label="width"), 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _mixed_conv(bias: bool, strategy=RandomOneShot) -> MixedOperation:
    torch.manual_seed(0)
    conv = strategy().mutate_model(_WidthSpace(bias)).conv
    assert isinstance(conv, MixedOperation)
    return conv


def test_nni_cannot_freeze_a_bias_free_mixed_conv():
    # NNI loads freeze_weight's ``"bias": None`` into the frozen conv, which has no bias.
    with pytest.raises(RuntimeError, match="Unexpected key.*bias"):
        _mixed_conv(bias=False).freeze(SAMPLE)


def test_nni_freezes_a_mixed_conv_to_its_own_layer_class():
    # The frozen layer is NNI's MutableConv2d (its ``bound_type``), which a frozen srnas-nni network may not hold.
    frozen = _mixed_conv(bias=True).freeze(SAMPLE)
    assert type(frozen) is MutableConv2d and type(frozen).__module__.startswith("nni.")


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("strategy", [RandomOneShot, DARTS])
def test_freeze_mixed_operation_gives_the_plain_layer_with_copied_sliced_weights(bias, strategy):
    mixed = _mixed_conv(bias, strategy)
    frozen = freeze_mixed_operation(mixed, SAMPLE)
    assert type(frozen) is nn.Conv2d
    assert (frozen.in_channels, frozen.out_channels, frozen.kernel_size) == (3, 4, (3, 3))
    assert torch.equal(frozen.weight, mixed.weight[:4])
    assert frozen.weight.data_ptr() != mixed.weight.data_ptr()
    if bias:
        assert torch.equal(frozen.bias, mixed.bias[:4])
    else:
        assert frozen.bias is None
    x = torch.rand(1, 3, 5, 5)
    with torch.no_grad():
        reference = nn.functional.conv2d(x, mixed.weight[:4], mixed.bias[:4] if bias else None, padding=1)
        assert torch.allclose(frozen(x), reference)
