"""A search space as flat categorical choices, for black-box samplers (Optuna, NNI's HPO tuners).

Every label becomes one categorical over values such samplers accept (``None``/``bool``/``int``/
``float``/``str``). An ``InputChoice`` label (a ``CategoricalMultiple``) becomes one choice over its
valid subsets, written ``"i,j"``; other non-primitive values are written by their index. ``decode``
turns a sampler's answer back into the sample the space freezes, ``encode`` does the reverse (a
subset is a set there: ``[1, 0]``, which a strategy may produce by ranking, encodes as ``"0,1"``).
"""

from __future__ import annotations

import itertools
from typing import Any

from nni.mutable import CategoricalMultiple  # light: neither torch nor NNI's NAS packages

__all__ = ["SpaceEncoding"]

_PRIMITIVE = (type(None), bool, int, float, str)


def _subset_key(indices) -> str:
    return ",".join(str(int(i)) for i in indices)


class SpaceEncoding:
    """``choices[label]`` lists the encoded values of each label of ``model_space.simplify()``."""

    def __init__(self, model_space) -> None:
        self.choices: dict[str, list[Any]] = {}
        self._decoded: dict[str, dict[Any, Any]] = {}
        for label, mutable in model_space.simplify().items():
            if isinstance(mutable, CategoricalMultiple):
                sizes = [mutable.n_chosen] if mutable.n_chosen is not None else range(len(mutable.values) + 1)
                subsets = [list(c) for k in sizes for c in itertools.combinations(mutable.values, k)]
                self._set(label, [_subset_key(s) for s in subsets], subsets)
            else:
                values = list(mutable.values)
                if all(isinstance(v, _PRIMITIVE) for v in values):
                    self._set(label, values, values)
                else:
                    self._set(label, [str(i) for i in range(len(values))], values)

    def _set(self, label: str, encoded: list[Any], decoded: list[Any]) -> None:
        self.choices[label] = encoded
        self._decoded[label] = dict(zip(encoded, decoded))

    def decode(self, parameters: dict[str, Any]) -> dict[str, Any]:
        return {label: self._decoded[label][value] for label, value in parameters.items()}

    def encode(self, sample: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for label, value in sample.items():
            if label not in self._decoded:
                raise ValueError(f"{label}: not a label of this space")
            for encoded, decoded in self._decoded[label].items():
                if decoded == value or (isinstance(value, (list, tuple)) and isinstance(decoded, list)
                                        and sorted(decoded, key=repr) == sorted(value, key=repr)):
                    out[label] = encoded
                    break
            else:
                raise ValueError(f"{label}: {value!r} is not a value of this space")
        return out

    def legacy_search_space(self) -> dict[str, dict[str, Any]]:
        """NNI's HPO search-space format (``{"_type": "choice", "_value": [...]}`` per label)."""
        return {label: {"_type": "choice", "_value": values} for label, values in self.choices.items()}
