"""The strategy ``hierarchical_rl``: HNAS's and DeCoNAS's hierarchical RL controller, in two modes.

An LSTM policy per level of the space's decisions samples architectures; REINFORCE with an EMA
baseline trains it on a reward of the PSNR and the sample's own cost. :func:`hierarchical_rl` (the
registered builder) builds :class:`HierarchicalRLOptions` once from its keyword arguments, then one of:

* **multi-trial** (default): :class:`HierarchicalRL`, an NNI ``Strategy`` that trains every sampled
  architecture as a trial (:mod:`.multi_trial`);
* **parameter sharing** (``parameter_sharing: true``): :class:`HierarchicalRLOneShot`, a one-shot
  strategy that trains one supernet on the sampled paths (:mod:`.one_shot`).

Modules, bottom up: :mod:`.options` (every option, and the papers' settings ``preset:`` selects),
:mod:`.controller` (the policy and its sampling), :mod:`.rewards` (HNAS's and DeCoNAS's rewards),
:mod:`.reinforce` (the update), :mod:`.search_space` (what both modes need of a space), then the two
modes.
"""

from __future__ import annotations

from typing import Any

from .. import register_strategy
from .controller import ControllerConfig, HierarchicalController, Rollout, build_controller, controller_levels_of
from .multi_trial import HierarchicalRL
from .one_shot import HierarchicalRLLightningModule, HierarchicalRLOneShot
from .options import PAPER_SETTINGS, HierarchicalRLOptions
from .reinforce import ReinforceLearner
from .rewards import DeCoNASComplexityReward, HNASJointReward, make_reward
from .search_space import check_space

__all__ = ["PAPER_SETTINGS", "HierarchicalRLOptions", "ControllerConfig", "HierarchicalController", "Rollout",
           "build_controller", "controller_levels_of", "HNASJointReward", "DeCoNASComplexityReward", "make_reward",
           "ReinforceLearner", "HierarchicalRL", "HierarchicalRLOneShot", "HierarchicalRLLightningModule",
           "hierarchical_rl"]


@register_strategy("hierarchical_rl", options=HierarchicalRLOptions)
def hierarchical_rl(**options: Any) -> HierarchicalRL | HierarchicalRLOneShot:
    """Build the hierarchical RL strategy: multi-trial, or one-shot with ``parameter_sharing``.

    ``options`` are the fields of :class:`HierarchicalRLOptions`; ``preset`` (``hnas`` | ``deconas``)
    fills the controller, optimiser, REINFORCE and reward options that are not given.
    """
    built = HierarchicalRLOptions(**options)
    return HierarchicalRLOneShot(built) if built.parameter_sharing else HierarchicalRL(built)


hierarchical_rl.check_space = check_space  # type: ignore[attr-defined]
