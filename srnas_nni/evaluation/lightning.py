"""The SR task as an NNI ``Lightning`` evaluator, for one-shot (supernet) strategies.

NNI's one-shot strategies (DARTS, GumbelDARTS, Proxyless, RandomOneShot, and ours) wrap a
Lightning module and drive its ``training_step`` on batches from a train and a validation loader;
DARTS-like strategies take architecture steps on *validation batches through training_step*, so
both loaders here yield batches of aligned (LR, HR) patches from :class:`PatchStream`.

:func:`sr_lightning_evaluator` builds the evaluator from the same data specifications as
:class:`~srnas_nni.evaluation.evaluator.SREvaluator` (``"builtin"``, a folder, a DIV2K root).
:class:`SRLightningModule` logs ``train_loss`` and ``val_psnr`` (Y-PSNR of the patches, crop =
scale) and reports them to NNI like the multi-trial evaluator does.

With ``checkpoint_dir`` the trainer writes ``last.ckpt`` there every ``checkpoint_every`` training
steps (Lightning writes it atomically). NNI's one-shot strategies report that path as their state and
hand it back to ``fit`` on resume, so an interrupted supernet search continues from its last
checkpoint: weights, architecture parameters, optimisers and whatever else the one-shot module keeps.

**Data-parallel supernet training** (``devices`` > 1 or ``num_nodes`` > 1): :class:`SupernetDDPStrategy`,
Lightning's DDP started by forking this process (``devices`` ranks per node; gloo on CPU, NCCL on
CUDA). Each rank trains on its own patches (:class:`PatchStream` seeds by rank) for ``steps`` batches,
DDP averages every gradient, the architecture parameters' included (they are parameters of the wrapped
module; ``find_unused_parameters`` because one-shot steps leave candidates out), so weights and
architecture parameters stay identical on every rank. When ``fit`` returns, this process holds rank
0's supernet and search state (:class:`SupernetLauncher`), so ``strategy.list_models()`` and the
exports work as after a single-process search.
"""

from __future__ import annotations

import io
import os
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.multiprocessing
from lightning_fabric.plugins.environments import LightningEnvironment
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from torch.utils.data import DataLoader, IterableDataset

from ..nni_adapter.loader import nni
from ..runtime import ieee_float32
from .data import open_dataset
from .losses import get_loss
from .metrics import psnr
from .patches import PatchSampler

from ..nni_adapter.evaluators import nni_pl  # noqa: E402

__all__ = ["PatchStream", "PatchLoader", "SRLightningModule", "SupernetDDPStrategy", "SupernetLauncher",
           "distributed_problem", "rank_seed", "sr_lightning_evaluator"]


class PatchStream(IterableDataset):
    """``length`` batches of random aligned (LR, HR) patches; the same sequence on every pass.

    Under data-parallel training (``torch.distributed`` initialised, world size > 1) every rank
    draws its own sequence, seeded by :func:`rank_seed` from ``(seed, global rank)``: ranks see
    different patches, rank 0 exactly the single-process sequence, and a run is reproducible. Each
    rank still yields ``length`` batches, so a step trains on ``world size x batch_size`` patches.

    Resumable: :meth:`state_dict` says how many batches of the current pass were consumed and the
    sampler's random state there; after :meth:`load_state_dict` the next pass continues from that point
    (the batches a resumed search sees are those an uninterrupted one would have seen). Under
    data-parallel training the state holds every rank's sampler (gathered when it is taken, which
    Lightning does on all ranks together) and each rank resumes its own stream; a rank the saved
    run did not have starts its stream at the saved position.
    """

    def __init__(self, dataset, *, patch_size: int, batch_size: int, length: int, seed: int = 0,
                 augment: bool = True):
        super().__init__()
        self.dataset = dataset
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.length = int(length)
        self.seed = seed
        self.augment = augment

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rank, _ = _distributed_rank()
        sampler = PatchSampler(self.dataset, patch_size=self.patch_size, batch_size=self.batch_size,
                               scale=self.dataset.scale, augment=self.augment, seed=rank_seed(self.seed, rank))
        start, resume = 0, getattr(self, "_resume", None)
        if resume is not None:
            start = resume["consumed"]
            ranks = resume.get("ranks")
            state = resume["sampler"] if ranks is None else (ranks[rank] if rank < len(ranks) else None)
            if state is not None:
                sampler.load_state_dict(state)
            self._resume = None
        self._sampler, self._position = sampler, start
        for position in range(start, self.length):
            batch = sampler.next_batch("cpu")
            self._position = position + 1
            yield batch

    def state_dict(self) -> dict:
        """Where the pass stands: batches handed out so far and the sampler's random state after them.

        Lightning fetches nothing ahead from a loader that has a length (it knows where the pass ends),
        so every batch handed out when a checkpoint is written has been trained on. Under
        data-parallel training ``ranks`` lists every rank's sampler state (``sampler`` is rank 0's).
        """
        sampler = getattr(self, "_sampler", None)
        state = {"consumed": getattr(self, "_position", 0), "sampler": sampler.state_dict() if sampler else None}
        _, world = _distributed_rank()
        if world > 1:
            ranks: list = [None] * world
            torch.distributed.all_gather_object(ranks, state["sampler"])
            state["ranks"], state["sampler"] = ranks, ranks[0]
        return state

    def load_state_dict(self, state: dict) -> None:
        """Make the next pass continue from ``state`` (a finished or empty pass restarts from the top)."""
        resumable = state.get("sampler") is not None and 0 < state.get("consumed", 0) < self.length
        self._resume = state if resumable else None


def rank_seed(seed: int, rank: int) -> int:
    """The patch seed of a data-parallel rank: ``seed`` itself for rank 0, a hash of ``(seed, rank)`` otherwise."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([int(seed), int(rank)]).generate_state(1, np.uint64)[0]) >> 1


def _distributed_rank() -> tuple[int, int]:
    """``(global rank, world size)`` of this process; ``(0, 1)`` outside data-parallel training."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class PatchLoader(DataLoader):
    """A ``DataLoader`` over a :class:`PatchStream` that Lightning can checkpoint and resume mid-pass."""

    def __init__(self, stream: PatchStream):
        super().__init__(stream, batch_size=None)

    def state_dict(self) -> dict:
        return self.dataset.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.dataset.load_state_dict(state)


class SRLightningModule(nni_pl.LightningModule):
    """L1 (or any named loss) training of ``self.model``, Adam, patch Y-PSNR validation."""

    def __init__(self, *, scale: int = 2, learning_rate: float = 2e-4, weight_decay: float = 0.0,
                 loss: str = "l1"):
        super().__init__()
        self.scale = int(scale)
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.loss_name = loss
        self.loss_fn = get_loss(loss)
        self._val_psnr: list[float] = []
        self.last_val_psnr: float | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch, batch_idx):
        lr, hr = batch
        loss = self.loss_fn(self.model(lr), hr)
        self.log("train_loss", loss, prog_bar=True, batch_size=lr.shape[0])
        return loss

    def validation_step(self, batch, batch_idx):
        lr, hr = batch
        with torch.no_grad(), ieee_float32():
            value = psnr(self.model(lr).clamp(0, 1), hr, crop=self.scale)
        self._val_psnr.append(value)
        self.log("val_psnr", value, prog_bar=True, batch_size=lr.shape[0])
        return value

    def on_validation_epoch_end(self) -> None:
        if self._val_psnr:
            self.last_val_psnr = sum(self._val_psnr) / len(self._val_psnr)
            self._val_psnr.clear()
            # Ranks of a data-parallel fit are forked processes: what they report would reach NNI's
            # engine only in their own copy of it, so they report nothing (the final result comes back).
            if not self.trainer.sanity_checking and self.trainer.world_size == 1:
                nni.report_intermediate_result({"default": self.last_val_psnr, "psnr": self.last_val_psnr})

    def on_fit_end(self) -> None:
        # Under data-parallel training this runs in the ranks' processes; the process that started
        # them reports rank 0's value (SupernetLauncher), which is where NNI listens.
        if self.trainer.world_size == 1:
            self.report_final()

    def report_final(self) -> None:
        """Report the last validation PSNR to NNI as the final result (if there was a validation)."""
        if self.last_val_psnr is not None:
            nni.report_final_result({"default": self.last_val_psnr, "psnr": self.last_val_psnr})

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)


def _task_module(module):
    """The evaluator's own module inside a one-shot wrapper (NNI's ``training_module``), or ``module``."""
    return getattr(module, "training_module", module)


def _find_last_checkpoint(trainer) -> None:
    """Point the checkpoint callback at the ``last`` checkpoint in its folder, if it has none yet.

    When the ranks fail or are interrupted nothing comes back from them, yet the checkpoint rank 0
    wrote (or, if it wrote none, the one this fit resumed from) is what a resumed search continues
    from: NNI's strategy state is this callback's ``last_model_path``, as after a single-process crash.
    The folder is the search's own (``checkpoint_dir``).
    """
    callback = trainer.checkpoint_callback
    if not isinstance(callback, ModelCheckpoint) or not callback.save_last or not callback.dirpath:
        return
    path = Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
    if not callback.last_model_path and path.is_file():
        callback.last_model_path = str(path)


class SupernetLauncher(_MultiProcessingLauncher):
    """Lightning's fork launcher, also handing back what a search keeps beyond the weights.

    Lightning returns rank 0's ``state_dict`` (weights, architecture parameters, buffers) and logged
    metrics to the process that called ``fit``. A one-shot search also needs there: the checkpoint
    callback's ``last_model_path`` (NNI's strategy state, which ``--resume`` reads), what the module
    keeps outside its ``state_dict`` (whatever its ``on_save_checkpoint`` writes: the sparsestmax
    radius, the RL controller's derived architecture, ...) and the last validation PSNR, which that
    process reports to NNI as the final result. ``MASTER_PORT``, which Lightning sets for the ranks,
    is restored afterwards, so no port number lingers in the environment.
    """

    def launch(self, function: Callable, *args: Any, trainer=None, **kwargs: Any) -> Any:
        previous = os.environ.get("MASTER_PORT")
        try:
            return super().launch(function, *args, trainer=trainer, **kwargs)
        finally:
            if previous is None:
                os.environ.pop("MASTER_PORT", None)
            else:
                os.environ["MASTER_PORT"] = previous
            if trainer is not None:
                _find_last_checkpoint(trainer)

    def get_extra_results(self, trainer) -> dict[str, Any]:
        extra = super().get_extra_results(trainer)
        module = trainer.lightning_module
        hooks: dict[str, Any] = {}
        module.on_save_checkpoint(hooks)
        callback = trainer.checkpoint_callback
        state = {"hooks": hooks, "last_model_path": getattr(callback, "last_model_path", None),
                 "val_psnr": getattr(_task_module(module), "last_val_psnr", None)}
        buffer = io.BytesIO()
        torch.save(state, buffer)  # bytes, as Lightning sends its metrics: no shared tensor memory
        extra["srnas_search_state"] = buffer.getvalue()
        return extra

    def update_main_process_results(self, trainer, extra: dict[str, Any]) -> None:
        super().update_main_process_results(trainer, extra)
        # Written a moment ago by rank 0 of this very fit, hence read in full.
        state = torch.load(io.BytesIO(extra["srnas_search_state"]), weights_only=False)
        module = trainer.lightning_module
        module.on_load_checkpoint(state["hooks"])
        callback = trainer.checkpoint_callback
        if callback is not None and state["last_model_path"]:
            callback.last_model_path = state["last_model_path"]
        task = _task_module(module)
        if isinstance(task, SRLightningModule):
            task.last_val_psnr = state["val_psnr"]
            task.report_final()


class SupernetDDPStrategy(DDPStrategy):
    """DDP for one-shot supernets: ranks forked from this process, results handed back by :class:`SupernetLauncher`.

    ``find_unused_parameters``: a one-shot step leaves parameters out (candidates with weight 0,
    sampled paths, the weights during an architecture step), which DDP must not wait for.
    The cluster environment is Lightning's plain one (``MASTER_ADDR``, ``MASTER_PORT``,
    ``NODE_RANK``), so a SLURM or torchrun environment around the run does not reassign the ranks
    this process forks.
    """

    def __init__(self, *, backend: str, timeout_s: float = 1800.0):
        super().__init__(cluster_environment=LightningEnvironment(), start_method="fork",
                         find_unused_parameters=True, process_group_backend=backend,
                         timeout=timedelta(seconds=timeout_s))

    def _configure_launcher(self) -> None:
        self._launcher = SupernetLauncher(self, start_method="fork")


def _accelerator(device: str) -> str:
    return "gpu" if device in ("cuda", "gpu") or (device == "auto" and torch.cuda.is_available()) else "cpu"


def distributed_problem(devices: int, num_nodes: int, device: str = "auto") -> str | None:
    """Why this machine cannot train a supernet on ``devices`` x ``num_nodes`` ranks, or None."""
    if devices == 1 and num_nodes == 1:
        return None
    if "fork" not in torch.multiprocessing.get_all_start_methods():
        return (f"{devices} device(s) x {num_nodes} node(s): data-parallel supernet training forks its ranks, "
                "and this platform cannot fork")
    if not torch.distributed.is_available():
        return f"{devices} device(s) x {num_nodes} node(s): this torch build has no torch.distributed"
    if _accelerator(device) == "gpu":
        visible = torch.cuda.device_count()
        if devices > visible:
            return f"{devices} GPUs asked for, {visible} visible"
        if not torch.distributed.is_nccl_available():
            return f"{devices} GPUs: this torch build has no NCCL backend"
    elif not torch.distributed.is_gloo_available():
        return f"{devices} CPU processes: this torch build has no gloo backend"
    return None


def sr_lightning_evaluator(*, scale: int = 2, train_data: str = "builtin", val_data: str = "builtin:val",
                           steps: int = 100, val_batches: int = 4, patch_size: int = 64, batch_size: int = 16,
                           learning_rate: float = 2e-4, loss: str = "l1", seed: int = 0, skip_bad: bool = False,
                           cache_dir: str | None = None, device: str = "auto",
                           output_dir: str | Path | None = None, checkpoint_dir: str | Path | None = None,
                           checkpoint_every: int = 50, devices: int = 1, num_nodes: int = 1,
                           distributed_timeout: float = 1800.0) -> nni_pl.Lightning:
    """An NNI ``Lightning`` evaluator of SR supernets: ``steps`` training batches, one epoch.

    Validation runs ``val_batches`` patch batches from ``val_data`` at the end of the epoch.
    ``checkpoint_dir``: where ``last.ckpt`` is written every ``checkpoint_every`` steps (and at the end).

    ``devices`` > 1 or ``num_nodes`` > 1 train the supernet data-parallel (:class:`SupernetDDPStrategy`):
    ``devices`` processes per node (CPU processes on gloo, or that many GPUs on NCCL), each running
    ``steps`` batches of ``batch_size`` patches of its own, so one step trains on
    ``devices * num_nodes * batch_size`` patches. ``num_nodes`` > 1: the same search is started on
    every node with ``MASTER_ADDR`` (node 0's address), ``MASTER_PORT`` and ``NODE_RANK`` set.
    ``distributed_timeout``: seconds a rank waits for the others in a collective before failing.
    """
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    for name, value in (("devices", devices), ("num_nodes", num_nodes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    train_set = open_dataset(train_data, scale, split="train", skip_bad=skip_bad, cache_dir=cache_dir)
    val_set = open_dataset(val_data, scale, split="val", skip_bad=skip_bad, cache_dir=cache_dir)
    train_stream = PatchStream(train_set, patch_size=patch_size, batch_size=batch_size, length=steps, seed=seed)
    val_stream = PatchStream(val_set, patch_size=patch_size, batch_size=batch_size, length=max(1, val_batches),
                             seed=seed + 1, augment=False)
    accelerator = _accelerator(device)
    strategy: Any = "auto"
    if devices > 1 or num_nodes > 1:
        problem = distributed_problem(devices, num_nodes, device)
        if problem is not None:
            raise ValueError(problem)
        strategy = SupernetDDPStrategy(backend="nccl" if accelerator == "gpu" else "gloo",
                                       timeout_s=distributed_timeout)
    callbacks = []
    if checkpoint_dir is not None:
        callbacks.append(ModelCheckpoint(dirpath=str(checkpoint_dir), save_last=True, save_top_k=0,
                                         every_n_train_steps=checkpoint_every, save_on_train_epoch_end=True))
    trainer = nni_pl.Trainer(
        # One pass over the stream is the search: ``steps`` batches. (Not max_steps: DARTS-like
        # strategies step two optimisers per batch and Lightning counts both.)
        max_epochs=1, accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy, logger=False,
        enable_checkpointing=bool(callbacks), callbacks=callbacks, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=str(output_dir) if output_dir else None,
    )
    module = SRLightningModule(scale=scale, learning_rate=learning_rate, loss=loss)
    return nni_pl.Lightning(
        module, trainer,
        train_dataloaders=nni.trace(PatchLoader)(train_stream),
        val_dataloaders=nni.trace(PatchLoader)(val_stream),
    )
