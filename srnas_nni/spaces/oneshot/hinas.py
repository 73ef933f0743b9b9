"""HiNAS's supernet forms: the width trellis (:class:`~srnas_nni.spaces.hinas.WidthTrellis`) and the
nodes (:class:`~srnas_nni.spaces.hinas.HiNASNode`) under one-shot strategies.

* ``RandomOneShot``: :class:`WidthTrellisPathSampling` samples one width path (consistent with the
  memo) and runs only its cells; op choices use NNI's path sampling, ``inputs`` (which returns two
  tensors) :class:`~srnas_nni.spaces.oneshot.common.PathSamplingInputSelect`.
* ``DARTS`` (and ``GumbelDARTS``): :class:`WidthTrellisDifferentiable` is the paper's supernet:
  every reachable (layer, width) cell, each cell's input the beta-weighted sum of the router
  outputs arriving at its width, summed *before* the cell so each (layer, width) cell runs once
  (cell sharing); the path is exported by Viterbi over the transition probabilities from level 0.
  :class:`HiNASNodeDifferentiable` mixes every earlier state with every op (plus ``zero``, as
  DARTS's ``none``) with one alpha per edge shared by all the widths of a layer (LWAS); export
  keeps the top-2 edges per node by their best non-zero op weight, then that op.

Either supernet's ``freeze(exported)`` gives the plain chain with the supernet's trained weights
for the chosen path and ops (``space.freeze`` gives fresh weights for the same architecture).
``Proxyless`` is not supported (no form: NNI's check names the trellis).
"""

from __future__ import annotations

import math
import random
from typing import Any, Iterable

import torch
from torch import nn

from ...nni_adapter.oneshot import BaseSuperNetModule
from ...models.ops import Zero
from ..base import InputSelect, SelectedInputs
from ..hinas import (
    LEVEL_STEPS, WIDTH_MOVES, HiNASNode, WidthPathBody, WidthTrellis, decode_width_path, freeze_width_path, make_op,
    move_between,
)
from .common import PathSamplingInputSelect  # noqa: F401  (this space's form of its InputSelect, see SUPERNET_FORMS)

__all__ = ["WidthTrellisPathSampling", "WidthTrellisDifferentiable", "HiNASNodeDifferentiable"]


class _TrellisSupernet(BaseSuperNetModule):
    """What both one-shot versions of :class:`WidthTrellis` share: its modules and labels."""

    def __init__(self, trellis: WidthTrellis):
        super().__init__()
        self.init_kwargs = dict(trellis.init_kwargs)
        self.layout = trellis.layout
        self.width_choices = [self.add_mutable(choice) for choice in trellis.width_choices]
        self.labels = [choice.label for choice in self.width_choices]
        self.routers = trellis.routers
        self.cells = trellis.cells
        self.tails = trellis.tails

    def _step(self, layer: int, source: int, level: int, previous_output: torch.Tensor,
              previous_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cell input and the preprocessed s1 of cell (layer, level) coming from ``source``."""
        cell_input = self.routers[f"{layer}_{source}_{level}"](previous_output)
        s1 = self.cells[f"{layer}_{level}"].preprocess1[str(source)](previous_input)
        return cell_input, s1

    def freeze(self, sample: dict[str, Any]) -> WidthPathBody:
        """The sampled path as a plain chain, keeping the supernet's trained weights."""
        self.validate(sample)
        return freeze_width_path(self, sample)


class WidthTrellisPathSampling(_TrellisSupernet):
    """RandomOneShot version: one width path per ``resample``, only its cells run."""

    def __init__(self, trellis: WidthTrellis):
        super().__init__(trellis)
        self._levels: list[int] | None = None

    @classmethod
    def mutate(cls, module, name, memo, mutate_kwargs):
        if type(module) is WidthTrellis:
            return cls(module)

    def _random_moves(self, memo: dict[str, Any]) -> dict[str, str]:
        """Moves for the labels not in ``memo``, uniformly among the moves that stay on the trellis."""
        sampled, level = {}, 0
        for label in self.labels:
            if label in memo:
                move = memo[label]
            else:
                move = random.choice([m for m in WIDTH_MOVES if 0 <= level + LEVEL_STEPS[m] < self.layout.num_levels])
                sampled[label] = move
            level = min(self.layout.num_levels - 1, max(0, level + LEVEL_STEPS[move]))
        return sampled

    def resample(self, memo: dict[str, Any]) -> dict[str, Any]:
        sampled = self._random_moves(memo)
        self._levels = decode_width_path([memo.get(label, sampled.get(label)) for label in self.labels],
                                         self.layout.num_levels)
        return sampled

    def export(self, memo: dict[str, Any]) -> dict[str, Any]:
        return self._random_moves(memo)

    def export_probs(self, memo: dict[str, Any]) -> dict[str, Any]:
        return {}

    def forward(self, stem: torch.Tensor) -> torch.Tensor:
        if self._levels is None:
            raise RuntimeError("resample() the supernet before running it")
        previous_output, previous_input, source = stem, stem, 0
        for layer, level in enumerate(self._levels):
            cell_input, s1 = self._step(layer, source, level, previous_output, previous_input)
            previous_output = self.cells[f"{layer}_{level}"](cell_input, s1)
            previous_input, source = cell_input, level
        return self.tails[str(self._levels[-1])](previous_output)


class WidthTrellisDifferentiable(_TrellisSupernet):
    """DARTS version: the weighted trellis with cell sharing, Viterbi export.

    ``beta[l][v]`` (arch parameters) are the logits of the moves of the router from level ``v`` of
    layer ``l - 1`` (the stem for ``l = 0``); moves off the trellis or to unreachable levels are
    masked out of the softmax (the paper masks them with -50).
    """

    def __init__(self, trellis: WidthTrellis, softmax: nn.Module):
        super().__init__(trellis)
        self._softmax = softmax
        self._arch_beta = nn.ParameterDict({
            f"{layer}_{source}": nn.Parameter(torch.randn(len(WIDTH_MOVES)) * 1e-3)
            for layer in range(self.layout.num_layers) for source in self.layout.reachable[layer - 1]
        })

    @classmethod
    def mutate(cls, module, name, memo, mutate_kwargs):
        if type(module) is WidthTrellis:
            return cls(module, mutate_kwargs.get("softmax", nn.Softmax(-1)))

    def arch_parameters(self) -> Iterable[nn.Parameter]:
        yield from self._arch_beta.values()

    def resample(self, memo: dict[str, Any]) -> dict[str, Any]:
        return {}  # nothing to sample: every path is weighted

    def transition_probs(self) -> dict[tuple[int, int], dict[int, torch.Tensor]]:
        """``{(layer, source): {target level: probability}}`` over the allowed moves."""
        out = {}
        for layer in range(self.layout.num_layers):
            for source in self.layout.reachable[layer - 1]:
                targets = self.layout.targets(layer, source)
                logits = self._arch_beta[f"{layer}_{source}"]
                picked = torch.stack([logits[target - source + 1] for target in targets])
                probs = self._softmax(picked)
                out[(layer, source)] = {target: probs[i] for i, target in enumerate(targets)}
        return out

    def label_probabilities(self) -> dict[str, torch.Tensor]:
        """Differentiable move probabilities of each width label, from the source level the Viterbi
        path takes into that layer (0 for moves off the trellis), in ``WIDTH_MOVES`` order."""
        levels = self.viterbi_levels()
        probs = self.transition_probs()
        out = {}
        for i, label in enumerate(self.labels):
            source = levels[i - 1] if i else 0
            by_move = {move_between(source, target): p for target, p in probs[(i, source)].items()}
            zero = next(iter(by_move.values())) * 0
            out[label] = torch.stack([by_move.get(move, zero) for move in WIDTH_MOVES])
        return out

    def forward(self, stem: torch.Tensor) -> torch.Tensor:
        probs = self.transition_probs()
        outputs, inputs = {0: stem}, {0: stem}
        for layer in range(self.layout.num_layers):
            new_outputs, new_inputs = {}, {}
            for level in self.layout.reachable[layer]:
                cell_input = s1 = None
                for source in self.layout.sources(layer, level):
                    if source not in outputs:
                        continue  # that level got no weight in the previous layer
                    weight = probs[(layer, source)][level]
                    if not bool(weight.detach() != 0):
                        continue  # exactly-zero transition (sparse relaxation): not computed
                    x, s = self._step(layer, source, level, outputs[source], inputs[source])
                    cell_input = weight * x if cell_input is None else cell_input + weight * x
                    s1 = weight * s if s1 is None else s1 + weight * s
                if cell_input is None:
                    continue
                # Cell sharing: the weighted inputs are summed first, the cell runs once.
                new_outputs[level] = self.cells[f"{layer}_{level}"](cell_input, s1)
                new_inputs[level] = cell_input
            outputs, inputs = new_outputs, new_inputs
        result = None
        for level, features in outputs.items():
            image = self.tails[str(level)](features)
            result = image if result is None else result + image
        return result

    def viterbi_levels(self) -> list[int]:
        """The most likely width path from level 0 under the transition probabilities."""
        with torch.no_grad():
            probs = self.transition_probs()
            score, back = {0: 0.0}, []
            for layer in range(self.layout.num_layers):
                new_score, pointers = {}, {}
                for level in self.layout.reachable[layer]:
                    best = max(self.layout.sources(layer, level),
                               key=lambda v: score[v] + math.log(float(probs[(layer, v)][level]) + 1e-30))
                    new_score[level] = score[best] + math.log(float(probs[(layer, best)][level]) + 1e-30)
                    pointers[level] = best
                score = new_score
                back.append(pointers)
        level = max(score, key=score.get)
        levels = [level]
        for pointers in reversed(back[1:]):
            level = pointers[level]
            levels.append(level)
        return levels[::-1]

    def export(self, memo: dict[str, Any]) -> dict[str, Any]:
        if all(label in memo for label in self.labels):
            return {}
        levels = self.viterbi_levels()
        return {label: move_between(levels[i - 1] if i else 0, levels[i])
                for i, label in enumerate(self.labels) if label not in memo}

    def export_probs(self, memo: dict[str, Any]) -> dict[str, Any]:
        """Move probabilities of each layer's router on the Viterbi path."""
        levels = self.viterbi_levels()
        probs = self.transition_probs()
        out = {}
        for i, label in enumerate(self.labels):
            if label in memo:
                continue
            source = levels[i - 1] if i else 0
            out[label] = {move: 0.0 for move in WIDTH_MOVES}
            for target, p in probs[(i, source)].items():
                out[label][move_between(source, target)] = float(p.detach())
        return out


class HiNASNodeDifferentiable(BaseSuperNetModule):
    """DARTS version of :class:`HiNASNode`: every earlier state through every op (plus ``zero``).

    One alpha per (layer, node, edge), kept in the hook memo under ``layer{l}/node{i}/edge{k}`` so
    that every width copy of the layer uses the same one (LWAS). Export: the two edges with the
    largest non-zero op weight, and that op on each.
    """

    def __init__(self, node: HiNASNode, alphas: list[nn.Parameter], softmax: nn.Module):
        super().__init__()
        self.inputs_choice = self.add_mutable(node.inputs.choice)
        self.op_choices = [self.add_mutable(node.op0.choice), self.add_mutable(node.op1.choice)]
        self.inputs_label = node.inputs.label
        self.op_labels = [node.op0.label, node.op1.label]
        self.choice_ops = list(node.op_names)
        self.edge_ops = self.choice_ops + ([] if "zero" in self.choice_ops else ["zero"])
        self.edges = nn.ModuleList(
            nn.ModuleDict({name: make_op(name, node.channels, node.batch_norm)
                           for name in self.edge_ops if name != "zero"})
            for _ in range(node.num_states)
        )
        self._arch_alpha = nn.ParameterList(alphas)
        self._softmax = softmax

    @classmethod
    def mutate(cls, module, name, memo, mutate_kwargs):
        if type(module) is HiNASNode and isinstance(module.inputs, InputSelect):
            prefix = str(module.inputs.label).rsplit("/", 1)[0]
            n_ops = len(module.op_names) + (0 if "zero" in module.op_names else 1)
            alphas = []
            for k in range(module.num_states):
                key = f"{prefix}/edge{k}"
                if key not in memo:
                    memo[key] = nn.Parameter(torch.randn(n_ops) * 1e-3)
                alphas.append(memo[key])
            return cls(module, alphas, mutate_kwargs.get("softmax", nn.Softmax(-1)))

    def arch_parameters(self) -> Iterable[nn.Parameter]:
        yield from self._arch_alpha

    def resample(self, memo: dict[str, Any]) -> dict[str, Any]:
        return {}

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        total = None
        for state, ops, alpha in zip(states, self.edges, self._arch_alpha):
            weights = self._softmax(alpha)
            active = (weights.detach() != 0).tolist()
            for index, op_name in enumerate(self.edge_ops):
                if op_name == "zero" or not active[index]:
                    continue  # 'zero' adds nothing; an exactly-zero weight (sparse relaxation) is skipped
                term = weights[index] * ops[op_name](state)
                total = term if total is None else total + term
        if total is None:  # every op of every edge weighs exactly 0 (or is 'zero'): the node outputs 0
            total = torch.zeros_like(states[0])
        return total

    def label_probabilities(self) -> dict[str, torch.Tensor]:
        """Differentiable distributions of this node's labels for an expected-cost penalty.

        ``inputs``: each edge's strongest non-``zero`` op weight, normalised over the edges;
        ``op{j}``: the op weights of the j-th currently exported edge, normalised over the node's
        choice ops (``zero`` is never a derived op unless it is one of them).
        """
        kept = self.export({})[self.inputs_label]
        strengths, per_edge = [], []
        for alpha in self._arch_alpha:
            weights = self._softmax(alpha)
            non_zero = torch.stack([weights[i] for i, name in enumerate(self.edge_ops) if name != "zero"])
            strengths.append(non_zero.max())
            choice = torch.stack([weights[self.edge_ops.index(name)] for name in self.choice_ops])
            per_edge.append(choice / choice.sum().clamp_min(1e-12))
        strength = torch.stack(strengths)
        out = {self.inputs_label: strength / strength.sum().clamp_min(1e-12)}
        for label, edge in zip(self.op_labels, kept):
            out[label] = per_edge[edge]
        return out

    def _edge_strengths(self) -> list[tuple[float, str]]:
        """Per edge: (best non-zero op weight, that op)."""
        out = []
        with torch.no_grad():
            for alpha in self._arch_alpha:
                weights = self._softmax(alpha)
                best = max((float(weights[i]), name) for i, name in enumerate(self.edge_ops) if name != "zero")
                out.append(best)
        return out

    def export(self, memo: dict[str, Any]) -> dict[str, Any]:
        if self.inputs_label in memo:
            return {}
        strengths = self._edge_strengths()
        kept = sorted(sorted(range(len(strengths)), key=lambda k: -strengths[k][0])[:2])
        result: dict[str, Any] = {self.inputs_label: kept}
        for label, edge in zip(self.op_labels, kept):
            result[label] = strengths[edge][1]
        return result

    def freeze(self, sample: dict[str, Any]) -> HiNASNode:
        """A plain node with the sampled edges' trained ops (weights kept)."""
        self.validate(sample)
        chosen = self.inputs_choice.freeze(sample)
        ops = []
        for edge, choice in zip(chosen, self.op_choices):
            name = choice.freeze(sample)
            ops.append(Zero() if name == "zero" else self.edges[edge][name])
        return HiNASNode.assemble(SelectedInputs(chosen, "none"), *ops)

    def export_probs(self, memo: dict[str, Any]) -> dict[str, Any]:
        if self.inputs_label in memo:
            return {}
        strengths = self._edge_strengths()
        total = sum(s for s, _ in strengths) or 1.0
        return {self.inputs_label: {k: s / total for k, (s, _) in enumerate(strengths)}}
