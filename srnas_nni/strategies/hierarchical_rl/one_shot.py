"""Parameter-sharing hierarchical RL (``parameter_sharing: true``): HNAS's supernet search.

:class:`HierarchicalRLOneShot` is a one-shot strategy: NNI ``RandomOneShot``'s path-sampling supernet
plus the space's ``extra_oneshot_hooks``; it needs the Lightning evaluator of
:mod:`srnas_nni.evaluation.lightning`. Its :class:`HierarchicalRLLightningModule` runs, at every
training step, the path the controller samples; every ``controller_every`` weight steps the
controller takes ``controller_steps`` REINFORCE steps (:mod:`.reinforce`), each on the PSNR of one
sampled path on one validation batch with the shared weights (HNAS's alternation of supernet and
controller epochs). At the end, the derived architecture is the best of ``derive_samples`` controller
samples on the validation batches (HNAS ``trainer.derive``).

**State.** The Lightning module keeps all of the search state (parameters, buffers, the controller
optimiser, ``on_save_checkpoint``), so Lightning checkpoints resume it.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch

from ...nni_adapter.oneshot import BaseOneShotLightningModule, RandomOneShot
from ...study.keys import canonical_sample
from .controller import HierarchicalController, build_controller
from .options import HierarchicalRLOptions
from .reinforce import ReinforceLearner
from .rewards import make_reward
from .search_space import check_space, sr_space_of

__all__ = ["HierarchicalRLLightningModule", "HierarchicalRLOneShot"]


class HierarchicalRLLightningModule(BaseOneShotLightningModule):
    """Supernet training on controller-sampled paths, controller training on validation PSNR.

    Manual optimisation: each training batch trains the shared weights of one controller sample;
    every ``controller_every`` weight steps (from ``controller_start``) the controller takes
    ``controller_steps`` steps on validation batches (its own cycling iterator over the evaluator's
    validation loader). The validation loop derives the architecture: ``derive_samples`` controller
    samples scored on every validation batch, the best kept (:meth:`export`).
    """

    def __init__(self, training_module, controller: HierarchicalController, reward_fn: Any,
                 options: HierarchicalRLOptions, generator: torch.Generator, space_scale: int):
        super().__init__(training_module)
        self.controller = controller
        self.reward_fn = reward_fn
        self.options = options
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
        if steps > self.options.controller_start and steps % self.options.controller_every == 0:
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
        from ...evaluation.metrics import psnr

        lr, hr = batch[0], batch[1]
        with torch.no_grad():
            value = psnr(self.training_module(lr).clamp(0, 1), hr, crop=self.scale)
        value = float(value)
        return value if math.isfinite(value) else float(self.options.failure_psnr)

    def _controller_phase(self) -> None:
        learner = self.learner
        learner.baseline = None if torch.isnan(self.baseline) else float(self.baseline)
        was_training = self.training_module.training
        self.training_module.eval()
        try:
            for _ in range(self.options.controller_steps):
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
        for _ in range(self.options.derive_samples * 4):
            sample = self.controller.sample(derive).sample
            key = canonical_sample(sample)
            if key not in seen:
                seen.add(key)
                self._candidates.append(sample)
            if len(self._candidates) == self.options.derive_samples:
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
        if self.options.derive_metric == "reward":
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
    """Parameter-sharing hierarchical RL (module docstring) with ``options`` of that mode.

    ``get("hierarchical_rl", parameter_sharing=True, ...)``
    (:func:`~srnas_nni.strategies.hierarchical_rl.hierarchical_rl`) builds it.

    A ``RandomOneShot`` as far as the spaces' ``extra_oneshot_hooks`` are concerned (path-sampling
    supernet modules), whose Lightning module samples paths from the controller.
    """

    def __init__(self, options: HierarchicalRLOptions):
        super().__init__()
        self.options = options
        self._controller: HierarchicalController | None = None
        self._generator: torch.Generator | None = None
        self._reward_fn: Any = None
        self._scale = 2
        self._cost: Any = None

    check_space = staticmethod(check_space)

    def prepare(self, space) -> None:
        """Build the controller, the reward and the cost model from the plain SR space.

        NNI's experiment does this through ``_initialize``; call it directly to drive
        :meth:`configure_oneshot_module` without an experiment (benchmarks, notebooks).
        """
        self._controller, self._generator = build_controller(space, self.options)
        self._reward_fn = make_reward(self.options.reward, space, self.options)
        self._scale = int(getattr(space, "scale", 2))
        self._cost = space.cost

    def _initialize(self, model_space, engine):
        # Levels, rewards and cost extremes from the plain space, before it becomes a supernet.
        self.prepare(sr_space_of(model_space))
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
