"""``hinas``: HiNAS's memory-efficient hierarchical search (Zhang et al., arXiv 2012.13212; PAPERS.md 3.3).

First-order softmax DARTS over the inner (cell) and outer (width) spaces:

* **layer-wise architecture sharing and cell sharing** come from the space: HiNAS's supernet
  (:class:`~srnas_nni.spaces.hinas.WidthTrellisDifferentiable`) sums the beta-weighted router
  outputs *before* each (layer, width) cell, so each cell runs once, and every width copy of a
  layer's node uses one alpha per edge (:class:`~srnas_nni.spaces.hinas.HiNASNodeDifferentiable`);
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

from typing import Any, Sequence

import torch
from torch.utils.checkpoint import checkpoint

from . import register_strategy
from .differentiable import BASE_OPTIONS, DifferentiableSearch

from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule  # noqa: E402

__all__ = ["HiNASSearch", "checkpoint_leaf_mixtures"]


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


@register_strategy("hinas", options=BASE_OPTIONS + ("checkpoint_mixtures",))
class HiNASSearch(DifferentiableSearch):
    """HiNAS's search (module docstring). Extra arg ``checkpoint_mixtures`` (True)."""

    def __init__(self, *, arch_learning_rate: float = 1e-3, arch_betas: Sequence[float] = (0.9, 0.999),
                 arch_weight_decay: float = 1e-3, mode: str = "bilevel", checkpoint_mixtures: bool = True,
                 **kwargs: Any):
        super().__init__(arch_learning_rate=arch_learning_rate, arch_betas=arch_betas,
                         arch_weight_decay=arch_weight_decay, mode=mode, **kwargs)
        self.checkpoint_mixtures = bool(checkpoint_mixtures)

    def mutate_model(self, model):
        model = super().mutate_model(model)
        if self.checkpoint_mixtures:
            checkpoint_leaf_mixtures(model)
        return model
