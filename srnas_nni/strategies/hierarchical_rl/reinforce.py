"""REINFORCE with an EMA baseline: how the controller learns from rewards, in both modes.

:class:`ReinforceLearner` holds the controller, its Adam optimiser, the baseline, the queue of rewards
not yet learned from and the sampling generator. Every ``controller_batch`` rewards it takes one
optimiser step: ``b <- decay * b + (1 - decay) * target`` (``b`` = the first target at the start),
advantage ``A = R - b``, loss ``-(sum_l w_l log p_l) A - entropy_weight * sum_l w_l H_l`` over the
levels ``l`` of the sample, with ``w = network_level_weight`` for the network level (HNAS: 10 for the
position) and 1 for the others. The target is ``R`` (HNAS) or the PSNR (``baseline_target: psnr``,
DeCoNAS); with ``entropy_in_reward`` (DeCoNAS) the entropy bonus is added to the reward, without
gradient, instead of to the loss.

Log-probabilities are recomputed with gradients at update time by replaying the stored sample, so
queued rewards survive a checkpoint (:meth:`ReinforceLearner.state_dict`: plain data and tensors).
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .controller import HierarchicalController, Rollout
from .options import HierarchicalRLOptions

__all__ = ["ReinforceLearner"]


class ReinforceLearner:
    """Controller + Adam + EMA baseline + the sampling generator: everything both modes update and save.

    ``observe(sample, psnr, reward)`` queues a reward; every ``controller_batch`` rewards :meth:`update`
    takes one optimiser step on the queued samples (the loss: module docstring).
    """

    def __init__(self, controller: HierarchicalController, options: HierarchicalRLOptions, generator: torch.Generator):
        self.controller = controller
        self.options = options
        self.generator = generator
        self.optimizer = self.make_optimizer(controller, options)
        self.baseline: float | None = None
        self.pending: list[tuple[dict[str, Any], float, float]] = []
        self.updates = 0
        self.samples = 0

    @staticmethod
    def make_optimizer(controller: nn.Module, options: HierarchicalRLOptions) -> torch.optim.Optimizer:
        return torch.optim.Adam(controller.parameters(), lr=options.learning_rate, betas=tuple(options.betas),
                                weight_decay=options.weight_decay)

    def sample(self) -> Rollout:
        self.samples += 1
        return self.controller.sample(self.generator)

    def observe(self, sample: Mapping[str, Any], psnr: float, reward: float) -> dict[str, float] | None:
        self.pending.append((dict(sample), float(psnr), float(reward)))
        if len(self.pending) >= self.options.controller_batch:
            return self.update()
        return None

    def level_weights(self) -> list[float]:
        count = len(self.controller.levels)
        weights = [1.0] * count
        if count > 1:
            weights[-1] = float(self.options.network_level_weight)
        return weights

    def loss(self, batch: Sequence[tuple[Mapping[str, Any], float, float]]) -> tuple[torch.Tensor, dict[str, float]]:
        """The REINFORCE loss of ``batch`` (baseline advanced per sample); logs for the caller."""
        options = self.options
        weights = self.level_weights()
        decay = options.baseline_decay
        total = None
        rewards, advantages, entropies = [], [], []
        for sample, psnr, reward in batch:
            rollout = self.controller.evaluate(sample)
            log_prob = sum(w * lp for w, lp in zip(weights, rollout.log_probs))
            entropy = sum(w * e for w, e in zip(weights, rollout.entropies))
            if options.entropy_in_reward:
                reward = reward + options.entropy_weight * float(entropy.detach())
            target = psnr if options.baseline_target == "psnr" else reward
            self.baseline = target if self.baseline is None else decay * self.baseline + (1 - decay) * target
            advantage = reward - self.baseline
            term = -log_prob * advantage
            if not options.entropy_in_reward:
                term = term - options.entropy_weight * entropy
            total = term if total is None else total + term
            rewards.append(reward)
            advantages.append(advantage)
            entropies.append(float(entropy.detach()))
        assert total is not None
        logs = {"reward": float(np.mean(rewards)), "advantage": float(np.mean(advantages)),
                "entropy": float(np.mean(entropies)), "baseline": float(self.baseline)}
        return total / len(batch), logs

    def update(self) -> dict[str, float]:
        batch, self.pending = self.pending, []
        self.controller.train()
        self.optimizer.zero_grad()
        loss, logs = self.loss(batch)
        loss.backward()
        if self.options.grad_clip:
            nn.utils.clip_grad_norm_(self.controller.parameters(), self.options.grad_clip)
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
