"""The spaces' supernet forms, and the one table of which form a one-shot strategy gets.

NNI's one-shot strategies turn a model space into a supernet by *mutation hooks*: functions that
replace each mutable module by its one-shot form. NNI's own hooks cover ``LayerChoice``,
``InputChoice`` and ``nni.choice``-parametrised layers; the spaces' custom mutable modules (HNAS's
upsampling position, Trilevel's network path, HiNAS's width trellis, DeCoNAS's dense layers, ...)
have their forms here, one module per space that has them:

* :mod:`.hnas`, :mod:`.trilevel`, :mod:`.hinas`, :mod:`.dlsr`, :mod:`.deconas`: each subclasses or
  replaces the mutable modules of the space module of its name;
* :mod:`.common`: the forms several spaces use (:class:`~.common.DifferentiableChoice`, the DARTS
  mixin of a single choice; :class:`~.common.PathSamplingInputSelect`).

NNI asks the model for its hooks (``model.extra_oneshot_hooks(strategy)``);
:meth:`srnas_nni.spaces.base.SRModelSpace.extra_oneshot_hooks` answers with :func:`oneshot_hooks`, the
single lookup in :data:`SUPERNET_FORMS`: space -> kind of strategy -> the forms whose ``mutate`` hooks
run, in that order. The table names the forms, and their module is imported when a supernet is built:
a forms module imports its space module (its forms subclass the space's modules), so the space
modules cannot import their forms back, and listing or building a space never loads them.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Callable

from ...nni_adapter.oneshot import DARTS, Proxyless, RandomOneShot

__all__ = ["DIFFERENTIABLE", "PROXYLESS", "PATH_SAMPLING", "SUPERNET_FORMS", "strategy_kind", "oneshot_hooks"]

#: NNI's ``DARTS`` and ``GumbelDARTS`` (and srnas-nni's DARTS strategies): every candidate, weighted.
DIFFERENTIABLE = "differentiable"
#: NNI's ``Proxyless``. To NNI it is a ``DARTS`` (the same architecture logits in the hook memo), so a
#: space's DARTS forms can serve it; NNI's own Proxyless hooks sample one path per step.
PROXYLESS = "proxyless"
#: NNI's ``RandomOneShot`` and ``ENAS`` (and the hierarchical RL strategy): one sampled path per step.
PATH_SAMPLING = "path_sampling"

#: Space (its module in this package) -> strategy kind -> the supernet forms of its custom modules, in
#: hook order. A kind a space does not list gets none: NNI's check then names the module it cannot
#: convert. Proxyless gets the DARTS forms of the spaces listing it here (DeCoNAS searches that way),
#: none elsewhere.
SUPERNET_FORMS: dict[str, dict[str, tuple[str, ...]]] = {
    "hnas": {
        DIFFERENTIABLE: ("UpsamplingPositionDifferentiable",),
        PATH_SAMPLING: ("UpsamplingPositionPathSampling",),
    },
    "trilevel": {
        DIFFERENTIABLE: ("NetworkPathDifferentiable",),
        PROXYLESS: ("NetworkPathDifferentiable",),
        PATH_SAMPLING: ("NetworkPathSampling",),
    },
    "hinas": {
        DIFFERENTIABLE: ("WidthTrellisDifferentiable", "HiNASNodeDifferentiable"),
        PATH_SAMPLING: ("WidthTrellisPathSampling", "PathSamplingInputSelect"),
    },
    "dlsr": {
        # Replaces the whole fusion (its 1x1 widens) before the input choice inside is visited.
        DIFFERENTIABLE: ("DifferentiableCellInputFusion",),
        PATH_SAMPLING: ("PathSamplingInputSelect",),
    },
    "deconas": {
        DIFFERENTIABLE: ("DenseLayerDifferentiable", "FusionDifferentiable"),
        PROXYLESS: ("DenseLayerDifferentiable", "FusionDifferentiable"),
        PATH_SAMPLING: ("DenseLayerPathSampling", "FusionPathSampling"),
    },
}


def strategy_kind(strategy: Any) -> str | None:
    """The kind of one-shot strategy ``strategy`` is (subclasses included); None for any other."""
    if isinstance(strategy, Proxyless):  # before DARTS: NNI's Proxyless is a DARTS subclass
        return PROXYLESS
    if isinstance(strategy, DARTS):
        return DIFFERENTIABLE
    if isinstance(strategy, RandomOneShot):
        return PATH_SAMPLING
    return None


def _forms_module(space: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{space}")


def oneshot_hooks(space: str | None, strategy: Any) -> list[Callable]:
    """The mutation hooks of ``space``'s supernet forms for ``strategy`` (none for ``space=None``)."""
    if space is None:
        return []
    names = SUPERNET_FORMS[space].get(strategy_kind(strategy), ())
    forms = _forms_module(space) if names else None
    return [getattr(forms, name).mutate for name in names]
