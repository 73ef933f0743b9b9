"""``dlsr``: DLSR's differentiable search (Huang et al., arXiv 2105.03939; PAPERS.md 4.3).

Softmax DARTS over the shared cell ops and the network connections, first order:

* arch loss = ``L(train batch) + L(val batch) + penalty`` (``arch_loss_on_train=True``: the released
  ``RFDN6_para_loss.py`` uses the training batch too), then a weight step on the training batch;
* loss ``L1 + 0.2 * HFEN`` (``loss="l1+hfen"``, :mod:`srnas_nni.evaluation.losses`) for both steps;
* a *differentiable* expected-parameter penalty (``penalty_metric="params"``): the released code
  computes its parameter term from ``alphas.data`` (detached, so it has no effect); here it is the
  base's :class:`~srnas_nni.strategies.differentiable.ExpectedCostPenalty`, which on DLSR's space
  (additive op costs) is the exact expected parameter count ``sum_i sum_o softmax(alpha_i)_o P_o``
  plus the network level, divided by the mean of random architectures. Weight ``1e-2`` (ours: the
  paper's term was inert, so it gives no value; 1e-2 breaks near-ties towards smaller ops without
  outweighing an L1 of a few 1e-2);
* arch updates after a warm-up (the paper: epoch 20 of 1000; ``warmup_steps`` in steps);
* arch Adam lr 3e-4, betas (0.5, 0.999), weight decay 1e-8 (the paper's);
* derivation: argmax op per label, top-``n_chosen`` (2 in DLSR's space) inputs per connection.

Works on every space whose labels are categorical (the base's check).
"""

from __future__ import annotations

from typing import Any, Sequence

from . import register_strategy
from .differentiable import BASE_OPTIONS, DifferentiableSearch

__all__ = ["DLSRSearch"]


@register_strategy("dlsr", options=BASE_OPTIONS)
class DLSRSearch(DifferentiableSearch):
    """DLSR's search: :class:`DifferentiableSearch` with the paper's defaults (module docstring)."""

    def __init__(self, *, arch_learning_rate: float = 3e-4, arch_betas: Sequence[float] = (0.5, 0.999),
                 arch_weight_decay: float = 1e-8, mode: str = "bilevel", arch_loss_on_train: bool = True,
                 loss: str | None = "l1+hfen", penalty_metric: str = "params", penalty_weight: float = 1e-2,
                 **kwargs: Any):
        super().__init__(arch_learning_rate=arch_learning_rate, arch_betas=arch_betas,
                         arch_weight_decay=arch_weight_decay, mode=mode, arch_loss_on_train=arch_loss_on_train,
                         loss=loss, penalty_metric=penalty_metric, penalty_weight=penalty_weight, **kwargs)
