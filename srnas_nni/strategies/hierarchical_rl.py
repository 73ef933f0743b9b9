"""Hierarchical RL controller (HNAS, DeCoNAS): LSTM policies per level, REINFORCE, cost-aware rewards.

``hierarchical_rl`` builds one of two NNI strategies from the same options:

* **multi-trial** (default): :class:`HierarchicalRL`, an NNI ``Strategy`` with a Pareto archive. It
  samples an architecture from the controller, submits ``model_space.freeze(sample)`` to the engine,
  reads ``psnr`` from the trial's final metric dict, turns it into a reward and updates the
  controller every ``controller_batch`` rewards.
* **parameter sharing** (``parameter_sharing: true``): :class:`HierarchicalRLOneShot`, a one-shot
  strategy (NNI ``RandomOneShot``'s path-sampling supernet plus the space's ``extra_oneshot_hooks``)
  that needs the Lightning evaluator of :mod:`srnas_nni.evaluation.lightning`. Every training step
  runs the path the controller samples; every ``controller_every`` weight steps the controller takes
  ``controller_steps`` REINFORCE steps, each on the PSNR of one sampled path on one validation batch
  with the shared weights (HNAS's alternation of supernet and controller epochs). At the end, the
  derived architecture is the best of ``derive_samples`` controller samples on the validation batches
  (HNAS ``trainer.derive``).

**Controller** (:class:`HierarchicalController`). The space's decisions are grouped into levels by
``space.controller_levels()`` (cell levels first, the network level last). Each level has its own
stacked ``LSTMCell`` and takes one step per decision, starting from a learned start input; the last
level (when there are several) starts instead from a linear map of the concatenated final hidden
states of all the other levels (HNAS's position LSTM reads the two cell LSTMs' final states).

* ``Categorical`` labels (ops, widths, positions, DeCoNAS's 0/1 bits): a linear softmax head per label;
  the chosen value's embedding is the next input.
* ``CategoricalMultiple`` labels (input choices): ENAS attention ``v . tanh(W_emb e_j + W_hid h)`` over
  learned embeddings ``e_j`` of the label's candidates (per level, by candidate position). A fixed
  ``n_chosen = k`` draws k distinct candidates one after another from the masked softmax (the
  log-probability is that of the *set*: the sum over the orders it can be drawn in; the entropy term is
  the softmax's); ``n_chosen = None`` draws an independent Bernoulli ``sigmoid(logit_j)`` per candidate.
  The mean embedding of the chosen candidates is the next input.
* Logits: ``/ temperature`` when set, then ``tanh_constant * tanh(.)`` when set (``tanh_constant /
  op_tanh_reduce`` for Categorical heads, as ENAS and DeCoNAS). Parameters start uniform in
  ``[-init_range, init_range]``.

**Update** (REINFORCE with an EMA baseline): ``b <- decay * b + (1 - decay) * target`` (``b`` = the
first target at the start), advantage ``A = R - b``, loss
``-(sum_l w_l log p_l) A - entropy_weight * sum_l w_l H_l`` over the levels ``l`` of the sample, with
``w = network_level_weight`` for the network level (HNAS: 10 for the position) and 1 for the others.
The target is ``R`` (HNAS) or the PSNR (``baseline_target: psnr``, DeCoNAS); with
``entropy_in_reward`` (DeCoNAS) the entropy bonus is added to the reward, without gradient, instead
of to the loss. Log-probabilities are recomputed with gradients at update time by replaying the
stored sample, so pending rewards survive a checkpoint.

**Rewards** -- always from the *sampled* architecture's own cost (``space.cost(sample, ...)``), never
from a measured supernet (the released HNAS code measures the wrong model, PAPERS.md 1.3):

* ``hnas``: ``lambda * PSNR - (1 - lambda) * cost`` with ``cost = cost_scale * Mult-Adds`` of the sample
  at a ``cost_lr_size`` x ``cost_lr_size`` LR input (HNAS: 0.5e-8, 48x48, lambda 0.5; README search 0.2).
* ``deconas``: ``PSNR - lambda_cb * cb``, ``cb = (C(s) - C_min) / (C_max - C_min)`` clipped to [0, 1],
  with ``C`` the sample's ``complexity_metric`` (``params`` by default, or ``multadds`` at the same
  input) and ``C_min``/``C_max`` the cheapest and dearest architectures found by coordinate search over
  the labels (each label set to its cheapest/dearest value given the others, repeated until nothing
  changes). On DeCoNAS's space every bit adds its own slab of weights, so the search finds exactly the
  all-0 and all-1 patterns and ``cb = sum_selected P_bit / sum_all P_bit``: DeCoNAS's bit-weighted
  ratio, with the true per-bit parameter counts (``P_conv = P_dil = 9 C^2``, ``P_sep = 9 C + C^2``: the
  official code leaves out the pointwise weights) plus the ``C`` bias of each branch in use.

**Failures.** A trial that raises, reports NaN or no ``psnr`` (engine status ``Failed``, or trained
without a usable metric) gets the reward of a model with PSNR ``failure_psnr`` (0 dB by default) at
its own cost; it is recorded (not retried with ``dedup``) and the search goes on.

**Duplicates.** With ``dedup`` (default) an architecture already evaluated is not trained again: the
controller receives its recorded reward, without a trial. After ``max_duplicates`` duplicates in a
row the controller has converged and the search ends.

**State** (``state_dict``/``load_state_dict``, saved by ``NasExperiment``): controller weights and
optimiser, baseline, the sampling generator's state, counters, pending rewards, every evaluated
sample with its reward, and the Pareto archive. The controller samples with its own CPU
``torch.Generator`` (seeded by ``seed``), so the global torch and numpy generators are neither used
nor disturbed. A trial still running when the state is saved has no result yet: after a resume its
architecture may be sampled and trained again. The parameter-sharing mode keeps all of it in its
Lightning module (parameters, buffers, the controller optimiser, ``on_save_checkpoint``), so Lightning
checkpoints resume it.

Presets (``preset:``; explicit options win): ``hnas`` (default; PAPERS.md 1.3: hidden 100, one LSTM
layer, uniform(-0.1, 0.1), Adam lr 3e-4, betas (0.5, 0.999), weight decay 5e-4, baseline decay 0.95,
entropy 0.1 in the loss, position weight 10, reward ``hnas``) and ``deconas`` (PAPERS.md 5.3: two
LSTM layers of 64, ``tanh_constant`` 1.1 / ``op_tanh_reduce`` 2.5, baseline EMA 0.99 of the PSNR,
entropy 1e-4 added to the reward, Adam lr 3e-4 with no weight decay, reward ``deconas`` with
``lambda_cb`` 2).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import SRNASError
from ..nni_compat import nni  # noqa: F401  (NNI imported under our warning filter)
from ..spaces.base import plain_value
from . import register_strategy
from .pareto import ParetoArchiveMixin

from nni.mutable import Categorical, CategoricalMultiple  # noqa: E402
from nni.nas.execution import FinalMetricEvent, ModelEventType, TrainingEndEvent  # noqa: E402
from nni.nas.oneshot.pytorch.base_lightning import BaseOneShotLightningModule  # noqa: E402
from nni.nas.space import ModelStatus  # noqa: E402
from nni.nas.strategy import RandomOneShot, Strategy  # noqa: E402

__all__ = ["PRESETS", "ControllerConfig", "HierarchicalController", "Rollout", "HNASJointReward",
           "DeCoNASComplexityReward", "make_reward", "ReinforceLearner", "HierarchicalRL",
           "HierarchicalRLOneShot", "HierarchicalRLLightningModule", "hierarchical_rl", "controller_levels_of"]

_logger = logging.getLogger(__name__)

#: Defaults "as the paper": HNAS (PAPERS.md 1.3) and DeCoNAS (PAPERS.md 5.3).
PRESETS: dict[str, dict[str, Any]] = {
    "hnas": dict(hidden_size=100, num_layers=1, init_range=0.1, temperature=None, tanh_constant=None,
                 op_tanh_reduce=2.5, learning_rate=3e-4, betas=(0.5, 0.999), weight_decay=5e-4,
                 baseline_decay=0.95, baseline_target="reward", entropy_weight=0.1, entropy_in_reward=False,
                 network_level_weight=10.0, reward="hnas", reward_lambda=0.5, cost_scale=0.5e-8, cost_lr_size=48,
                 lambda_cb=2.0, complexity_metric="params"),
    "deconas": dict(hidden_size=64, num_layers=2, init_range=0.1, temperature=None, tanh_constant=1.1,
                    op_tanh_reduce=2.5, learning_rate=3e-4, betas=(0.9, 0.999), weight_decay=0.0,
                    baseline_decay=0.99, baseline_target="psnr", entropy_weight=1e-4, entropy_in_reward=True,
                    network_level_weight=1.0, reward="deconas", reward_lambda=0.5, cost_scale=0.5e-8,
                    cost_lr_size=48, lambda_cb=2.0, complexity_metric="params"),
}

#: Options of both modes besides the preset's.
_COMMON_DEFAULTS: dict[str, Any] = dict(controller_batch=1, grad_clip=None, failure_psnr=0.0, seed=None)
_MULTI_TRIAL_DEFAULTS: dict[str, Any] = dict(dedup=True, max_duplicates=200)
#: Parameter sharing: weight steps between controller phases, controller steps per phase (HNAS alternates
#: one supernet epoch and one controller epoch), first weight step that trains the controller, derivation.
_ONE_SHOT_DEFAULTS: dict[str, Any] = dict(controller_every=20, controller_steps=30, controller_start=0,
                                          derive_samples=10, derive_metric="psnr")

OPTIONS: tuple[str, ...] = (("preset", "parameter_sharing") + tuple(PRESETS["hnas"]) + tuple(_COMMON_DEFAULTS)
                            + tuple(_MULTI_TRIAL_DEFAULTS) + tuple(_ONE_SHOT_DEFAULTS))


# ------------------------------------------------------------------------------------------------
# Levels


def controller_levels_of(space: Any) -> list[tuple[str, list[tuple[str, Categorical | CategoricalMultiple]]]]:
    """``[(level, [(label, mutable), ...]), ...]`` from ``space.controller_levels()`` and ``simplify()``.

    Raises :class:`SRNASError` when a decision is neither ``Categorical`` nor ``CategoricalMultiple``
    or the levels do not cover every decision exactly once.
    """
    decisions = space.simplify()
    if not decisions:
        raise SRNASError("the space has no decisions to search")
    for label, mutable in decisions.items():
        if not isinstance(mutable, (Categorical, CategoricalMultiple)):
            raise SRNASError(f"label {label!r} is a {type(mutable).__name__}; the controller samples only "
                             "Categorical and CategoricalMultiple decisions")
    if hasattr(space, "controller_levels"):
        grouped = space.controller_levels()
    else:  # a plain NNI space: one level per first path segment
        grouped = {}
        for label in decisions:
            grouped.setdefault(label.split("/", 1)[0], []).append(label)
    listed = [label for labels in grouped.values() for label in labels]
    if sorted(listed) != sorted(decisions) or len(set(listed)) != len(listed):
        raise SRNASError(f"{type(space).__name__}.controller_levels() must list every label once; "
                         f"missing {sorted(set(decisions) - set(listed))}, "
                         f"extra {sorted(set(listed) - set(decisions))}")
    return [(name, [(label, decisions[label]) for label in labels]) for name, labels in grouped.items() if labels]


def sample_key(sample: Mapping[str, Any]) -> str:
    """A canonical string of a sample (input sets sorted), for de-duplication."""
    canonical = {label: sorted(plain_value(v), key=repr) if isinstance(v, (list, tuple)) else plain_value(v)
                 for label, v in sample.items()}
    return json.dumps(canonical, sort_keys=True, default=repr)


# ------------------------------------------------------------------------------------------------
# The controller


@dataclass
class ControllerConfig:
    hidden_size: int = 100
    num_layers: int = 1
    init_range: float = 0.1
    temperature: float | None = None
    tanh_constant: float | None = None
    op_tanh_reduce: float = 2.5


@dataclass
class Rollout:
    """One pass of the controller: the sample, and per level the summed log-probability and entropy."""

    sample: dict[str, Any]
    log_probs: list[torch.Tensor]
    entropies: list[torch.Tensor]
    probs: dict[str, dict[Any, float]] = field(default_factory=dict)

    @property
    def entropy(self) -> float:
        return float(sum(e.item() for e in self.entropies))


class _LevelPolicy(nn.Module):
    """The LSTM and heads of one level."""

    def __init__(self, decisions: Sequence[tuple[str, Categorical | CategoricalMultiple]], config: ControllerConfig):
        super().__init__()
        hidden = config.hidden_size
        self.labels = [label for label, _ in decisions]
        self.lstm = nn.ModuleList(nn.LSTMCell(hidden, hidden) for _ in range(config.num_layers))
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.heads = nn.ModuleDict()
        self.value_embeddings = nn.ModuleDict()
        self.attention_hidden = nn.ModuleDict()
        self.attention_v = nn.ModuleDict()
        multiple = [m for _, m in decisions if isinstance(m, CategoricalMultiple)]
        for index, (_, mutable) in enumerate(decisions):
            if isinstance(mutable, Categorical):
                self.heads[str(index)] = nn.Linear(hidden, len(mutable.values))
                self.value_embeddings[str(index)] = nn.Embedding(len(mutable.values), hidden)
            else:  # the query side of the attention is the label's own
                self.attention_hidden[str(index)] = nn.Linear(hidden, hidden, bias=False)
                self.attention_v[str(index)] = nn.Linear(hidden, 1, bias=False)
        if multiple:
            # Candidate j of every input choice of a level is the same state (cell input, earlier node):
            # one embedding per candidate position, shared by the level.
            self.candidate_embeddings = nn.Embedding(max(len(m.values) for m in multiple), hidden)
            self.attention_candidate = nn.Linear(hidden, hidden, bias=False)
            self.empty_input = nn.Parameter(torch.zeros(1, hidden))

    def step(self, x: torch.Tensor, state: list[tuple[torch.Tensor, torch.Tensor]] | None):
        new_state = []
        for index, cell in enumerate(self.lstm):
            h, c = cell(x, None if state is None else state[index])
            new_state.append((h, c))
            x = h
        return x, new_state

    def attention_logits(self, position: int, h: torch.Tensor, count: int) -> torch.Tensor:
        """ENAS attention ``v . tanh(W_emb e_j + W_hid h)`` over the first ``count`` candidates."""
        candidates = self.candidate_embeddings.weight[:count]
        scores = torch.tanh(self.attention_candidate(candidates) + self.attention_hidden[str(position)](h))
        return self.attention_v[str(position)](scores).squeeze(-1)


def _squash(logits: torch.Tensor, temperature: float | None, tanh_constant: float | None) -> torch.Tensor:
    if temperature is not None:
        logits = logits / temperature
    if tanh_constant is not None:
        logits = tanh_constant * torch.tanh(logits)
    return logits


def _set_log_prob(log_softmax: torch.Tensor, chosen: Sequence[int]) -> torch.Tensor:
    """log P(drawing the set ``chosen`` one after another without replacement from the softmax)."""
    if len(chosen) == 1:
        return log_softmax[chosen[0]]
    probs = log_softmax.exp()
    terms = []
    orders = itertools.permutations(chosen) if len(chosen) <= 5 else [tuple(chosen)]
    for order in orders:
        remaining = torch.ones((), dtype=probs.dtype, device=probs.device)
        term = torch.zeros((), dtype=probs.dtype, device=probs.device)
        for index in order:
            term = term + log_softmax[index] - torch.log(remaining.clamp_min(1e-12))
            remaining = remaining - probs[index]
        terms.append(term)
    return torch.logsumexp(torch.stack(terms), dim=0)


class HierarchicalController(nn.Module):
    """One LSTM policy per level; the last level is conditioned on the others (module docstring).

    ``levels``: ``[(level name, [(label, Categorical | CategoricalMultiple), ...]), ...]``, as
    :func:`controller_levels_of` returns. :meth:`sample` draws an architecture (a ``{label: value}``
    dict the space freezes); :meth:`evaluate` replays one with gradients.
    """

    def __init__(self, levels: Sequence[tuple[str, Sequence[tuple[str, Any]]]], config: ControllerConfig | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.config = config or ControllerConfig()
        if self.config.hidden_size < 1 or self.config.num_layers < 1:
            raise SRNASError(f"hierarchical_rl: hidden_size and num_layers must be >= 1, got "
                             f"{self.config.hidden_size} and {self.config.num_layers}")
        self.level_names = [name for name, _ in levels]
        self.decisions = [list(decisions) for _, decisions in levels]
        self.levels = nn.ModuleList(_LevelPolicy(decisions, self.config) for decisions in self.decisions)
        hidden = self.config.hidden_size
        self.condition = nn.Linear(hidden * (len(levels) - 1), hidden) if len(levels) > 1 else None
        init = self.config.init_range
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -init, init, generator=generator)

    @property
    def labels(self) -> list[str]:
        return [label for decisions in self.decisions for label, _ in decisions]

    def sample(self, generator: torch.Generator | None = None) -> Rollout:
        """Draw an architecture (no gradients); ``generator`` (CPU) makes it reproducible."""
        with torch.no_grad():
            return self._walk(None, generator, greedy=False)

    def greedy(self) -> Rollout:
        """The most likely choice at every step, with the conditional probabilities along the way."""
        with torch.no_grad():
            return self._walk(None, None, greedy=True, record_probs=True)

    def evaluate(self, sample: Mapping[str, Any]) -> Rollout:
        """Replay ``sample`` with gradients: per-level log-probabilities and entropies."""
        return self._walk(sample, None, greedy=False)

    # -- the walk ----------------------------------------------------------------------------

    def _walk(self, forced: Mapping[str, Any] | None, generator: torch.Generator | None, greedy: bool,
              record_probs: bool = False) -> Rollout:
        device = next(self.parameters()).device
        sample: dict[str, Any] = {}
        log_probs, entropies = [], []
        probs: dict[str, dict[Any, float]] = {}
        finals: list[torch.Tensor] = []
        last = len(self.levels) - 1
        for index, (policy, decisions) in enumerate(zip(self.levels, self.decisions)):
            if index == last and self.condition is not None:
                x = self.condition(torch.cat(finals, dim=-1))
            else:
                x = policy.start
            state = None
            level_log_prob = torch.zeros((), device=device)
            level_entropy = torch.zeros((), device=device)
            h = x
            for position, (label, mutable) in enumerate(decisions):
                h, state = policy.step(x, state)
                value = None if forced is None else forced[label]
                if isinstance(mutable, Categorical):
                    x, chosen, log_prob, entropy, dist = self._categorical(policy, position, mutable, h, value,
                                                                           generator, greedy)
                else:
                    x, chosen, log_prob, entropy, dist = self._multiple(policy, position, mutable, h, value,
                                                                        generator, greedy)
                sample[label] = chosen
                level_log_prob = level_log_prob + log_prob
                level_entropy = level_entropy + entropy
                if record_probs:
                    probs[label] = dist
            finals.append(h)
            log_probs.append(level_log_prob)
            entropies.append(level_entropy)
        return Rollout(sample, log_probs, entropies, probs)

    def _pick(self, probs: torch.Tensor, generator: torch.Generator | None, greedy: bool) -> int:
        if greedy:
            return int(torch.argmax(probs).item())
        return int(torch.multinomial(probs.detach().double().cpu(), 1, generator=generator).item())

    def _categorical(self, policy: _LevelPolicy, position: int, mutable: Categorical, h, value, generator, greedy):
        config = self.config
        tanh = None if config.tanh_constant is None else config.tanh_constant / config.op_tanh_reduce
        logits = _squash(policy.heads[str(position)](h).squeeze(0), config.temperature, tanh)
        log_softmax = torch.log_softmax(logits, dim=-1)
        values = list(mutable.values)
        if value is None:
            index = self._pick(log_softmax.exp(), generator, greedy)
        else:
            if value not in values:
                raise SRNASError(f"{mutable.label}: {value!r} is not one of {values}")
            index = values.index(value)
        entropy = -(log_softmax.exp() * log_softmax).sum()
        embedding = policy.value_embeddings[str(position)].weight[index].unsqueeze(0)
        dist = {plain_value(v): float(p) for v, p in zip(values, log_softmax.exp().tolist())}
        return embedding, plain_value(values[index]), log_softmax[index], entropy, dist

    def _multiple(self, policy: _LevelPolicy, position: int, mutable: CategoricalMultiple, h, value, generator, greedy):
        config = self.config
        values = list(mutable.values)
        logits = _squash(policy.attention_logits(position, h, len(values)), config.temperature, config.tanh_constant)
        if value is not None:
            value = [value] if not isinstance(value, (list, tuple)) else list(value)
            unknown = [v for v in value if v not in values]
            if unknown or len(set(map(repr, value))) != len(value):
                raise SRNASError(f"{mutable.label}: {value!r} is not a set of candidates from {values}")
            forced_indices = [values.index(v) for v in value]
        if mutable.n_chosen is None:  # any subset: one Bernoulli per candidate
            on = torch.sigmoid(logits)
            if value is not None:
                bits = torch.zeros(len(values), dtype=torch.bool)
                bits[forced_indices] = True
            elif greedy:
                bits = (on > 0.5).cpu()
            else:
                bits = torch.rand(len(values), generator=generator, dtype=torch.float64) < on.detach().double().cpu()
            bits = bits.to(logits.device)
            log_on, log_off = torch.nn.functional.logsigmoid(logits), torch.nn.functional.logsigmoid(-logits)
            log_prob = torch.where(bits, log_on, log_off).sum()
            entropy = -(on * log_on + (1 - on) * log_off).sum()
            chosen = [int(i) for i in torch.nonzero(bits).flatten().tolist()]
            dist = {plain_value(v): float(p) for v, p in zip(values, on.tolist())}
        else:
            k = int(mutable.n_chosen)
            log_softmax = torch.log_softmax(logits, dim=-1)
            if value is not None:
                if len(forced_indices) != k:
                    raise SRNASError(f"{mutable.label}: {value!r} must hold {k} candidate(s)")
                chosen = forced_indices
            else:
                chosen = []
                for _ in range(k):  # k distinct candidates, one after another
                    masked = log_softmax.clone()
                    if chosen:
                        masked[chosen] = -math.inf
                    chosen.append(self._pick(torch.softmax(masked, dim=-1), generator, greedy))
            log_prob = _set_log_prob(log_softmax, chosen)
            entropy = -(log_softmax.exp() * log_softmax).sum()
            dist = {plain_value(v): float(p) for v, p in zip(values, log_softmax.exp().tolist())}
        chosen = sorted(chosen)
        if chosen:
            embedding = policy.candidate_embeddings.weight[chosen].mean(dim=0, keepdim=True)
        else:
            embedding = policy.empty_input
        return embedding, [plain_value(values[i]) for i in chosen], log_prob, entropy, dist


# ------------------------------------------------------------------------------------------------
# Rewards


class HNASJointReward:
    """HNAS: ``lambda * PSNR - (1 - lambda) * cost_scale * MultAdds(sample at a cost_lr_size^2 LR input)``."""

    def __init__(self, space: Any, reward_lambda: float = 0.5, cost_scale: float = 0.5e-8, cost_lr_size: int = 48):
        if not 0.0 <= reward_lambda <= 1.0:
            raise SRNASError(f"hierarchical_rl: reward_lambda = {reward_lambda} must lie in [0, 1]")
        if cost_scale < 0 or cost_lr_size < 1:
            raise SRNASError(f"hierarchical_rl: cost_scale = {cost_scale} must be >= 0 and cost_lr_size = "
                             f"{cost_lr_size} >= 1")
        self.space = space
        self.reward_lambda = float(reward_lambda)
        self.cost_scale = float(cost_scale)
        self.hr_size = (int(cost_lr_size) * int(space.scale), int(cost_lr_size) * int(space.scale))

    def cost(self, sample: Mapping[str, Any]) -> float:
        return self.cost_scale * float(self.space.cost(dict(sample), hr_size=self.hr_size).multadds)

    def __call__(self, psnr: float, sample: Mapping[str, Any]) -> float:
        return self.reward_lambda * float(psnr) - (1.0 - self.reward_lambda) * self.cost(sample)


class DeCoNASComplexityReward:
    """DeCoNAS: ``PSNR - lambda_cb * cb(sample)`` with the relative complexity of the module docstring."""

    #: Labels with more alternatives than this are left at their start value by the extreme search.
    max_alternatives = 64

    def __init__(self, space: Any, lambda_cb: float = 2.0, complexity_metric: str = "params", cost_lr_size: int = 48):
        if complexity_metric not in ("params", "multadds"):
            raise SRNASError(f"hierarchical_rl: complexity_metric = {complexity_metric!r}; choose params or multadds")
        if lambda_cb < 0:
            raise SRNASError(f"hierarchical_rl: lambda_cb = {lambda_cb} must be >= 0")
        self.space = space
        self.lambda_cb = float(lambda_cb)
        self.metric = complexity_metric
        self.hr_size = (int(cost_lr_size) * int(space.scale), int(cost_lr_size) * int(space.scale))
        self.low, self.high = self._extremes()

    def measure(self, sample: Mapping[str, Any]) -> float:
        return float(getattr(self.space.cost(dict(sample), hr_size=self.hr_size), self.metric))

    def complexity(self, sample: Mapping[str, Any]) -> float:
        if self.high <= self.low:
            return 0.0
        return min(1.0, max(0.0, (self.measure(sample) - self.low) / (self.high - self.low)))

    def __call__(self, psnr: float, sample: Mapping[str, Any]) -> float:
        return float(psnr) - self.lambda_cb * self.complexity(sample)

    def _alternatives(self, mutable: Any) -> list[Any]:
        values = list(mutable.values)
        if isinstance(mutable, Categorical):
            return [plain_value(v) for v in values]
        if mutable.n_chosen is None:
            sizes = range(len(values) + 1)
        else:
            sizes = [int(mutable.n_chosen)]
        options = []
        for size in sizes:
            for combo in itertools.combinations(values, size):
                options.append([plain_value(v) for v in combo])
                if len(options) > self.max_alternatives:
                    return options[:1]
        return options

    def _extremes(self) -> tuple[float, float]:
        decisions = self.space.simplify()
        alternatives = {label: self._alternatives(m) for label, m in decisions.items()}
        results = []
        for sign in (1.0, -1.0):  # cheapest, then dearest
            sample = {label: options[0] for label, options in alternatives.items()}
            best = sign * self.measure(sample)
            for _ in range(10):  # coordinate passes until nothing changes
                changed = False
                for label, options in alternatives.items():
                    for option in options:
                        if option == sample[label]:
                            continue
                        trial = {**sample, label: option}
                        value = sign * self.measure(trial)
                        if value < best:
                            sample, best, changed = trial, value, True
                if not changed:
                    break
            results.append(sign * best)
        return results[0], results[1]


def make_reward(kind: str, space: Any, options: Mapping[str, Any]):
    if kind == "hnas":
        return HNASJointReward(space, options["reward_lambda"], options["cost_scale"], options["cost_lr_size"])
    if kind == "deconas":
        return DeCoNASComplexityReward(space, options["lambda_cb"], options["complexity_metric"],
                                       options["cost_lr_size"])
    raise SRNASError(f"hierarchical_rl: reward = {kind!r}; choose hnas or deconas")


# ------------------------------------------------------------------------------------------------
# REINFORCE


class ReinforceLearner:
    """Controller + Adam + EMA baseline + the sampling generator: everything both modes update and save.

    ``observe(sample, psnr, reward)`` queues a reward; every ``controller_batch`` rewards :meth:`update`
    takes one optimiser step on the queued samples (module docstring for the loss).
    """

    def __init__(self, controller: HierarchicalController, options: Mapping[str, Any], generator: torch.Generator):
        self.controller = controller
        self.options = dict(options)
        self.generator = generator
        self.optimizer = self.make_optimizer(controller, options)
        self.baseline: float | None = None
        self.pending: list[tuple[dict[str, Any], float, float]] = []
        self.updates = 0
        self.samples = 0

    @staticmethod
    def make_optimizer(controller: nn.Module, options: Mapping[str, Any]) -> torch.optim.Optimizer:
        return torch.optim.Adam(controller.parameters(), lr=options["learning_rate"], betas=tuple(options["betas"]),
                                weight_decay=options["weight_decay"])

    def sample(self) -> Rollout:
        self.samples += 1
        return self.controller.sample(self.generator)

    def observe(self, sample: Mapping[str, Any], psnr: float, reward: float) -> dict[str, float] | None:
        self.pending.append((dict(sample), float(psnr), float(reward)))
        if len(self.pending) >= self.options["controller_batch"]:
            return self.update()
        return None

    def level_weights(self) -> list[float]:
        count = len(self.controller.levels)
        weights = [1.0] * count
        if count > 1:
            weights[-1] = float(self.options["network_level_weight"])
        return weights

    def loss(self, batch: Sequence[tuple[Mapping[str, Any], float, float]]) -> tuple[torch.Tensor, dict[str, float]]:
        """The REINFORCE loss of ``batch`` (baseline advanced per sample); logs for the caller."""
        options = self.options
        weights = self.level_weights()
        decay = options["baseline_decay"]
        total = None
        rewards, advantages, entropies = [], [], []
        for sample, psnr, reward in batch:
            rollout = self.controller.evaluate(sample)
            log_prob = sum(w * lp for w, lp in zip(weights, rollout.log_probs))
            entropy = sum(w * e for w, e in zip(weights, rollout.entropies))
            if options["entropy_in_reward"]:
                reward = reward + options["entropy_weight"] * float(entropy.detach())
            target = psnr if options["baseline_target"] == "psnr" else reward
            self.baseline = target if self.baseline is None else decay * self.baseline + (1 - decay) * target
            advantage = reward - self.baseline
            term = -log_prob * advantage
            if not options["entropy_in_reward"]:
                term = term - options["entropy_weight"] * entropy
            total = term if total is None else total + term
            rewards.append(reward)
            advantages.append(advantage)
            entropies.append(float(entropy.detach()))
        assert total is not None
        logs = {"reward": float(np.mean(rewards)), "advantage": float(np.mean(advantages)),
                "entropy": float(np.mean(entropies)), "baseline": float(self.baseline)}
        return total / len(batch), logs

    def update(self, step_optimizer: Any = None) -> dict[str, float]:
        batch, self.pending = self.pending, []
        self.controller.train()
        self.optimizer.zero_grad()
        loss, logs = self.loss(batch)
        loss.backward()
        if self.options["grad_clip"]:
            nn.utils.clip_grad_norm_(self.controller.parameters(), self.options["grad_clip"])
        self.optimizer.step()
        self.updates += 1
        logs["loss"] = float(loss.detach())
        return logs

    def state_dict(self) -> dict[str, Any]:
        return {"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict(),
                "baseline": self.baseline, "updates": self.updates,
                # Samples through JSON: NNI's ``label`` keys (a str subclass) become plain str.
                "pending": [[json.loads(json.dumps(s)), p, r] for s, p, r in self.pending],
                "samples": self.samples,
                # The sampling generator's state as a plain list of bytes (not a pickled torch object).
                "generator": self.generator.get_state().tolist()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline = state["baseline"]
        self.pending = [(dict(s), float(p), float(r)) for s, p, r in state["pending"]]
        self.updates = int(state["updates"])
        self.samples = int(state["samples"])
        generator = state["generator"]
        self.generator.set_state(generator if isinstance(generator, torch.Tensor)  # checkpoints before plain data
                                 else torch.tensor(generator, dtype=torch.uint8))


# ------------------------------------------------------------------------------------------------
# Options


def resolve_options(preset: str, overrides: Mapping[str, Any], mode_defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The preset's values, the mode's defaults, then ``overrides``; checked, with one-line errors."""
    if preset not in PRESETS:
        raise SRNASError(f"hierarchical_rl: preset = {preset!r}; choose one of {sorted(PRESETS)}")
    options = {**PRESETS[preset], **_COMMON_DEFAULTS, **mode_defaults}
    unknown = sorted(set(overrides) - set(options))
    if unknown:
        raise SRNASError(f"hierarchical_rl: option(s) {unknown} do not apply here; options: {sorted(options)}")
    options.update(overrides)

    def positive(name: str, integer: bool = False, allow_zero: bool = False) -> None:
        value = options[name]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = number and (value >= 0 if allow_zero else value > 0)
        if integer:
            ok = ok and float(value).is_integer()
        if not ok:
            kind = ("non-negative " if allow_zero else "positive ") + ("integer" if integer else "number")
            raise SRNASError(f"hierarchical_rl: {name} = {value!r} must be a {kind}")

    for name in ("hidden_size", "num_layers", "controller_batch", "cost_lr_size"):
        positive(name, integer=True)
    for name in ("learning_rate", "init_range", "op_tanh_reduce"):
        positive(name)
    for name in ("weight_decay", "entropy_weight", "network_level_weight", "cost_scale", "lambda_cb"):
        positive(name, allow_zero=True)
    for name in ("temperature", "tanh_constant", "grad_clip"):
        if options[name] is not None:
            positive(name)
    if not 0.0 <= float(options["baseline_decay"]) < 1.0:
        raise SRNASError(f"hierarchical_rl: baseline_decay = {options['baseline_decay']!r} must lie in [0, 1)")
    if options["baseline_target"] not in ("reward", "psnr"):
        raise SRNASError(f"hierarchical_rl: baseline_target = {options['baseline_target']!r}; choose reward or psnr")
    betas = options["betas"]
    if not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(0 <= float(b) < 1 for b in betas)):
        raise SRNASError(f"hierarchical_rl: betas = {betas!r} must be two numbers in [0, 1)")
    options["betas"] = tuple(float(b) for b in betas)
    if options["reward"] not in ("hnas", "deconas"):
        raise SRNASError(f"hierarchical_rl: reward = {options['reward']!r}; choose hnas or deconas")
    if options["seed"] is not None and not isinstance(options["seed"], int):
        raise SRNASError(f"hierarchical_rl: seed = {options['seed']!r} must be an integer")
    if "max_duplicates" in options:
        positive("max_duplicates", integer=True)
    if "controller_every" in options:
        for name in ("controller_every", "controller_steps", "derive_samples"):
            positive(name, integer=True)
        positive("controller_start", integer=True, allow_zero=True)
        if options["derive_metric"] not in ("psnr", "reward"):
            raise SRNASError(f"hierarchical_rl: derive_metric = {options['derive_metric']!r}; choose psnr or reward")
    for name in ("hidden_size", "num_layers", "controller_batch", "cost_lr_size", "max_duplicates", "controller_every",
                 "controller_steps", "controller_start", "derive_samples"):
        if name in options:
            options[name] = int(options[name])
    return options


def _build_controller(space: Any, options: Mapping[str, Any]) -> tuple[HierarchicalController, torch.Generator]:
    levels = controller_levels_of(space)
    generator = torch.Generator()
    seed = options["seed"] if options["seed"] is not None else int(np.random.SeedSequence().generate_state(1)[0])
    generator.manual_seed(int(seed))
    config = ControllerConfig(options["hidden_size"], options["num_layers"], options["init_range"],
                              options["temperature"], options["tanh_constant"], options["op_tanh_reduce"])
    return HierarchicalController(levels, config, generator=generator), generator


def _sr_space(model_space: Any) -> Any:
    """The SR space behind NNI's executable model space (``raw`` format: ``model_space``; ``engine: nni``'s
    :class:`~srnas_nni.nni_engine.FreezingModelSpace`: ``built_space()``)."""
    built_space = getattr(model_space, "built_space", None)
    space = built_space() if callable(built_space) else getattr(model_space, "model_space", model_space)
    if not hasattr(space, "cost") or not hasattr(space, "simplify"):
        raise SRNASError("hierarchical_rl needs an srnas-nni search space (with cost()) in NNI's 'raw' or "
                         "'simplified' model format")
    return space


def _check_space(space: Any) -> None:
    if not hasattr(space, "cost"):
        raise SRNASError("the space has no cost model (space.cost(sample)), which both rewards need")
    controller_levels_of(space)


def _psnr_of(metric: Any) -> float | None:
    if isinstance(metric, Mapping):
        metric = metric.get("psnr", metric.get("default"))
    try:
        value = float(metric)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) or math.isinf(value) else value


# ------------------------------------------------------------------------------------------------
# Multi-trial


class HierarchicalRL(ParetoArchiveMixin, Strategy):
    """Multi-trial hierarchical RL search (module docstring). Build it through :func:`hierarchical_rl`."""

    def __init__(self, preset: str = "hnas", **options: Any):
        super().__init__()
        self.preset = preset
        self.options = resolve_options(preset, options, _MULTI_TRIAL_DEFAULTS)
        self.learner: ReinforceLearner | None = None
        self.reward_fn: Any = None
        self.space: Any = None
        #: sample key -> {"sample", "psnr" (None: failed), "reward"}: every evaluated architecture.
        self.evaluated: dict[str, dict[str, Any]] = {}
        self.failures = 0
        self.duplicates_in_a_row = 0
        self.last_update: dict[str, float] = {}
        self._in_flight: dict[int, tuple[Any, dict[str, Any]]] = {}
        self._final_psnr: dict[int, float | None] = {}
        self._lock = threading.RLock()

    check_space = staticmethod(_check_space)

    def extra_repr(self) -> str:
        return f"preset={self.preset!r}, reward={self.options['reward']!r}"

    def _initialize(self, model_space, engine):
        model_space = super()._initialize(model_space, engine)
        self.space = _sr_space(model_space)
        controller, generator = _build_controller(self.space, self.options)
        self.learner = ReinforceLearner(controller, self.options, generator)
        self.reward_fn = make_reward(self.options["reward"], self.space, self.options)
        engine.register_model_event_callback(ModelEventType.FinalMetric, self._on_final_metric)
        engine.register_model_event_callback(ModelEventType.TrainingEnd, self._on_training_end)
        return model_space

    def _cleanup(self) -> None:
        try:
            self.engine.unregister_model_event_callback(ModelEventType.FinalMetric, self._on_final_metric)
            self.engine.unregister_model_event_callback(ModelEventType.TrainingEnd, self._on_training_end)
        finally:
            super()._cleanup()

    @property
    def controller(self) -> HierarchicalController:
        assert self.learner is not None, "the strategy is not initialized"
        return self.learner.controller

    def _run(self) -> None:
        assert self.learner is not None
        while self.engine.budget_available():
            if not self.wait_for_resource():
                break
            with self._lock:
                rollout = self.learner.sample()
                key = sample_key(rollout.sample)
                in_flight = any(k == key for k, _ in self._in_flight.values())
                if self.options["dedup"] and in_flight:  # its result is on the way (parallel engines)
                    time.sleep(0.05)
                    continue
                if self.options["dedup"] and key in self.evaluated:
                    # the controller learns from the recorded result, without a trial
                    self.duplicates_in_a_row += 1
                    record = self.evaluated[key]
                    self._observe(record["sample"], record["psnr"], record["reward"])
                    if self.duplicates_in_a_row >= self.options["max_duplicates"]:
                        _logger.info("hierarchical_rl: %d duplicate samples in a row; the controller has converged",
                                     self.duplicates_in_a_row)
                        return
                    continue
                self.duplicates_in_a_row = 0
                model = self.model_space.freeze(rollout.sample)
                self._in_flight[id(model)] = (key, rollout.sample)
            self.engine.submit_models(model)

    # -- engine events -----------------------------------------------------------------------

    def _on_final_metric(self, event: FinalMetricEvent) -> None:
        with self._lock:
            self._final_psnr[id(event.model)] = _psnr_of(event.metric)

    def _on_training_end(self, event: TrainingEndEvent) -> None:
        with self._lock:
            entry = self._in_flight.pop(id(event.model), None)
            psnr = self._final_psnr.pop(id(event.model), None)
            if entry is None:  # not ours (another strategy on the same engine)
                return
            key, sample = entry
            if event.status != ModelStatus.Trained or psnr is None:
                _logger.warning("hierarchical_rl: trial failed (%s, psnr %s); reward of a %.1f dB model",
                                event.status.value, psnr, self.options["failure_psnr"])
                self.failures += 1
                psnr = None
            reward = self.reward_fn(self.options["failure_psnr"] if psnr is None else psnr, sample)
            self.evaluated[key] = {"sample": sample, "psnr": psnr, "reward": reward}
            self._observe(sample, psnr, reward)

    def _observe(self, sample: Mapping[str, Any], psnr: float | None, reward: float) -> None:
        assert self.learner is not None
        logs = self.learner.observe(sample, self.options["failure_psnr"] if psnr is None else psnr, reward)
        if logs is not None:
            self.last_update = logs
            _logger.info("hierarchical_rl update %d: %s", self.learner.updates,
                         ", ".join(f"{k} {v:.4g}" for k, v in logs.items()))

    # -- results and state -------------------------------------------------------------------

    def export_probs(self) -> dict[str, dict[Any, float]]:
        """The controller's per-label probabilities along its most likely architecture."""
        return self.controller.greedy().probs

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        with self._lock:
            if self.learner is None:
                return state
            return {**state, "learner": self.learner.state_dict(), "evaluated": json.loads(json.dumps(self.evaluated)),
                    "failures": self.failures, "duplicates_in_a_row": self.duplicates_in_a_row}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        learner = state.pop("learner", None)
        evaluated = state.pop("evaluated", {})
        failures = state.pop("failures", 0)
        duplicates = state.pop("duplicates_in_a_row", 0)
        super().load_state_dict(state)
        if learner is not None:
            assert self.learner is not None, "load_state_dict() comes after initialize()"
            self.learner.load_state_dict(learner)
        self.evaluated = dict(evaluated)
        self.failures = int(failures)
        self.duplicates_in_a_row = int(duplicates)


# ------------------------------------------------------------------------------------------------
# Parameter sharing


class HierarchicalRLLightningModule(BaseOneShotLightningModule):
    """Supernet training on controller-sampled paths, controller training on validation PSNR.

    Manual optimisation: each training batch trains the shared weights of one controller sample;
    every ``controller_every`` weight steps (from ``controller_start``) the controller takes
    ``controller_steps`` steps on validation batches (its own cycling iterator over the evaluator's
    validation loader). The validation loop derives the architecture: ``derive_samples`` controller
    samples scored on every validation batch, the best kept (:meth:`export`).
    """

    def __init__(self, training_module, controller: HierarchicalController, reward_fn: Any,
                 options: Mapping[str, Any], generator: torch.Generator, space_scale: int):
        super().__init__(training_module)
        self.controller = controller
        self.reward_fn = reward_fn
        self.options = dict(options)
        self.generator = generator
        self.scale = int(space_scale)
        self.learner = ReinforceLearner(controller, options, generator)
        self.register_buffer("baseline", torch.tensor(float("nan"), dtype=torch.float64))
        self.register_buffer("weight_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("controller_updates", torch.zeros((), dtype=torch.long))
        self.val_loader: Any = None
        self._val_iterator: Any = None
        self.derived: dict[str, Any] | None = None
        self.derived_scores: list[dict[str, Any]] = []
        self._candidates: list[dict[str, Any]] = []
        self._candidate_psnr: list[list[float]] = []

    def configure_architecture_optimizers(self):
        # Lightning knows (and checkpoints) the controller's optimiser; steps go to the raw optimiser so
        # that max_steps counts weight steps only.
        return self.learner.optimizer

    def _use_path(self, sample: Mapping[str, Any]) -> None:
        for module in self.supernet_modules():
            module.resample(memo=dict(sample))

    def resample(self) -> dict[str, Any]:
        rollout = self.controller.sample(self.generator)
        self._use_path(rollout.sample)
        return rollout.sample

    def training_step(self, batch, batch_idx):
        self.resample()
        output = self.training_module.training_step(batch, batch_idx)
        loss = output["loss"] if isinstance(output, dict) else output
        self.advance_optimization(loss, batch_idx)
        self.advance_lr_schedulers(batch_idx)
        self.weight_steps += 1
        steps = int(self.weight_steps)
        if steps > self.options["controller_start"] and steps % self.options["controller_every"] == 0:
            self._controller_phase()
        return output

    def _next_val_batch(self):
        if self.val_loader is None:
            raise RuntimeError("hierarchical_rl: no validation loader for the controller")
        for _ in range(2):
            if self._val_iterator is None:
                self._val_iterator = iter(self.val_loader)
            try:
                batch = next(self._val_iterator)
                return [t.to(self.device) if isinstance(t, torch.Tensor) else t for t in batch]
            except StopIteration:
                self._val_iterator = None
        raise RuntimeError("hierarchical_rl: the validation loader is empty")

    def _psnr_on(self, batch) -> float:
        from ..evaluation.metrics import psnr

        lr, hr = batch[0], batch[1]
        with torch.no_grad():
            value = psnr(self.training_module(lr).clamp(0, 1), hr, crop=self.scale)
        value = float(value)
        return value if math.isfinite(value) else float(self.options["failure_psnr"])

    def _controller_phase(self) -> None:
        learner = self.learner
        learner.baseline = None if torch.isnan(self.baseline) else float(self.baseline)
        was_training = self.training_module.training
        self.training_module.eval()
        try:
            for _ in range(self.options["controller_steps"]):
                rollout = learner.sample()
                self._use_path(rollout.sample)
                psnr = self._psnr_on(self._next_val_batch())
                logs = learner.observe(rollout.sample, psnr, self.reward_fn(psnr, rollout.sample))
                if logs is not None:
                    self.controller_updates += 1
                    self.log_dict({f"controller/{k}": v for k, v in logs.items()})
        finally:
            self.training_module.train(was_training)
        self.baseline.fill_(float("nan") if learner.baseline is None else learner.baseline)

    # -- derivation (the validation loop) ------------------------------------------------------

    def on_validation_epoch_start(self) -> None:
        derive = torch.Generator()
        derive.manual_seed(int(self.weight_steps) + 1)  # fixed per checkpoint, independent of the sampler
        self._candidates = []
        seen = set()
        for _ in range(self.options["derive_samples"] * 4):
            sample = self.controller.sample(derive).sample
            key = sample_key(sample)
            if key not in seen:
                seen.add(key)
                self._candidates.append(sample)
            if len(self._candidates) == self.options["derive_samples"]:
                break
        self._candidate_psnr = [[] for _ in self._candidates]
        return self.training_module.on_validation_epoch_start()

    def validation_step(self, batch, batch_idx):
        for index, sample in enumerate(self._candidates):
            self._use_path(sample)
            self._candidate_psnr[index].append(self._psnr_on(batch))
        # the training module's own validation (its logged val_psnr) on the best candidate so far
        self._use_path(self._best_candidate() or self._candidates[0])
        return self.training_module.validation_step(batch, batch_idx)

    def _best_candidate(self) -> dict[str, Any] | None:
        scored = [(float(np.mean(p)), s) for p, s in zip(self._candidate_psnr, self._candidates) if p]
        if not scored:
            return None
        if self.options["derive_metric"] == "reward":
            scored = [(self.reward_fn(p, s), s) for p, s in scored]
        return max(scored, key=lambda item: item[0])[1]

    def on_validation_epoch_end(self) -> None:
        best = self._best_candidate()
        if best is not None:
            self.derived = best
            self.derived_scores = []
            for sample, scores in zip(self._candidates, self._candidate_psnr):
                if scores:
                    value = float(np.mean(scores))
                    self.derived_scores.append({"sample": sample, "psnr": value,
                                                "reward": self.reward_fn(value, sample)})
            self.log_probs(self.export_probs())
        return self.training_module.on_validation_epoch_end()

    def export(self) -> dict[str, Any]:
        """The derived architecture (best of the controller's samples on the validation batches); before
        any validation, the controller's most likely architecture."""
        if self.derived is not None:
            return dict(self.derived)
        return self.controller.greedy().sample

    def export_probs(self) -> dict[str, dict[Any, float]]:
        """The controller's per-label probabilities along its most likely architecture."""
        return self.controller.greedy().probs

    def log_probs(self, probs) -> None:
        if getattr(self, "_trainer", None) is None:
            return
        self.log_dict({f"prob/{label}/{value}": p for label, dist in probs.items() for value, p in dist.items()})

    # -- checkpoints ---------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["hierarchical_rl"] = {"generator": self.generator.get_state(), "pending": self.learner.pending,
                                         "updates": self.learner.updates, "samples": self.learner.samples,
                                         "derived": self.derived}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("hierarchical_rl")
        if state:
            self.generator.set_state(state["generator"])
            self.learner.pending = [tuple(p) for p in state["pending"]]
            self.learner.updates = int(state["updates"])
            self.learner.samples = int(state["samples"])
            self.derived = state["derived"]


class HierarchicalRLOneShot(RandomOneShot):
    """Parameter-sharing hierarchical RL (module docstring). Build it through :func:`hierarchical_rl`.

    A ``RandomOneShot`` as far as the spaces' ``extra_oneshot_hooks`` are concerned (path-sampling
    supernet modules), whose Lightning module samples paths from the controller.
    """

    def __init__(self, preset: str = "hnas", **options: Any):
        super().__init__()
        self.preset = preset
        self.options = resolve_options(preset, options, _ONE_SHOT_DEFAULTS)
        self._controller: HierarchicalController | None = None
        self._generator: torch.Generator | None = None
        self._reward_fn: Any = None
        self._scale = 2

    check_space = staticmethod(_check_space)

    def prepare(self, space) -> None:
        """Build the controller, the reward and the cost model from the plain SR space.

        NNI's experiment does this through ``_initialize``; call it directly to drive
        :meth:`configure_oneshot_module` without an experiment (benchmarks, notebooks).
        """
        self._controller, self._generator = _build_controller(space, self.options)
        self._reward_fn = make_reward(self.options["reward"], space, self.options)
        self._scale = int(getattr(space, "scale", 2))
        self._cost = space.cost

    def _initialize(self, model_space, engine):
        # Levels, rewards and cost extremes from the plain space, before it becomes a supernet.
        self.prepare(_sr_space(model_space))
        return super()._initialize(model_space, engine)

    def configure_oneshot_module(self, training_module) -> HierarchicalRLLightningModule:
        assert self._controller is not None and self._generator is not None
        return HierarchicalRLLightningModule(training_module, self._controller, self._reward_fn, self.options,
                                             self._generator, self._scale)

    def mutate_evaluator(self, evaluator):
        mutated = super().mutate_evaluator(evaluator)
        # The controller reads validation batches during training, from its own iterator.
        if evaluator.datamodule is not None:
            mutated.module.val_loader = evaluator.datamodule.val_dataloader()
        else:
            mutated.module.val_loader = evaluator.val_dataloaders
        return mutated

    @property
    def controller(self) -> HierarchicalController:
        assert self._controller is not None, "the strategy is not initialized"
        return self._controller

    def export_probs(self) -> dict[str, dict[Any, float]]:
        return self.oneshot_module.export_probs()

    def shared_weight_evaluations(self, hr_size: tuple[int, int] = (720, 1280)) -> list[dict[str, Any]]:
        """The controller samples scored on the shared weights when the architecture was derived:
        ``{"architecture", "psnr", "params", "multadds"}`` each (cost at ``hr_size``, from the sample).

        These are estimates on a supernet's weights, not trained models: record them as such.
        """
        out = []
        for scored in self.oneshot_module.derived_scores:
            cost = self._cost(scored["sample"], hr_size=hr_size)
            out.append({"architecture": dict(scored["sample"]), "psnr": scored["psnr"], "params": cost.params,
                        "multadds": cost.multadds})
        return out


# ------------------------------------------------------------------------------------------------
# The registered builder


def hierarchical_rl(preset: str = "hnas", parameter_sharing: bool = False, **options: Any):
    """Build the hierarchical RL strategy: multi-trial, or one-shot with ``parameter_sharing``.

    ``preset`` (``hnas`` | ``deconas``) fills every option below that is not given:

    * controller: ``hidden_size``, ``num_layers``, ``init_range``, ``temperature``, ``tanh_constant``,
      ``op_tanh_reduce``;
    * optimiser (Adam): ``learning_rate``, ``betas``, ``weight_decay``, ``grad_clip`` (None);
    * REINFORCE: ``baseline_decay``, ``baseline_target`` (``reward`` | ``psnr``), ``entropy_weight``,
      ``entropy_in_reward``, ``network_level_weight``, ``controller_batch`` (rewards per update, 1);
    * reward: ``reward`` (``hnas`` | ``deconas``), ``reward_lambda``, ``cost_scale``, ``cost_lr_size``,
      ``lambda_cb``, ``complexity_metric`` (``params`` | ``multadds``), ``failure_psnr`` (0.0);
    * ``seed`` (None: fresh entropy);
    * multi-trial only: ``dedup`` (True), ``max_duplicates`` (200);
    * parameter sharing only: ``controller_every`` (20), ``controller_steps`` (30), ``controller_start``
      (0), ``derive_samples`` (10), ``derive_metric`` (``psnr`` as HNAS, or ``reward``).
    """
    if not isinstance(parameter_sharing, bool):
        raise SRNASError(f"hierarchical_rl: parameter_sharing = {parameter_sharing!r} must be true or false")
    if parameter_sharing:
        return HierarchicalRLOneShot(preset, **options)
    return HierarchicalRL(preset, **options)


hierarchical_rl.check_space = _check_space  # type: ignore[attr-defined]
register_strategy("hierarchical_rl", options=OPTIONS)(hierarchical_rl)
