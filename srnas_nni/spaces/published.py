"""The papers' final architectures as networks: each published preset built from its space.

The data (space, arguments, frozen sample, the paper's figures) lives in
``srnas_nni/presets/published/`` and is read by :mod:`srnas_nni.presets`; this module builds it. Every
preset is also a registered model (``srnas cost --model deconasnet --scale 2``), and a space spec
(``{"space": ..., "sample": ...}``, what model files and exports store) is buildable from here on.

The layers above resolve model references through this module (``resolve_model`` and friends are
re-exported), so that the papers' architectures and space specs are registered before the lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ModelSpecError
from ..models.registry import (  # noqa: F401  (re-exported: resolving a reference needs the registrations here)
    MODEL_FILE_FORMAT, build_from_spec, get_entry, register_model, resolve_model, save_model_file,
)
from ..presets import PUBLISHED_PRESETS as PRESET_DIR, Preset, get_published as get_preset, \
    published_presets as presets

if TYPE_CHECKING:
    from torch import nn

__all__ = ["Preset", "PRESET_DIR", "presets", "get_preset", "build_preset"]


def build_preset(name: str, scale: int) -> nn.Module:
    """The preset's frozen network at ``scale`` (a plain ``nn.Module``)."""
    from . import get

    preset = get_preset(name)
    if scale not in preset.scales:
        raise ModelSpecError(f"preset {name!r} is defined for scales {list(preset.scales)}, not x{scale}")
    return get(preset.space, scale=scale, **preset.space_kwargs).freeze(preset.sample)


def _register_all() -> None:
    for preset in presets().values():
        def builder(scale: int, _name: str = preset.name) -> nn.Module:
            return build_preset(_name, scale)

        first_line = (preset.notes or preset.source).split(". ")[0]
        register_model(preset.name, scales=preset.scales, description=f"{preset.space} preset: {first_line}")(builder)


_register_all()


def _register_space_specs() -> None:
    # Importing this module is how the models registry loads its built-in networks; from then on a
    # space spec ({"space": ..., "sample": ...}, what model files and exports store) is buildable too.
    from ..models.registry import register_spec_resolver
    from . import _build_from_space_spec

    register_spec_resolver("space", _build_from_space_spec)


_register_space_specs()
