"""Shared base of the differentiable strategies (``sparsestmax_darts``, ``dlsr``, ``hinas``).

:class:`DifferentiableSearch` is an NNI ``DARTS`` strategy and :class:`DifferentiableSearchModule`
its ``DartsLightningModule``; the three strategies subclass both. What the base adds to NNI's DARTS:

* **Expected-cost penalty that reaches the architecture parameters** (:class:`ExpectedCostPenalty`).
  NNI's ``penalty=`` reads ``export_probs()``, which returns floats, so it has no gradient. Here,
  around the current derived (argmax) architecture ``a``::

      E[cost] ~= cost(a) + sum_label sum_v p_label(v) * (cost(a with label = v) - cost(a))

  with ``p_label`` computed by the *same* relaxation as the forward pass (softmax or sparsestmax of
  the label's logits, or a space module's own :meth:`label_probabilities`), so the gradient flows
  into the alphas. It is exact when the cost is additive over labels (a sum of per-label terms)
  and a first-order expansion otherwise. The marginal costs ``cost(a with label = v) - cost(a)``
  come from ``space.cost(sample, hr_size)`` (fast, exact) and are cached while ``a`` is unchanged.
  A ``CategoricalMultiple`` label (choose ``k`` of ``n``) uses swap-one marginals: candidate ``v``
  outside the chosen set ``S`` replaces each member of ``S`` in turn (the mean of those costs minus
  ``cost(a)``), its inclusion probability is ``min(1, k * p(v))``, and members of ``S`` have
  marginal 0; this is exact on additive costs when the members of ``S`` cost the same, and reduces
  to the categorical formula for ``k = 1``. The penalty added to the architecture loss is
  ``penalty_weight * E[cost] / reference`` where ``reference`` (``penalty_reference``, or by default
  the mean cost of 32 seeded uniformly random architectures: the supernet's cost at uniform
  alphas) makes the weight unit-free. ``penalty_metric`` is ``"multadds"`` or ``"params"``,
  measured at ``penalty_hr_size``.
* **Bilevel or single-level** (``mode``): ``"bilevel"`` is NNI's first-order alternation (an arch
  step on a validation batch, then a weight step on a training batch); ``arch_loss_on_train`` adds
  the training batch's loss to the arch loss (DLSR). ``"single_level"`` takes one forward/backward
  on the training batch and steps both optimizers. In the arch step the weights' gradients are not
  computed (``requires_grad`` off), which saves the weight-gradient half of that backward; in the
  weight step the alphas get none.
* ``warmup_steps``: no architecture updates before that many training steps; arch Adam settings
  (``arch_learning_rate``, ``arch_betas``, ``arch_weight_decay``); ``loss``: a name from
  :mod:`srnas_nni.evaluation.losses` replacing the evaluator module's loss.
* **Candidates whose weight is exactly 0 are not computed**: NNI's ``LayerChoice`` / ``InputChoice``
  mixtures are replaced by :class:`SkippingMixedLayer` / :class:`SkippingMixedInput` (softmax never
  gives a 0, sparsestmax does; the spaces' custom differentiable modules skip too).
* **Export**: :meth:`DifferentiableSearch.export_architecture` (the modules' decoders: argmax, top-k
  inputs, HiNAS Viterbi) and :meth:`DifferentiableSearch.export_probabilities` (per label).
* **Options** (:class:`DifferentiableOptions`, one dataclass per strategy): the strategy builds
  them once from its keyword arguments (the YAML preset's keys), checked on construction, and hands
  them whole to its Lightning module, which reads ``options.mode`` and the like.
* **State**: every piece of search state is in the Lightning module, so Lightning checkpoints resume
  the search: alphas are parameters of the supernet, the step counter is the buffer
  ``search_step``, the cost reference the buffer ``cost_reference``, the arch optimizer is one
  Lightning knows; nothing else is stateful (the marginal-cost cache is derived).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from ...errors import SRNASError
from ...evaluation.losses import LOSSES, get_loss
from ...nni_adapter.oneshot import (  # first: NNI imported under the adapter's warning filter and patches
    DARTS, NATIVE_MIXED_OPERATIONS, DartsLightningModule, DifferentiableMixedCell, DifferentiableMixedInput,
    DifferentiableMixedLayer, DifferentiableMixedRepeat, no_default_hook, weighted_sum,
)
from ...study.keys import canonical_sample

# NNI's public model-space types, after the adapter has imported NNI.
from nni.mutable import Categorical, CategoricalMultiple
from nni.nas.nn.pytorch import InputChoice, LayerChoice

__all__ = ["DifferentiableOptions", "DifferentiableSearch", "DifferentiableSearchModule", "ExpectedCostPenalty",
           "SkippingMixedLayer", "SkippingMixedInput", "active_candidates", "check_number", "MODES", "COST_METRICS"]

MODES = ("bilevel", "single_level")
COST_METRICS = ("multadds", "params")


def active_candidates(weights: torch.Tensor) -> list[bool]:
    """Which mixture weights are not exactly 0 (one host sync for the whole vector)."""
    return (weights.detach() != 0).tolist()


# ----------------------------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------------------------
def check_number(name: str, value: Any, *, low: float = 0.0, integer: bool = False) -> None:
    """Raise :class:`SRNASError` naming the option ``name`` unless ``value`` is a finite number ``>= low``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= low
    if integer:
        ok = ok and float(value).is_integer()
    if not ok:
        kind = "an integer" if integer else "a number"
        raise SRNASError(f"{name}={value!r}: must be {kind} >= {low:g}")


@dataclass
class DifferentiableOptions:
    """The options every differentiable strategy takes (its YAML keys), checked and normalised here.

    Strategies subclass it to add options or change defaults (a field redeclared keeps its place).

    Attributes:
        arch_learning_rate, arch_betas, arch_weight_decay: Adam of the architecture parameters.
        mode: ``"bilevel"`` or ``"single_level"``.
        arch_loss_on_train: bilevel arch loss = val batch loss + train batch loss.
        warmup_steps: training steps before the first architecture update.
        penalty_weight: weight of the normalised expected cost (0: no penalty).
        penalty_metric: ``"multadds"`` or ``"params"``.
        penalty_hr_size: HR (height, width) the cost is measured at.
        penalty_reference: cost the expected cost is divided by (default: mean of 32 random samples).
        loss: loss name from :mod:`srnas_nni.evaluation.losses` replacing the evaluator's.
        gradient_clip_val, log_prob_every_n_step: as in NNI's DARTS.
    """

    arch_learning_rate: float = 3e-4
    arch_betas: Sequence[float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    mode: str = "bilevel"
    arch_loss_on_train: bool = False
    warmup_steps: int = 0
    penalty_weight: float = 0.0
    penalty_metric: str = "multadds"
    penalty_hr_size: Sequence[int] = (720, 1280)
    penalty_reference: float | None = None
    loss: str | None = None
    gradient_clip_val: float | None = None
    log_prob_every_n_step: int = 10

    def __post_init__(self) -> None:
        check_number("arch_learning_rate", self.arch_learning_rate)
        check_number("arch_weight_decay", self.arch_weight_decay)
        check_number("warmup_steps", self.warmup_steps, integer=True)
        check_number("penalty_weight", self.penalty_weight)
        check_number("log_prob_every_n_step", self.log_prob_every_n_step, integer=True)
        if self.penalty_reference is not None:
            check_number("penalty_reference", self.penalty_reference, low=1e-12)
        if self.gradient_clip_val is not None:
            check_number("gradient_clip_val", self.gradient_clip_val)
        betas = tuple(self.arch_betas) if isinstance(self.arch_betas, (list, tuple)) else ()
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
            raise SRNASError(f"arch_betas={self.arch_betas!r}: give two numbers in [0, 1)")
        if self.mode not in MODES:
            raise SRNASError(f"mode={self.mode!r}: choose one of {', '.join(MODES)}")
        if self.penalty_metric not in COST_METRICS:
            raise SRNASError(f"penalty_metric={self.penalty_metric!r}: choose one of {', '.join(COST_METRICS)}")
        hr = list(self.penalty_hr_size) if isinstance(self.penalty_hr_size, (list, tuple)) else []
        if len(hr) != 2 or not all(isinstance(s, int) and s > 0 for s in hr):
            raise SRNASError(f"penalty_hr_size={self.penalty_hr_size!r}: give two positive integers (height, width)")
        if self.loss is not None and self.loss not in LOSSES:
            raise SRNASError(f"loss={self.loss!r}: choose one of {', '.join(LOSSES)}")
        self.arch_learning_rate = float(self.arch_learning_rate)
        self.arch_betas = (float(betas[0]), float(betas[1]))
        self.arch_weight_decay = float(self.arch_weight_decay)
        self.arch_loss_on_train = bool(self.arch_loss_on_train)
        self.warmup_steps = int(self.warmup_steps)
        self.penalty_weight = float(self.penalty_weight)
        self.penalty_hr_size = (int(hr[0]), int(hr[1]))
        self.penalty_reference = None if self.penalty_reference is None else float(self.penalty_reference)
        self.log_prob_every_n_step = int(self.log_prob_every_n_step)


# ----------------------------------------------------------------------------------------------
# Mixed layer / input that skip zero-weight candidates
# ----------------------------------------------------------------------------------------------
class SkippingMixedLayer(DifferentiableMixedLayer):
    """NNI's DARTS ``LayerChoice`` mixture, not running candidates whose weight is exactly 0.

    Dropping a zero-weight term changes neither the output nor any gradient the relaxation has:
    sparse relaxations (sparsemax, sparsestmax) give exact zeros a zero derivative.
    """

    @classmethod
    def mutate(cls, module, name, memo, mutate_kwargs):
        if type(module) is LayerChoice:
            if module.label not in memo:
                raise KeyError(f"LayerChoice {module.label} not found in memo.")
            return cls(module.candidates, memo[module.label], mutate_kwargs.get("softmax", nn.Softmax(-1)),
                       module.label)
        return None

    def forward(self, *args, **kwargs):
        weights = self._softmax(self._arch_alpha)
        active = active_candidates(weights)
        outputs, kept = [], []
        for index, name in enumerate(self.names):
            if active[index]:
                outputs.append(self[name](*args, **kwargs))
                kept.append(weights[index])
        return weighted_sum(outputs, kept)


class SkippingMixedInput(DifferentiableMixedInput):
    """NNI's DARTS ``InputChoice`` mixture (weighted sum), ignoring inputs whose weight is exactly 0."""

    @classmethod
    def mutate(cls, module, name, memo, mutate_kwargs):
        if type(module) is InputChoice:
            if module.reduction not in ("sum", "mean"):
                raise ValueError("Only input choice of sum/mean reduction is supported.")
            if module.label not in memo:
                raise KeyError(f"InputChoice {module.label} not found in memo.")
            return cls(module.n_candidates, module.n_chosen, memo[module.label],
                       mutate_kwargs.get("softmax", nn.Softmax(-1)), module.label)
        return None

    def forward(self, inputs):
        weights = self._softmax(self._arch_alpha)
        active = active_candidates(weights)
        kept = [i for i, on in enumerate(active) if on]
        return weighted_sum([inputs[i] for i in kept], [weights[i] for i in kept])


# ----------------------------------------------------------------------------------------------
# Expected-cost penalty
# ----------------------------------------------------------------------------------------------
class ExpectedCostPenalty:
    """Differentiable expected cost of the relaxed architecture (see the module docstring).

    ``labels`` maps each label to its NNI mutable (``space.simplify()``); :meth:`expected_cost`
    takes the current derived sample and ``{label: probability tensor over the label's values}``
    (labels missing there contribute nothing beyond ``cost(a)``).
    """

    def __init__(self, space: Any, labels: dict[str, Any], *, metric: str = "multadds",
                 hr_size: Sequence[int] = (720, 1280), reference_samples: int = 32):
        if metric not in COST_METRICS:
            raise SRNASError(f"penalty_metric={metric!r}: choose one of {', '.join(COST_METRICS)}")
        if len(hr_size) != 2 or min(int(s) for s in hr_size) < 1:
            raise SRNASError(f"penalty_hr_size={list(hr_size)!r}: give two positive integers (height, width)")
        self.space = space
        self.labels = labels
        self.metric = metric
        self.hr_size = (int(hr_size[0]), int(hr_size[1]))
        self.reference_samples = reference_samples
        self._cache_key: str | None = None
        self._cache: tuple[float, dict[str, list[float]]] | None = None

    def cost(self, sample: dict[str, Any]) -> float:
        return float(getattr(self.space.cost(sample, hr_size=self.hr_size), self.metric))

    def default_reference(self) -> float:
        """Mean cost of ``reference_samples`` uniformly random architectures (seed 0)."""
        state = np.random.RandomState(0)
        costs = [self.cost(self.space.random_sample(state)) for _ in range(self.reference_samples)]
        return max(float(np.mean(costs)), 1e-12)

    def marginals(self, sample: dict[str, Any]) -> tuple[float, dict[str, list[float]]]:
        """``cost(a)`` and, per label, ``cost(a with label = v) - cost(a)`` for every value ``v``."""
        key = canonical_sample(sample)
        if key == self._cache_key and self._cache is not None:
            return self._cache
        base = self.cost(sample)
        deltas: dict[str, list[float]] = {}
        for label, mutable in self.labels.items():
            if label not in sample:
                continue
            if isinstance(mutable, CategoricalMultiple):
                deltas[label] = self._swap_one(sample, label, list(mutable.values), base)
            else:
                deltas[label] = [self.cost({**sample, label: value}) - base if value != sample[label] else 0.0
                                 for value in mutable.values]
        self._cache_key, self._cache = key, (base, deltas)
        return base, deltas

    def _swap_one(self, sample: dict[str, Any], label: str, values: list, base: float) -> list[float]:
        chosen = list(sample[label])
        out = []
        for value in values:
            if value in chosen or not chosen:
                out.append(0.0)
                continue
            swapped = [self.cost({**sample, label: sorted(chosen[:i] + [value] + chosen[i + 1:])}) - base
                       for i in range(len(chosen))]
            out.append(float(np.mean(swapped)))
        return out

    def expected_cost(self, sample: dict[str, Any], distributions: dict[str, torch.Tensor]) -> torch.Tensor | float:
        """The first-order expected cost around ``sample``, differentiable in ``distributions``."""
        base, deltas = self.marginals(sample)
        total: torch.Tensor | float = base
        for label, probs in distributions.items():
            if label not in deltas:
                continue
            delta = torch.as_tensor(deltas[label], dtype=probs.dtype, device=probs.device)
            if len(delta) != len(probs):
                raise ValueError(f"{label}: {len(probs)} probabilities for {len(delta)} values")
            mutable = self.labels[label]
            if isinstance(mutable, CategoricalMultiple):
                chosen = len(sample[label]) if mutable.n_chosen is None else int(mutable.n_chosen)
                probs = (probs * max(1, chosen)).clamp(max=1.0)
            total = total + (probs * delta).sum()
        return total


# ----------------------------------------------------------------------------------------------
# Lightning module
# ----------------------------------------------------------------------------------------------
class DifferentiableSearchModule(DartsLightningModule):
    """The search loop of :class:`DifferentiableSearch` (see the module docstring).

    ``options`` are the strategy's own (checked, shared, not copied). Subclass hooks:
    :meth:`before_step` (schedules), :meth:`architecture_updates_enabled`,
    :meth:`architecture_regularizer` (extra differentiable terms of the arch loss).
    """

    def __init__(self, training_module, options: DifferentiableOptions, *, label_alphas: dict[str, nn.Parameter],
                 softmax: nn.Module, penalty: ExpectedCostPenalty | None):
        super().__init__(training_module, arc_learning_rate=options.arch_learning_rate,
                         gradient_clip_val=options.gradient_clip_val,
                         log_prob_every_n_step=options.log_prob_every_n_step, warmup_epochs=0, penalty=None)
        self.options = options
        # Plain dict: the alphas are registered where the supernet modules hold them.
        self.label_alphas = dict(label_alphas)
        self.relaxation = softmax
        self.cost_penalty = penalty
        self.register_buffer("search_step", torch.zeros((), dtype=torch.long))
        reference = float("nan") if options.penalty_reference is None else options.penalty_reference
        self.register_buffer("cost_reference", torch.tensor(reference, dtype=torch.float64))
        self.last_expected_cost: float | None = None

    # ---- hooks for subclasses ----------------------------------------------------------------
    def before_step(self, step: int) -> None:
        """Called before each training step with the step index (0-based)."""

    def architecture_updates_enabled(self, step: int) -> bool:
        return step >= self.options.warmup_steps

    def architecture_regularizer(self) -> torch.Tensor | None:
        """Extra differentiable terms of the architecture loss (the base adds the cost penalty)."""
        return None

    # ---- relaxed distributions and the penalty ------------------------------------------------
    def label_distributions(self) -> dict[str, torch.Tensor]:
        """``{label: probabilities over the label's values}``, differentiable in the alphas.

        A supernet module with ``label_probabilities()`` gives its labels' own (HiNAS edges, width
        moves); every other label uses the relaxation of its DARTS alpha, if a module uses it.
        """
        out: dict[str, torch.Tensor] = {}
        for module in self.supernet_modules():
            provider = getattr(module, "label_probabilities", None)
            if provider is not None:
                out.update(provider())
        used = {id(p) for p in self.arch_parameters()}
        for label, alpha in self.label_alphas.items():
            if label not in out and id(alpha) in used:
                out[label] = self.relaxation(alpha)
        return out

    def expected_cost(self) -> torch.Tensor | float:
        if self.cost_penalty is None:
            raise RuntimeError("this search has no cost penalty")
        return self.cost_penalty.expected_cost(self.export(), self.label_distributions())

    def cost_penalty_term(self) -> torch.Tensor | None:
        if self.cost_penalty is None or self.options.penalty_weight == 0:
            return None
        if math.isnan(float(self.cost_reference)):
            self.cost_reference.fill_(self.cost_penalty.default_reference())
        expected = self.expected_cost()
        if not isinstance(expected, torch.Tensor):
            return None  # no label's distribution reaches the cost: nothing to differentiate
        self.last_expected_cost = float(expected.detach())
        return self.options.penalty_weight * expected / float(self.cost_reference)

    def _arch_extra_loss(self) -> torch.Tensor | None:
        terms = [t for t in (self.cost_penalty_term(), self.architecture_regularizer()) if t is not None]
        if not terms:
            return None
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        return total

    # ---- the step --------------------------------------------------------------------------------
    def _weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.training_module.parameters() if id(p) not in arch]

    @staticmethod
    def _set_requires_grad(parameters: Iterable[nn.Parameter], flag: bool) -> None:
        for parameter in parameters:
            parameter.requires_grad_(flag)

    def _task_loss(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self.training_module.training_step(batch, batch_idx)
        return loss["loss"] if isinstance(loss, dict) else loss

    def training_step(self, batch, batch_idx):
        arch_optimizer = self.architecture_optimizers()
        step = int(self.search_step)
        self.before_step(step)
        arch_on = self.architecture_updates_enabled(step)
        weights, alphas = self._weight_parameters(), self.arch_parameters()
        train_batch, val_batch = batch["train"], batch["val"]
        self.resample()
        if self.options.mode == "bilevel":
            if arch_on:
                self._set_requires_grad(weights, False)
                self._set_requires_grad(alphas, True)
                arch_optimizer.zero_grad()
                arch_loss = self._task_loss(val_batch, 2 * batch_idx)
                if self.options.arch_loss_on_train:
                    arch_loss = arch_loss + self._task_loss(train_batch, 2 * batch_idx)
                extra = self._arch_extra_loss()
                if extra is not None:
                    arch_loss = arch_loss + extra
                self.manual_backward(arch_loss)
                self._step_architecture(arch_optimizer)
                self._set_requires_grad(weights, True)
            self._set_requires_grad(alphas, False)
            loss = self._task_loss(train_batch, 2 * batch_idx + 1)
            self.advance_optimization(loss, batch_idx, self.options.gradient_clip_val)
        else:
            self._set_requires_grad(alphas, arch_on)
            loss = self._task_loss(train_batch, 2 * batch_idx + 1)
            total = loss
            if arch_on:
                arch_optimizer.zero_grad()
                extra = self._arch_extra_loss()
                if extra is not None:
                    total = loss + extra
            self.advance_optimization(total, batch_idx, self.options.gradient_clip_val)
            if arch_on:
                self._step_architecture(arch_optimizer)
        self._set_requires_grad(alphas, True)
        self.advance_lr_schedulers(batch_idx)
        self.search_step += 1
        if self.last_expected_cost is not None:
            self.log("expected_cost", self.last_expected_cost, batch_size=1)
        if self.options.log_prob_every_n_step and step % self.options.log_prob_every_n_step == 0:
            self.log_probs(self.export_probs())
        return loss

    @staticmethod
    def _step_architecture(arch_optimizer) -> None:
        # The raw optimizer: Lightning counts LightningOptimizer steps in global_step (and stops at
        # max_steps by it), and the evaluator's `steps` should count training batches.
        getattr(arch_optimizer, "optimizer", arch_optimizer).step()

    def on_train_epoch_start(self):
        # NNI's DARTS toggles requires_grad by epoch; warm-up here is by step (see training_step).
        return None

    def configure_architecture_optimizers(self):
        parameters = self.arch_parameters()
        if not parameters:
            raise SRNASError("the space has no architecture parameters: nothing for a differentiable search")
        return torch.optim.Adam(parameters, lr=self.options.arch_learning_rate, betas=self.options.arch_betas,
                                weight_decay=self.options.arch_weight_decay)

    def export_probs(self) -> dict[str, Any]:
        with torch.no_grad():
            return super().export_probs()


# ----------------------------------------------------------------------------------------------
# Strategy
# ----------------------------------------------------------------------------------------------
class DifferentiableSearch(DARTS):
    """NNI ``DARTS`` with the base's additions (module docstring). Subclasses set the options type
    (:attr:`options_class`), the relaxation (:meth:`make_relaxation`) and the Lightning module class
    (:attr:`module_class`).

    Keyword arguments: the fields of :attr:`options_class`, kept built and checked as :attr:`options`.
    """

    options_class: type[DifferentiableOptions] = DifferentiableOptions
    module_class: type[DifferentiableSearchModule] = DifferentiableSearchModule

    def __init__(self, **options: Any):
        self.options = self.options_class(**options)
        super().__init__(arc_learning_rate=self.options.arch_learning_rate,
                         gradient_clip_val=self.options.gradient_clip_val,
                         log_prob_every_n_step=self.options.log_prob_every_n_step, warmup_epochs=0, penalty=None)
        self._relaxation: nn.Module | None = None
        self._space: Any = None
        self._space_labels: dict[str, Any] = {}

    # ---- what the spaces must offer --------------------------------------------------------------
    @classmethod
    def check_space(cls, space: Any) -> None:
        """Every label must be categorical (``Categorical`` or ``CategoricalMultiple``)."""
        for label, mutable in space.simplify().items():
            if not isinstance(mutable, (Categorical, CategoricalMultiple)):
                raise SRNASError(f"label {label!r} is a {type(mutable).__name__}; only categorical choices relax")

    # ---- relaxation and hooks --------------------------------------------------------------------
    def make_relaxation(self) -> nn.Module:
        return nn.Softmax(dim=-1)

    def configure_softmax(self) -> nn.Module:
        # One shared instance: a schedule (sparsestmax radius) reaches every module at once, and the
        # penalty uses exactly the forward pass's relaxation.
        if self._relaxation is None:
            self._relaxation = self.make_relaxation()
        return self._relaxation

    def default_mutation_hooks(self) -> list:
        hooks = [SkippingMixedLayer.mutate, SkippingMixedInput.mutate, DifferentiableMixedCell.mutate,
                 DifferentiableMixedRepeat.mutate]
        hooks += [operation.mutate for operation in NATIVE_MIXED_OPERATIONS]
        hooks.append(no_default_hook)
        return hooks

    def mutate_model(self, model):
        self.check_space(model)
        self._space = model
        self._space_labels = dict(model.simplify())
        return super().mutate_model(model)

    # ---- the Lightning module ------------------------------------------------------------------
    def module_arguments(self) -> dict[str, Any]:
        """Keyword arguments of :attr:`module_class` derived from the mutated space (subclasses extend)."""
        return {}

    def configure_oneshot_module(self, training_module):
        loss = self.options.loss
        if loss is not None:
            if not hasattr(training_module, "loss_fn"):
                raise SRNASError(f"loss={loss!r}: the evaluator's module has no loss_fn to replace "
                                 "(use srnas_nni.evaluation.lightning.sr_lightning_evaluator)")
            training_module.loss_fn = get_loss(loss)
            training_module.loss_name = loss
        penalty = None
        if self.options.penalty_weight > 0:
            if self._space is None or not hasattr(self._space, "cost"):
                raise SRNASError("penalty_weight > 0 needs a space with a cost(sample, hr_size) model")
            penalty = ExpectedCostPenalty(self._space, self._space_labels, metric=self.options.penalty_metric,
                                          hr_size=self.options.penalty_hr_size)
        return self.module_class(training_module, self.options, label_alphas=self._arch_parameters,
                                 softmax=self.configure_softmax(), penalty=penalty, **self.module_arguments())

    # ---- results ---------------------------------------------------------------------------------
    def export_architecture(self) -> dict[str, Any]:
        """The derived architecture (the supernet modules' decoders)."""
        module = self.oneshot_module
        module.set_model(self.supernet)
        return module.export()

    def export_probabilities(self) -> dict[str, dict[Any, float]]:
        """``{label: {value: probability}}`` of the relaxed architecture."""
        module = self.oneshot_module
        module.set_model(self.supernet)
        return module.export_probs()
