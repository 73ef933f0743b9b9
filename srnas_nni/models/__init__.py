"""Models: the registry of SR networks, the operators they are built from, and the baseline networks.

* :mod:`.registry` -- a name maps to a builder, a model spec (JSON) or a model file to a built network;
  ``resolve_model`` reads any reference the command line accepts.
* :mod:`.ops` -- the layers the spaces and the baselines share (conv blocks, upsamplers, attention).
* :mod:`.imresize` -- MATLAB-exact bicubic ``imresize``: the degradation the data uses and the
  interpolation a network adds its residual to.
* :mod:`.baselines` -- bicubic, SRCNN, FSRCNN, VDSR, CARN(-M), ... registered on import of this package.

Layer: imports only :mod:`srnas_nni.errors`, :mod:`~srnas_nni.registry` and :mod:`~srnas_nni.runtime`
(and torch). The spaces layer adds the papers' published architectures and ``{"space": ...}`` specs to
the registry (:mod:`srnas_nni.spaces.published`).
"""

from .registry import (  # noqa: F401
    MODEL_FILE_FORMAT, ModelEntry, ResolvedModel, build_from_spec, build_model, get_entry, list_models, load_spec,
    register_model, register_spec_resolver, resolve_model, save_model_file,
)
from . import baselines  # noqa: E402,F401  (registers the baseline networks)

__all__ = ["MODEL_FILE_FORMAT", "ModelEntry", "ResolvedModel", "build_from_spec", "build_model", "get_entry",
           "list_models", "load_spec", "register_model", "register_spec_resolver", "resolve_model",
           "save_model_file"]
