"""``dlsr``: DLSR's differentiable search (Huang et al., arXiv 2105.03939; PAPERS.md 4.3).

Softmax DARTS over the shared cell ops and the network connections, first order:

* arch loss = ``L(train batch) + L(val batch) + penalty`` (``arch_loss_on_train=True``: the released
  ``RFDN6_para_loss.py`` uses the training batch too), then a weight step on the training batch;
* loss ``L1 + 0.2 * HFEN`` (``loss="l1+hfen"``, :mod:`srnas_nni.evaluation.losses`) for both steps;
* a *differentiable* expected-parameter penalty (``penalty_metric="params"``): the released code
  computes its parameter term from ``alphas.data`` (detached, so it has no effect); here it is the
  base's :class:`~srnas_nni.strategies.differentiable.base.ExpectedCostPenalty`, which on DLSR's space
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

from dataclasses import dataclass

from .. import register_strategy
from .base import DifferentiableOptions, DifferentiableSearch

__all__ = ["DLSRSearch", "DlsrOptions"]


@dataclass
class DlsrOptions(DifferentiableOptions):
    """Options of ``dlsr``: the base's, with the paper's defaults (module docstring)."""

    arch_weight_decay: float = 1e-8
    arch_loss_on_train: bool = True
    penalty_weight: float = 1e-2
    penalty_metric: str = "params"
    loss: str | None = "l1+hfen"


@register_strategy("dlsr", options=DlsrOptions)
class DLSRSearch(DifferentiableSearch):
    """DLSR's search: :class:`DifferentiableSearch` with the paper's defaults (module docstring)."""

    options_class = DlsrOptions
