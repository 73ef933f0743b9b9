"""NNI's multi-trial strategies, with what they need on srnas-nni's spaces fixed once here.

:mod:`srnas_nni.strategies.builtin` composes these with its Pareto archive; each class absorbs one
behaviour of NNI 3.0 (checked by ``tests/unit/nni_adapter/test_nni_behaviour.py``):

* :class:`PlainNNIState` -- NNI's ``Random``, ``GridSearch`` and ``RegularizedEvolution`` put numpy
  arrays (their ``RandomState``), frozensets (the dedup history, ``nni.nas.strategy.utils._to_hashable``)
  and NNI ``Individual`` objects (the population) in their checkpoint state;
* :class:`FreshSampleGridSearch` -- NNI's grid walks one sample dict, mutated in place from point to
  point (``GridSearch._grid_generator``);
* :class:`EncodedSpaceTPE` -- NNI's ``TPE`` hands its tuner ``mutable.as_legacy_dict()`` of every
  label (``TPE._run``), which ``CategoricalMultiple`` (an ``InputChoice`` label) does not have.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Iterable

import numpy as np

from .loader import nni

from nni.nas.strategy import GridSearch, TPE  # noqa: E402
from nni.nas.strategy.evolution import Individual  # noqa: E402

__all__ = ["PlainNNIState", "FreshSampleGridSearch", "EncodedSpaceTPE"]


class PlainNNIState:
    """Mix into an NNI multi-trial strategy (first in the bases): its checkpoint state as plain data.

    NNI's ``Random``, ``GridSearch`` and ``RegularizedEvolution`` put numpy arrays (their
    ``RandomState``), frozensets (the dedup history) and NNI ``Individual`` objects (the population) in
    their state; a checkpoint holding those pickles numpy's and NNI's internals. This converts them to
    lists, dicts and numbers on the way out and back on the way in (a checkpoint written before, with
    the NNI objects, still loads). Keys NNI does not write are passed through unchanged.
    """

    def state_dict(self) -> dict[str, Any]:
        state = dict(super().state_dict())  # type: ignore[misc]
        if "random_state" in state:
            state["random_state"] = _plain_random_state(state["random_state"])
        if "dedup_history" in state:
            state["dedup_history"] = [_plain_sample(entry) for entry in state["dedup_history"]]
        if "population" in state:
            state["population"] = [{"sample": _plain_sample(_sample_hashable(i.x)), "metric": i.y}
                                   if isinstance(i, Individual) else i for i in state["population"]]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        if isinstance(state.get("random_state"), dict):
            state["random_state"] = _numpy_random_state(state["random_state"])
        if "dedup_history" in state:
            state["dedup_history"] = [_sample_hashable(entry) for entry in state["dedup_history"]]
        if "population" in state:
            state["population"] = [Individual(dict(i["sample"]), i["metric"]) if isinstance(i, dict) else i
                                   for i in state["population"]]
        super().load_state_dict(state)  # type: ignore[misc]


def _plain_random_state(state: Any) -> Any:
    """numpy's legacy ``RandomState.get_state()`` tuple as a dict of builtins."""
    if not (isinstance(state, tuple) and len(state) == 5):
        return state
    algorithm, keys, position, has_gauss, cached_gaussian = state
    return {"algorithm": str(algorithm), "keys": np.asarray(keys, dtype=np.uint32).tolist(), "pos": int(position),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}


def _numpy_random_state(state: dict[str, Any]) -> tuple:
    return (state["algorithm"], np.asarray(state["keys"], dtype=np.uint32), int(state["pos"]),
            int(state["has_gauss"]), float(state["cached_gaussian"]))


def _sample_hashable(value: Any) -> Any:
    """What NNI's dedup history holds for a sample (``nni.nas.strategy.utils._to_hashable``, reproduced:
    dicts become frozensets of pairs, lists tuples)."""
    if isinstance(value, dict):
        return frozenset((k, _sample_hashable(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(_sample_hashable(v) for v in value)
    return value


def _plain_sample(value: Any) -> Any:
    """The inverse of :func:`_sample_hashable`: frozensets of pairs back to dicts, tuples to lists."""
    if isinstance(value, frozenset):  # str(): NNI's ``label`` keys (a str subclass) as plain str
        return {str(k): _plain_sample(v) for k, v in value}
    if isinstance(value, tuple):
        return [_plain_sample(v) for v in value]
    return value


class FreshSampleGridSearch(GridSearch):
    """NNI ``GridSearch``, each grid point frozen on its own copy of the sample.

    NNI's grid walks one sample dict, mutated in place from point to point, and a raw-format model
    keeps a reference to it (it is frozen only when it runs). Submitted at once that is harmless; but
    ``shuffle`` holds up to 100 points before submitting them, so every held model ran -- and was
    recorded as -- the last point of its batch: the same architecture, whatever the seed.
    """

    def _grid_generator(self, model_space):
        for model in super()._grid_generator(model_space):
            yield model_space.freeze(copy.deepcopy(model.sample))


class EncodedSpaceTPE(TPE):
    """NNI ``TPE`` whose tuner sees the model space through an encoding the subclass gives.

    NNI's ``TPE._run`` sends its tuner ``mutable.as_legacy_dict()`` of every label of the space, which
    ``CategoricalMultiple`` (an ``InputChoice`` label) does not have. This is NNI's loop with
    :meth:`space_encoding` on the way to and from the tuner: its ``legacy_search_space()`` is the
    tuner's space, ``decode(parameters)`` the sample a model is frozen with, ``encode(sample)`` what the
    tuner is told a result for. :meth:`completed_trials` (a resumed search's earlier results) are
    imported into the tuner first.
    """

    def space_encoding(self, space: Any) -> Any:
        """An object with ``legacy_search_space()``, ``encode(sample)`` and ``decode(parameters)`` for ``space``."""
        raise NotImplementedError

    def completed_trials(self) -> Iterable[tuple[dict[str, Any], Any]]:
        """``(sample, metrics)`` of the trials a resumed search completed before (none by default)."""
        return ()

    def _run(self) -> None:
        self._encoding = self.space_encoding(self.model_space)
        with self._thread_lock:
            self.tuner.update_search_space(self._encoding.legacy_search_space())
            history = [{"parameter": self._encoding.encode(sample), "value": metrics}
                       for sample, metrics in self.completed_trials()]
            if history:
                self.tuner.import_data(history)
        while self.engine.budget_available():
            if self.engine.idle_worker_available():
                with self._thread_lock:
                    try:
                        parameters = self.tuner.generate_parameters(self._model_count)
                    except nni.NoMoreTrialError:
                        break
                    model = self.model_space.freeze(self._encoding.decode(parameters))
                    self._model_to_id[model] = self._model_count
                    self._model_count += 1
                self.engine.submit_models(model)
            time.sleep(0.05)

    def on_metric(self, event) -> None:
        with self._thread_lock:
            model_id = self._model_to_id[event.model]
            if event.model.sample is not None:
                self.tuner.receive_trial_result(model_id, self._encoding.encode(event.model.sample), event.metric)
