"""``hinas``: HiNAS's memory-efficient hierarchical search (Zhang et al., arXiv 2012.13212; PAPERS.md 3.3).

First-order softmax DARTS over the inner (cell) and outer (width) spaces:

* **layer-wise architecture sharing and cell sharing** come from the space: HiNAS's supernet
  (:class:`~srnas_nni.spaces.oneshot.hinas.WidthTrellisDifferentiable`) sums the beta-weighted router
  outputs *before* each (layer, width) cell, so each cell runs once, and every width copy of a
  layer's node uses one alpha per edge (:class:`~srnas_nni.spaces.oneshot.hinas.HiNASNodeDifferentiable`);
* **less memory per step than NNI's DARTS on the same space**: every leaf mixture module (a HiNAS
  node, a ``LayerChoice`` mixture, ...) runs under non-reentrant activation checkpointing
  (``checkpoint_mixtures=True``): its candidates' intermediate activations are not kept for the
  backward pass but recomputed there, so only the mixture's inputs and output stay alive. The
  arch step also skips the weights' gradients (base class). The price is one extra forward of the
  mixtures in each backward (measured in ``benchmarks/supernet_step.py``);
* **decoding**: Viterbi over the width trellis from level 0 (always a feasible path) and top-2
  incoming edges per node by their strongest non-``zero`` op, then that op (the space's modules'
  ``export``); argmax / top-k on other spaces;
* arch updates start after ``warmup_steps`` (the paper: ``ARCH_START_EPOCH`` 20 of 100 epochs, i.e.
  after 20 % of the search; the preset uses 200 of a 1000-step search);
* arch Adam lr 1e-3, weight decay 1e-3 (the paper's ``solver`` config); betas (0.9, 0.999) (PyTorch's
  default: the code builds a plain ``Adam``). The weight optimiser is the evaluator's (the paper:
  SGD 0.025 -> 0.001, momentum 0.9); the paper's loss ``L1 + 0.6 * (-log10 SSIM)`` has no named
  loss here, so ``loss`` stays the evaluator's unless given.

Spaces: every space whose labels are categorical (the base's check). The width trellis and the
top-2 cell derivation are HiNAS's (and whatever space uses its modules); elsewhere it is a
memory-lean first-order DARTS with NNI's mixtures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch.utils.checkpoint import checkpoint

from .. import register_strategy
from .base import DifferentiableOptions, DifferentiableSearch
from ...nni_adapter.oneshot import BaseSuperNetModule

__all__ = ["HiNASSearch", "HinasOptions", "checkpoint_leaf_mixtures"]


@dataclass
class HinasOptions(DifferentiableOptions):
    """Options of ``hinas``: the base's, with the paper's arch Adam (module docstring), and
    ``checkpoint_mixtures`` (True): run every leaf mixture under activation checkpointing."""

    arch_learning_rate: float = 1e-3
    arch_betas: Sequence[float] = (0.9, 0.999)
    checkpoint_mixtures: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.checkpoint_mixtures = bool(self.checkpoint_mixtures)


class _CheckpointedForward:
    """A module's bound ``forward``, run under activation checkpointing while autograd records."""

    def __init__(self, forward):
        self.forward = forward

    def __call__(self, *args: Any, **kwargs: Any):
        if torch.is_grad_enabled():
            # Callers may append to a list argument after the call (a list of earlier states): the
            # recomputation in backward must see it as it was.
            args = tuple(list(a) if isinstance(a, list) else a for a in args)
            return checkpoint(self.forward, *args, use_reentrant=False, **kwargs)
        return self.forward(*args, **kwargs)


def checkpoint_leaf_mixtures(supernet: torch.nn.Module) -> int:
    """Checkpoint every supernet module that holds no other supernet module; returns how many."""
    count = 0
    for module in supernet.modules():
        if not isinstance(module, BaseSuperNetModule) or isinstance(module.forward, _CheckpointedForward):
            continue
        if any(isinstance(child, BaseSuperNetModule) for child in module.modules() if child is not module):
            continue
        module.forward = _CheckpointedForward(module.forward)
        count += 1
    return count


@register_strategy("hinas", options=HinasOptions)
class HiNASSearch(DifferentiableSearch):
    """HiNAS's search (module docstring); options: :class:`HinasOptions`."""

    options_class = HinasOptions
    options: HinasOptions

    def mutate_model(self, model):
        model = super().mutate_model(model)
        if self.options.checkpoint_mixtures:
            checkpoint_leaf_mixtures(model)
        return model
