"""YAML presets by name or path: the one reader behind ``search_spaces/`` and ``strategies/``.

A preset is a YAML mapping in a folder of presets, referred to by its file stem (``dlsr-proxy``)
or by a path (``my/space.yaml``). Errors name the file, or list the presets when a name is unknown
(with the closest one suggested).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Iterable

import yaml

from .errors import SRNASError

__all__ = ["closest_hint", "preset_names", "read_preset"]


def closest_hint(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(str(name), list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def preset_names(folder: Path) -> list[str]:
    return sorted(p.stem for p in Path(folder).glob("*.yaml"))


def read_preset(reference: str | Path, folder: Path, *, kind: str, required_key: str) -> tuple[dict[str, Any], Path]:
    """The mapping of preset ``reference`` and the file it came from.

    ``kind`` ("space", "strategy") words the errors; ``required_key`` must be present.
    """
    path = Path(reference)
    if path.suffix not in (".yaml", ".yml"):
        path = Path(folder) / f"{reference}.yaml"
        if not path.exists():
            names = preset_names(folder)
            raise SRNASError(f"unknown {kind} preset {str(reference)!r}{closest_hint(str(reference), names)}; "
                             f"available: {', '.join(names)}")
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SRNASError(f"{path}: no such {kind} preset file") from None
    except yaml.YAMLError as exc:
        raise SRNASError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or required_key not in data:
        raise SRNASError(f"{path}: a {kind} preset is a mapping with a {required_key!r} key")
    return data, path
