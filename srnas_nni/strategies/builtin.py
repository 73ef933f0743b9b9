"""NNI 3.0's own strategies by name, with what they need to work on SR spaces done once here.

Multi-trial (each keeps a :class:`~srnas_nni.strategies.pareto.ParetoArchive`, so
``list_models()`` returns the Pareto set of PSNR / params / Mult-Adds, best PSNR first):

``random``            NNI ``Random``
``evolution``         NNI ``RegularizedEvolution``
``grid``              NNI ``GridSearch``
``tpe``               NNI ``TPE``; NNI's HPO-tuner bridge sends ``InputChoice`` labels in a form
                      its tuners cannot read (``CategoricalMultiple`` has no legacy form), so the
                      space goes to the tuner through :class:`~.encoding.SpaceEncoding`.

One-shot (need the Lightning evaluator of :mod:`srnas_nni.evaluation.lightning`):

``darts``, ``gumbel_darts``, ``proxyless``, ``random_one_shot``: NNI ``DARTS``, ``GumbelDARTS``,
``Proxyless``, ``RandomOneShot``. Whether one of them can search a space is decided by trying: its
``check_space`` builds the supernet of a copy of the space and reports NNI's reason when a mutable
has no one-shot form for it (Proxyless, for one, handles neither custom network-level modules nor
concatenating input choices). Their order-unstable architecture parameters, which broke resuming
from a checkpoint, are fixed once in :mod:`srnas_nni.nni_compat`.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np

from ..errors import SRNASError
from ..nni_compat import nni  # noqa: F401  (NNI imported under our warning filter)
from . import register_strategy
from .encoding import SpaceEncoding
from .pareto import ParetoArchiveMixin

from nni.nas import strategy as nni_strategies  # noqa: E402
from nni.nas.strategy.evolution import Individual  # noqa: E402

__all__ = ["ParetoRandom", "ParetoEvolution", "ParetoGridSearch", "ParetoTPE", "OneShotSupportCheck", "SRDARTS",
           "SRGumbelDARTS", "SRProxyless", "SRRandomOneShot"]


class PlainNNIState:
    """Mix into an NNI multi-trial strategy (first in the bases): its checkpoint state as plain data.

    NNI's ``Random``, ``GridSearch`` and ``RegularizedEvolution`` put numpy arrays (their
    ``RandomState``), frozensets (the dedup history) and NNI ``Individual`` objects (the population) in
    their state; a checkpoint holding those pickles numpy's and NNI's internals. This converts them to
    lists, dicts and numbers on the way out and back on the way in (a checkpoint written before, with
    the NNI objects, still loads). Keys NNI does not write are passed through unchanged.
    """

    def state_dict(self) -> dict[str, Any]:
        state = dict(super().state_dict())
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
        super().load_state_dict(state)


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


class ParetoRandom(PlainNNIState, ParetoArchiveMixin, nni_strategies.Random):
    """NNI ``Random`` with a Pareto archive."""


class ParetoEvolution(PlainNNIState, ParetoArchiveMixin, nni_strategies.RegularizedEvolution):
    """NNI ``RegularizedEvolution`` (aging evolution on ``default``) with a Pareto archive."""


class ParetoGridSearch(PlainNNIState, ParetoArchiveMixin, nni_strategies.GridSearch):
    """NNI ``GridSearch`` with a Pareto archive, each grid point frozen on its own copy of the sample.

    NNI's grid walks one sample dict, mutated in place from point to point, and a raw-format model
    keeps a reference to it (it is frozen only when it runs). Submitted at once that is harmless; but
    ``shuffle`` holds up to 100 points before submitting them, so every held model ran -- and was
    recorded as -- the last point of its batch: the same architecture, whatever the seed.
    """

    def _grid_generator(self, model_space):
        for model in super()._grid_generator(model_space):
            yield model_space.freeze(copy.deepcopy(model.sample))


class ParetoTPE(ParetoArchiveMixin, nni_strategies.TPE):
    """NNI ``TPE`` that also handles ``InputChoice`` labels (see the module docstring)."""

    def _run(self) -> None:
        # NNI's loop, with the space encoded on the way to and from the tuner.
        self._encoding = SpaceEncoding(self.model_space)
        with self._thread_lock:
            self.tuner.update_search_space(self._encoding.legacy_search_space())
            # A resumed search: the tuner learns the completed trials again from the archive.
            history = [{"parameter": self._encoding.encode(e.sample), "value": e.metrics}
                       for e in self.archive.entries if e.sample and "default" in e.metrics]
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


class OneShotSupportCheck:
    """Mix into an NNI one-shot strategy: ``check_space`` tries the supernet conversion on a copy."""

    @classmethod
    def check_space(cls, space) -> None:
        try:
            cls().mutate_model(copy.deepcopy(space))
        except (TypeError, ValueError, KeyError, NotImplementedError) as exc:
            raise SRNASError(str(exc).splitlines()[0]) from None


class SRDARTS(OneShotSupportCheck, nni_strategies.DARTS):
    """NNI ``DARTS``."""


class SRGumbelDARTS(OneShotSupportCheck, nni_strategies.GumbelDARTS):
    """NNI ``GumbelDARTS``."""


class SRProxyless(OneShotSupportCheck, nni_strategies.Proxyless):
    """NNI ``Proxyless``."""


class SRRandomOneShot(OneShotSupportCheck, nni_strategies.RandomOneShot):
    """NNI ``RandomOneShot`` (uniform path sampling, SPOS-style)."""


_ONE_SHOT = ("arc_learning_rate", "gradient_clip_val", "log_prob_every_n_step", "warmup_epochs", "penalty")

register_strategy("random", options=("dedup", "seed"))(ParetoRandom)
register_strategy("evolution", options=("population_size", "sample_size", "mutation_prob", "crossover", "dedup",
                                        "seed"))(ParetoEvolution)
register_strategy("grid", options=("shuffle", "seed", "dedup"))(ParetoGridSearch)
register_strategy("tpe", options=("optimize_mode", "seed", "tpe_args"))(ParetoTPE)
register_strategy("darts", options=_ONE_SHOT)(SRDARTS)
register_strategy("gumbel_darts", options=_ONE_SHOT + ("temperature",))(SRGumbelDARTS)
register_strategy("proxyless", options=_ONE_SHOT)(SRProxyless)
register_strategy("random_one_shot", options=("filter",))(SRRandomOneShot)
