"""NNI 3.0's own strategies by name, with what they need to work on SR spaces done once here.

Multi-trial (each keeps a :class:`~srnas_nni.strategies.pareto.ParetoArchive`, so
``list_models()`` returns the Pareto set of PSNR / params / Mult-Adds, best PSNR first):

``random``            NNI ``Random``
``evolution``         NNI ``RegularizedEvolution``
``grid``              NNI ``GridSearch``
``tpe``               NNI ``TPE``; NNI's HPO-tuner bridge sends ``InputChoice`` labels in a form
                      its tuners cannot read (``CategoricalMultiple`` has no legacy form), so each
                      such label goes to the tuner as one choice over its valid subsets, encoded
                      ``"i,j"``, and comes back as the list the space expects.

One-shot (need the Lightning evaluator of :mod:`srnas_nni.evaluation.lightning`):

``darts``, ``gumbel_darts``, ``proxyless``, ``random_one_shot``: NNI ``DARTS``, ``GumbelDARTS``,
``Proxyless``, ``RandomOneShot``.
"""

from __future__ import annotations

import itertools
from typing import Any

from ..nni_compat import nni  # noqa: F401  (NNI imported under our warning filter)
from . import register_strategy
from .pareto import ParetoArchiveMixin

from nni.mutable import CategoricalMultiple  # noqa: E402
from nni.nas import strategy as nni_strategies  # noqa: E402

__all__ = ["ParetoRandom", "ParetoEvolution", "ParetoGridSearch", "ParetoTPE"]


class ParetoRandom(ParetoArchiveMixin, nni_strategies.Random):
    """NNI ``Random`` with a Pareto archive."""


class ParetoEvolution(ParetoArchiveMixin, nni_strategies.RegularizedEvolution):
    """NNI ``RegularizedEvolution`` (aging evolution on ``default``) with a Pareto archive."""


class ParetoGridSearch(ParetoArchiveMixin, nni_strategies.GridSearch):
    """NNI ``GridSearch`` with a Pareto archive."""


def _subset_key(indices) -> str:
    return ",".join(str(int(i)) for i in indices)


class ParetoTPE(ParetoArchiveMixin, nni_strategies.TPE):
    """NNI ``TPE`` that also handles ``InputChoice`` labels (see the module docstring)."""

    def _tuner_search_space(self) -> dict[str, Any]:
        space: dict[str, Any] = {}
        self._subset_labels: set[str] = set()
        for label, mutable in self.model_space.simplify().items():
            if isinstance(mutable, CategoricalMultiple):
                sizes = [mutable.n_chosen] if mutable.n_chosen is not None else range(len(mutable.values) + 1)
                subsets = [_subset_key(c) for k in sizes for c in itertools.combinations(mutable.values, k)]
                space[label] = {"_type": "choice", "_value": subsets}
                self._subset_labels.add(label)
            else:
                space[label] = mutable.as_legacy_dict()
        return space

    def _to_sample(self, parameters: dict[str, Any]) -> dict[str, Any]:
        return {label: ([int(i) for i in value.split(",") if i != ""] if label in self._subset_labels else value)
                for label, value in parameters.items()}

    def _to_parameters(self, sample: dict[str, Any]) -> dict[str, Any]:
        return {label: (_subset_key(value) if label in self._subset_labels else value)
                for label, value in sample.items()}

    def _run(self) -> None:
        # NNI's loop, with the encoding above on the way to and from the tuner.
        import time

        with self._thread_lock:
            self.tuner.update_search_space(self._tuner_search_space())
        while self.engine.budget_available():
            if self.engine.idle_worker_available():
                with self._thread_lock:
                    try:
                        parameters = self.tuner.generate_parameters(self._model_count)
                    except nni.NoMoreTrialError:
                        break
                    model = self.model_space.freeze(self._to_sample(parameters))
                    self._model_to_id[model] = self._model_count
                    self._model_count += 1
                self.engine.submit_models(model)
            time.sleep(0.05)

    def on_metric(self, event) -> None:
        with self._thread_lock:
            model_id = self._model_to_id[event.model]
            if event.model.sample is not None:
                self.tuner.receive_trial_result(model_id, self._to_parameters(event.model.sample), event.metric)


_ONE_SHOT = ("arc_learning_rate", "gradient_clip_val", "log_prob_every_n_step", "warmup_epochs", "penalty")

register_strategy("random", options=("dedup", "seed"))(ParetoRandom)
register_strategy("evolution", options=("population_size", "sample_size", "mutation_prob", "crossover", "dedup",
                                        "seed"))(ParetoEvolution)
register_strategy("grid", options=("shuffle", "seed", "dedup"))(ParetoGridSearch)
register_strategy("tpe", options=("optimize_mode", "seed", "tpe_args"))(ParetoTPE)
register_strategy("darts", options=_ONE_SHOT)(nni_strategies.DARTS)
register_strategy("gumbel_darts", options=_ONE_SHOT + ("temperature",))(nni_strategies.GumbelDARTS)
register_strategy("proxyless", options=_ONE_SHOT)(nni_strategies.Proxyless)
register_strategy("random_one_shot", options=("filter",))(nni_strategies.RandomOneShot)
