"""``sparsestmax_darts``: Trilevel NAS's search (Wu et al., arXiv 2101.06658; PAPERS.md 2.3).

DARTS whose relaxation is :func:`~srnas_nni.strategies.differentiable.sparsestmax.sparsestmax` for every label
(cell ops, kernel widths through NNI's mixed operations, the network-level path), with the radius
annealed from ``radius_start`` (0) to ``radius_end`` (1) over ``search_steps`` by
:func:`~srnas_nni.strategies.differentiable.sparsestmax.radius_schedule` (``"linear"``: the paper's
``r = (epoch * N + step) / (E * N)``; ``"cosine"``, ``"step"``). At radius 1 every weight is
exactly one-hot, so the supernet *is* the derived network.

Single phase (default): after ``search_steps`` the radius is held at 1 and architecture updates
stop; the remaining ``finetune_steps`` train the derived network in place, with the weights it
inherited from the supernet (zero-weight candidates are not computed, so only the derived
network runs). ``list_models()`` freezes the supernet at the exported architecture keeping its
weights (the spaces' ``freeze`` copies the trained weights), i.e. it returns the fine-tuned model.
``mode="bilevel"`` gives the paper code's alternating arch/weight steps instead of one combined
step. The supernet at radius 1 is exactly the derived network when every label picks one value
(ops, widths, the path, single-input choices); a choose-k-of-n label (DLSR's top-2 connections,
HiNAS's edges) is one-hot in the supernet but top-k in the export, so there the fine-tuned weights
are those of a close relative of the exported network.

Sorting (our reading of the paper's "sorted" network level, PAPERS.md 2.3): the code adds
``w_order * sum_paths sum_k (gamma[idx_{k+1}] - gamma[idx_k])`` over the DFS paths, which biases
the path logits towards shorter paths. We keep the logits of each label in ``order_labels`` (by
default the Trilevel network path, ``network/path``) *ordered by prefix*: for every value ``q``
that extends a shorter value ``p`` (``q.startswith(p)``) the hinge ``relu(gamma[q] - gamma[p])``
is added with weight ``order_weight``. Unlike the code's linear term it does nothing once the
order holds, so mass moves to a longer path only when the task loss pays for it. Labels not in
the space are ignored, so the strategy searches every space (the order term then vanishes).

Defaults: arch Adam lr 3e-4, betas (0.5, 0.999) (AGD/Trilevel architect), wd 1e-3 (NNI);
``order_weight`` 1e-2 (the ``order_1e-2`` experiment names); the expected-Mult-Adds penalty
(Trilevel's FLOPs term) with weight 1e-2 on the reference-normalised cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from .. import register_strategy
from .base import DifferentiableOptions, DifferentiableSearch, DifferentiableSearchModule, check_number
from .sparsestmax import SCHEDULE_KINDS, SparsestMax, radius_schedule
from ...errors import SRNASError

__all__ = ["SparsestMaxDARTS", "SparsestMaxSearchModule", "SparsestmaxDartsOptions"]


@dataclass
class SparsestmaxDartsOptions(DifferentiableOptions):
    """Options of ``sparsestmax_darts``: the base's (by default single-level, with the cost penalty at 1e-2) and

    Attributes:
        radius_start, radius_end: radius at the first and the last search step (0 and 1).
        radius_schedule: ``"linear"`` (paper), ``"cosine"`` or ``"step"`` (``schedule_stages`` plateaus).
        search_steps: search length in training steps (default: the trainer's steps minus fine-tuning).
        finetune_steps: steps at radius 1 without arch updates after the search (0).
        order_weight, order_labels: the sorting term (``1e-2``, ``["network/path"]``).
    """

    mode: str = "single_level"
    penalty_weight: float = 1e-2
    radius_start: float = 0.0
    radius_end: float = 1.0
    radius_schedule: str = "linear"
    schedule_stages: int = 4
    search_steps: int | None = None
    finetune_steps: int = 0
    order_weight: float = 1e-2
    order_labels: Sequence[str] = ("network/path",)

    def __post_init__(self) -> None:
        for name in ("radius_start", "radius_end"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise SRNASError(f"{name}={value!r}: must be a number in [0, 1]")
        if self.radius_end < self.radius_start:
            raise SRNASError(f"radius_end={self.radius_end!r}: must not be below radius_start={self.radius_start!r}")
        if self.radius_schedule not in SCHEDULE_KINDS:
            raise SRNASError(f"radius_schedule={self.radius_schedule!r}: choose one of {', '.join(SCHEDULE_KINDS)}")
        check_number("schedule_stages", self.schedule_stages, low=1, integer=True)
        if self.search_steps is not None:
            check_number("search_steps", self.search_steps, low=1, integer=True)
        check_number("finetune_steps", self.finetune_steps, integer=True)
        check_number("order_weight", self.order_weight)
        if isinstance(self.order_labels, str) or not all(isinstance(label, str) for label in self.order_labels):
            raise SRNASError(f"order_labels={self.order_labels!r}: give a list of label names")
        super().__post_init__()
        self.radius_start = float(self.radius_start)
        self.radius_end = float(self.radius_end)
        self.schedule_stages = int(self.schedule_stages)
        self.search_steps = None if self.search_steps is None else int(self.search_steps)
        self.finetune_steps = int(self.finetune_steps)
        self.order_weight = float(self.order_weight)
        self.order_labels = tuple(self.order_labels)


class SparsestMaxSearchModule(DifferentiableSearchModule):
    """Radius schedule, search/fine-tune phases and the order loss (module docstring).

    ``order_pairs``: per label of ``order_labels`` in the space, the value index pairs ``(shorter,
    longer)`` the order term compares (:func:`prefix_order_pairs`).
    """

    options: SparsestmaxDartsOptions

    def __init__(self, training_module, options: SparsestmaxDartsOptions, *,
                 order_pairs: dict[str, list[tuple[int, int]]], **kwargs: Any):
        super().__init__(training_module, options, **kwargs)
        self.order_pairs = order_pairs

    def total_search_steps(self) -> int:
        """``search_steps``, or the trainer's training batches minus ``finetune_steps``."""
        if self.options.search_steps is not None:
            return max(1, self.options.search_steps)
        trainer = self.trainer
        batches = trainer.num_training_batches
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
        total = batches * epochs if batches != float("inf") else None
        if trainer.max_steps and trainer.max_steps > 0:
            total = trainer.max_steps if total is None else min(total, trainer.max_steps)
        if total is None:
            raise SRNASError("sparsestmax_darts: the training length is unknown; set search_steps")
        return max(1, int(total) - self.options.finetune_steps)

    @property
    def radius(self) -> float:
        return self.relaxation.radius

    def before_step(self, step: int) -> None:
        total = self.total_search_steps()
        if step >= total:
            self.relaxation.radius = 1.0  # fine-tune: exactly the derived network
        else:
            self.relaxation.radius = radius_schedule(step, total, start=self.options.radius_start,
                                                     end=self.options.radius_end, kind=self.options.radius_schedule,
                                                     num_stages=self.options.schedule_stages)
        self.log("radius", self.relaxation.radius, batch_size=1)

    def architecture_updates_enabled(self, step: int) -> bool:
        return self.options.warmup_steps <= step < self.total_search_steps()

    def architecture_regularizer(self) -> torch.Tensor | None:
        if self.options.order_weight == 0 or not self.order_pairs:
            return None
        used = {id(p) for p in self.arch_parameters()}
        total = None
        for label, pairs in self.order_pairs.items():
            alpha = self.label_alphas.get(label)
            if alpha is None or id(alpha) not in used or not pairs:
                continue
            shorter = torch.tensor([p for p, _ in pairs], device=alpha.device)
            longer = torch.tensor([q for _, q in pairs], device=alpha.device)
            term = torch.relu(alpha[longer] - alpha[shorter]).sum()
            total = term if total is None else total + term
        return None if total is None else self.options.order_weight * total

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["sparsestmax_radius"] = self.relaxation.radius

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # The radius is recomputed from search_step at the next step; restoring it keeps exports
        # made before that step consistent.
        if "sparsestmax_radius" in checkpoint:
            self.relaxation.radius = checkpoint["sparsestmax_radius"]


def prefix_order_pairs(values: Sequence[Any]) -> list[tuple[int, int]]:
    """Index pairs ``(shorter, longer)`` of string values where the longer one extends the shorter."""
    pairs = []
    for i, p in enumerate(values):
        for j, q in enumerate(values):
            if isinstance(p, str) and isinstance(q, str) and len(q) > len(p) and q.startswith(p):
                pairs.append((i, j))
    return pairs


@register_strategy("sparsestmax_darts", options=SparsestmaxDartsOptions)
class SparsestMaxDARTS(DifferentiableSearch):
    """Trilevel's sparsestmax search (module docstring); options: :class:`SparsestmaxDartsOptions`."""

    options_class = SparsestmaxDartsOptions
    module_class = SparsestMaxSearchModule
    options: SparsestmaxDartsOptions

    def make_relaxation(self) -> nn.Module:
        return SparsestMax(radius=self.options.radius_start)

    def module_arguments(self) -> dict[str, Any]:
        pairs = {}
        for label in self.options.order_labels:
            mutable = self._space_labels.get(label)
            if mutable is not None:
                pairs[label] = prefix_order_pairs(list(mutable.values))
        return {"order_pairs": pairs}
