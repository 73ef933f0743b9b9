"""NNI's one-shot machinery, as srnas-nni's spaces and strategies use it.

NNI's supernet modules, mixed operations and one-shot Lightning modules live in NNI's private
packages (``nni.nas.oneshot.pytorch.*``); every use in srnas-nni goes through this module, so that the
day NNI moves or drops one, this is the one file to change. Importing it applies the adapter's
patches first (:mod:`.loader`).

One behaviour of NNI 3.0 is absorbed here, and checked by ``tests/unit/nni_adapter/test_nni_oneshot_behaviour.py``:

* Freezing a mixed operation. The one-shot strategies turn an ``nni.choice``-parametrised layer
  (``MutableConv2d`` and kin) into a weight-sharing ``MixedOperation`` (``MixedConv2d``: one weight
  tensor sliced for every width). NNI's ``MixedOperation.freeze`` builds the frozen layer as the
  ``bound_type`` -- NNI's own ``MutableConv2d``, an NNI class a frozen srnas-nni network may not
  hold -- and loads every entry of ``freeze_weight`` into it, ``"bias": None`` included, which a
  bias-free convolution refuses ("Unexpected key(s) in state_dict: bias"). So it cannot freeze the
  bias-free convolutions of the Trilevel space at all. :func:`freeze_mixed_operation` slices the same
  weights (``freeze_weight``) into the plain torch layer that NNI's class wraps, without the empty
  entries.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .loader import nni  # noqa: F401  (the warning filter and the patches before NNI's one-shot import)

# ``nni.nas.strategy`` first: importing ``nni.nas.oneshot.pytorch.strategy`` before it makes NNI's
# circular import replace every one-shot strategy in ``nni.nas.strategy`` by a placeholder class.
from nni.nas.strategy import DARTS, GumbelDARTS, Proxyless, RandomOneShot  # noqa: E402
from nni.nas.oneshot.pytorch.base_lightning import BaseOneShotLightningModule  # noqa: E402
from nni.nas.oneshot.pytorch.differentiable import DartsLightningModule  # noqa: E402
from nni.nas.oneshot.pytorch.strategy import OneShotStrategy, no_default_hook  # noqa: E402
from nni.nas.oneshot.pytorch.supermodule._expression_utils import weighted_sum  # noqa: E402
from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule  # noqa: E402
from nni.nas.oneshot.pytorch.supermodule.differentiable import (  # noqa: E402
    DifferentiableMixedCell, DifferentiableMixedInput, DifferentiableMixedLayer, DifferentiableMixedRepeat,
)
from nni.nas.oneshot.pytorch.supermodule.operation import NATIVE_MIXED_OPERATIONS, MixedOperation  # noqa: E402
from nni.nas.oneshot.pytorch.supermodule.sampling import PathSamplingInput  # noqa: E402
from nni.nas.space import current_model  # noqa: E402

__all__ = ["DARTS", "GumbelDARTS", "Proxyless", "RandomOneShot", "BaseOneShotLightningModule", "DartsLightningModule",
           "OneShotStrategy", "no_default_hook", "weighted_sum", "BaseSuperNetModule", "DifferentiableMixedCell",
           "DifferentiableMixedInput", "DifferentiableMixedLayer", "DifferentiableMixedRepeat",
           "NATIVE_MIXED_OPERATIONS", "MixedOperation", "PathSamplingInput", "current_model",
           "freeze_mixed_operation"]


def freeze_mixed_operation(operation: MixedOperation, sample: dict[str, Any]) -> nn.Module:
    """``operation`` frozen at ``sample``: the plain torch layer (``nn.Conv2d`` for a ``MixedConv2d``)
    holding a copy of the sliced shared weights (see the module docstring for why not NNI's ``freeze``)."""
    arguments = {**operation.init_arguments}
    arguments.update({name: mutable.freeze(sample) for name, mutable in operation.mutable_arguments.items()})
    # ``bound_type`` is NNI's Mutable* layer; ``_bound_type`` the torch class it wraps.
    layer = (getattr(operation.bound_type, "_bound_type", None) or operation.bound_type)(**arguments)
    weights = {name: value for name, value in operation.freeze_weight(**arguments).items() if value is not None}
    layer.load_state_dict({name: value.detach().clone() for name, value in weights.items()})
    return layer
