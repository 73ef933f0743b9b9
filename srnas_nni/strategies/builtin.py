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
``Proxyless``, ``RandomOneShot``.
"""

from __future__ import annotations

import time

from ..nni_compat import nni  # noqa: F401  (NNI imported under our warning filter)
from . import register_strategy
from .encoding import SpaceEncoding
from .pareto import ParetoArchiveMixin

from nni.nas import strategy as nni_strategies  # noqa: E402

__all__ = ["ParetoRandom", "ParetoEvolution", "ParetoGridSearch", "ParetoTPE"]


class ParetoRandom(ParetoArchiveMixin, nni_strategies.Random):
    """NNI ``Random`` with a Pareto archive."""


class ParetoEvolution(ParetoArchiveMixin, nni_strategies.RegularizedEvolution):
    """NNI ``RegularizedEvolution`` (aging evolution on ``default``) with a Pareto archive."""


class ParetoGridSearch(ParetoArchiveMixin, nni_strategies.GridSearch):
    """NNI ``GridSearch`` with a Pareto archive."""


class ParetoTPE(ParetoArchiveMixin, nni_strategies.TPE):
    """NNI ``TPE`` that also handles ``InputChoice`` labels (see the module docstring)."""

    def _run(self) -> None:
        # NNI's loop, with the space encoded on the way to and from the tuner.
        self._encoding = SpaceEncoding(self.model_space)
        with self._thread_lock:
            self.tuner.update_search_space(self._encoding.legacy_search_space())
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
