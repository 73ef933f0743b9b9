"""The hierarchical controller (HNAS, DeCoNAS): one LSTM policy per level of a space's decisions.

The space's decisions are grouped into levels by ``space.controller_levels()`` (cell levels first, the
network level last; :func:`controller_levels_of`). Each level has its own stacked ``LSTMCell`` and
takes one step per decision, starting from a learned start input; the last level (when there are
several) starts instead from a linear map of the concatenated final hidden states of all the other
levels (HNAS's position LSTM reads the two cell LSTMs' final states).

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

The controller samples with its own CPU ``torch.Generator`` (:func:`build_controller` seeds it with
the option ``seed``), so the global torch and numpy generators are neither used nor disturbed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ...errors import SRNASError
from ...nni_adapter.loader import nni  # noqa: F401  (NNI imported under our warning filter)
from ...study.keys import plain_value
from .options import HierarchicalRLOptions

from nni.mutable import Categorical, CategoricalMultiple  # noqa: E402

__all__ = ["controller_levels_of", "ControllerConfig", "Rollout", "HierarchicalController", "build_controller"]


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


@dataclass
class ControllerConfig:
    """The controller's shape and logits; the fields are the options of the same names."""

    hidden_size: int = 100
    num_layers: int = 1
    init_range: float = 0.1
    temperature: float | None = None
    tanh_constant: float | None = None
    op_tanh_reduce: float = 2.5

    @classmethod
    def from_options(cls, options: HierarchicalRLOptions) -> ControllerConfig:
        return cls(**{option.name: getattr(options, option.name) for option in dataclasses.fields(cls)})


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


def build_controller(space: Any, options: HierarchicalRLOptions) -> tuple[HierarchicalController, torch.Generator]:
    """The controller of ``space``'s levels and its sampling generator, seeded by ``options.seed``."""
    levels = controller_levels_of(space)
    generator = torch.Generator()
    seed = options.seed if options.seed is not None else int(np.random.SeedSequence().generate_state(1)[0])
    generator.manual_seed(int(seed))
    return HierarchicalController(levels, ControllerConfig.from_options(options), generator=generator), generator
