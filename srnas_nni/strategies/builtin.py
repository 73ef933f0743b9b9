"""NNI 3.0's own strategies by name, with what they need to work on SR spaces done once here.

Multi-trial (each keeps a :class:`~srnas_nni.strategies.pareto.ParetoArchive`, so
``list_models()`` returns the Pareto set of PSNR / params / Mult-Adds, best PSNR first; what NNI's
own classes need fixed -- plain checkpoint state, a fresh sample per grid point, the TPE tuner's
view of the space -- is in :mod:`srnas_nni.nni_adapter.multi_trial`):

``random``            NNI ``Random``
``evolution``         NNI ``RegularizedEvolution``
``grid``              NNI ``GridSearch``
``tpe``               NNI ``TPE``; NNI's HPO-tuner bridge sends ``InputChoice`` labels in a form
                      its tuners cannot read (``CategoricalMultiple`` has no legacy form), so the
                      space goes to the tuner through :class:`~srnas_nni.spaces.encoding.SpaceEncoding`.

One-shot (need the Lightning evaluator of :mod:`srnas_nni.evaluation.lightning`):

``darts``, ``gumbel_darts``, ``proxyless``, ``random_one_shot``: NNI ``DARTS``, ``GumbelDARTS``,
``Proxyless``, ``RandomOneShot``. Whether one of them can search a space is decided by trying: its
``check_space`` builds the supernet of a copy of the space and reports NNI's reason when a mutable
has no one-shot form for it (Proxyless, for one, handles neither custom network-level modules nor
concatenating input choices). Their order-unstable architecture parameters, which broke resuming
from a checkpoint, are fixed once in :mod:`srnas_nni.nni_adapter.loader`.
"""

from __future__ import annotations

import copy

from ..errors import SRNASError
from ..nni_adapter.multi_trial import EncodedSpaceTPE, FreshSampleGridSearch, PlainNNIState
from ..nni_adapter.strategy import nni_strategies
from ..spaces.encoding import SpaceEncoding
from . import register_strategy
from .pareto import ParetoArchiveMixin

__all__ = ["ParetoRandom", "ParetoEvolution", "ParetoGridSearch", "ParetoTPE", "OneShotSupportCheck", "SRDARTS",
           "SRGumbelDARTS", "SRProxyless", "SRRandomOneShot"]


class ParetoRandom(PlainNNIState, ParetoArchiveMixin, nni_strategies.Random):
    """NNI ``Random`` with a Pareto archive."""


class ParetoEvolution(PlainNNIState, ParetoArchiveMixin, nni_strategies.RegularizedEvolution):
    """NNI ``RegularizedEvolution`` (aging evolution on ``default``) with a Pareto archive."""


class ParetoGridSearch(PlainNNIState, ParetoArchiveMixin, FreshSampleGridSearch):
    """NNI ``GridSearch`` with a Pareto archive, each grid point frozen on its own copy of the sample."""


class ParetoTPE(ParetoArchiveMixin, EncodedSpaceTPE):
    """NNI ``TPE`` that also handles ``InputChoice`` labels (see the module docstring); a resumed search's
    tuner learns the completed trials again from the archive."""

    def space_encoding(self, space):
        return SpaceEncoding(space)

    def completed_trials(self):
        return [(e.sample, e.metrics) for e in self.archive.entries if e.sample and "default" in e.metrics]


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
