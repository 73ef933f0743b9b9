"""The papers' final architectures as data: one JSON file per preset in this folder.

A preset file holds::

    {"space": "dlsr", "space_kwargs": {...}, "scales": [2, 4], "sample": {label: value, ...},
     "published": {"2": {"params": ..., "multadds": ...}}, "source": "...", "notes": "..."}

``published`` keeps the paper's figures (per scale, any of ``params``/``multadds``) so tests and
benchmarks compare the rebuilt model with them; ``notes`` says what the paper does not state and
what was chosen instead. Every preset is also a registered model (``srnas cost --model
deconasnet --scale 2``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from torch import nn

from ...errors import ModelSpecError
from ...models import register_model

__all__ = ["Preset", "PRESET_DIR", "presets", "get_preset", "build_preset"]

PRESET_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Preset:
    name: str
    space: str
    sample: dict[str, Any]
    scales: tuple[int, ...]
    space_kwargs: dict[str, Any] = field(default_factory=dict)
    published: dict[int, dict[str, float]] = field(default_factory=dict)
    source: str = ""
    notes: str = ""

    def spec(self, scale: int) -> dict[str, Any]:
        """The model spec that rebuilds this preset (what exports and model files store)."""
        return {"space": self.space, "space_kwargs": dict(self.space_kwargs), "sample": dict(self.sample),
                "scale": int(scale)}


def _read(path: Path) -> Preset:
    try:
        data = json.loads(path.read_text())
        return Preset(
            name=path.stem,
            space=data["space"],
            sample=dict(data["sample"]),
            scales=tuple(int(s) for s in data["scales"]),
            space_kwargs=dict(data.get("space_kwargs", {})),
            published={int(k): dict(v) for k, v in data.get("published", {}).items()},
            source=data.get("source", ""),
            notes=data.get("notes", ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelSpecError(f"{path}: malformed preset ({type(exc).__name__}: {exc})") from None


@lru_cache(maxsize=1)
def presets() -> dict[str, Preset]:
    return {p.stem: _read(p) for p in sorted(PRESET_DIR.glob("*.json"))}


def get_preset(name: str) -> Preset:
    table = presets()
    if name not in table:
        raise ModelSpecError(f"unknown preset {name!r}; available: {', '.join(sorted(table))}")
    return table[name]


def build_preset(name: str, scale: int) -> nn.Module:
    """The preset's frozen network at ``scale`` (a plain ``nn.Module``)."""
    from .. import get

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
