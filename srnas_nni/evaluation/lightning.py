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
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, IterableDataset

from ..nni_compat import nni
from .data import PatchSampler, open_dataset
from .losses import get_loss
from .metrics import psnr

import nni.nas.evaluator.pytorch as nni_pl  # noqa: E402  (after nni_compat's warning filter)

__all__ = ["PatchStream", "PatchLoader", "SRLightningModule", "sr_lightning_evaluator"]


class PatchStream(IterableDataset):
    """``length`` batches of random aligned (LR, HR) patches; the same sequence on every pass.

    Resumable: :meth:`state_dict` says how many batches of the current pass were consumed and the
    sampler's random state there; after :meth:`load_state_dict` the next pass continues from that point
    (the batches a resumed search sees are those an uninterrupted one would have seen).
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
        sampler = PatchSampler(self.dataset, patch_size=self.patch_size, batch_size=self.batch_size,
                               scale=self.dataset.scale, augment=self.augment, seed=self.seed)
        start, resume = 0, getattr(self, "_resume", None)
        if resume is not None:
            start = resume["consumed"]
            sampler.load_state_dict(resume["sampler"])
            self._resume = None
        self._sampler, self._position = sampler, start
        for position in range(start, self.length):
            batch = sampler.next_batch("cpu")
            self._position = position + 1
            yield batch

    def state_dict(self) -> dict:
        """Where the pass stands: batches handed out so far and the sampler's random state after them.

        Lightning fetches nothing ahead from a loader that has a length (it knows where the pass ends),
        so every batch handed out when a checkpoint is written has been trained on.
        """
        sampler = getattr(self, "_sampler", None)
        return {"consumed": getattr(self, "_position", 0), "sampler": sampler.state_dict() if sampler else None}

    def load_state_dict(self, state: dict) -> None:
        """Make the next pass continue from ``state`` (a finished or empty pass restarts from the top)."""
        resumable = state.get("sampler") is not None and 0 < state.get("consumed", 0) < self.length
        self._resume = state if resumable else None


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
        with torch.no_grad():
            value = psnr(self.model(lr).clamp(0, 1), hr, crop=self.scale)
        self._val_psnr.append(value)
        self.log("val_psnr", value, prog_bar=True, batch_size=lr.shape[0])
        return value

    def on_validation_epoch_end(self) -> None:
        if self._val_psnr:
            self.last_val_psnr = sum(self._val_psnr) / len(self._val_psnr)
            self._val_psnr.clear()
            if not self.trainer.sanity_checking:
                nni.report_intermediate_result({"default": self.last_val_psnr, "psnr": self.last_val_psnr})

    def on_fit_end(self) -> None:
        if self.last_val_psnr is not None:
            nni.report_final_result({"default": self.last_val_psnr, "psnr": self.last_val_psnr})

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)


def sr_lightning_evaluator(*, scale: int = 2, train_data: str = "builtin", val_data: str = "builtin:val",
                           steps: int = 100, val_batches: int = 4, patch_size: int = 64, batch_size: int = 16,
                           learning_rate: float = 2e-4, loss: str = "l1", seed: int = 0, skip_bad: bool = False,
                           cache_dir: str | None = None, device: str = "auto",
                           output_dir: str | Path | None = None, checkpoint_dir: str | Path | None = None,
                           checkpoint_every: int = 50) -> nni_pl.Lightning:
    """An NNI ``Lightning`` evaluator of SR supernets: ``steps`` training batches, one epoch.

    Validation runs ``val_batches`` patch batches from ``val_data`` at the end of the epoch.
    ``checkpoint_dir``: where ``last.ckpt`` is written every ``checkpoint_every`` steps (and at the end).
    """
    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    train_set = open_dataset(train_data, scale, split="train", skip_bad=skip_bad, cache_dir=cache_dir)
    val_set = open_dataset(val_data, scale, split="val", skip_bad=skip_bad, cache_dir=cache_dir)
    train_stream = PatchStream(train_set, patch_size=patch_size, batch_size=batch_size, length=steps, seed=seed)
    val_stream = PatchStream(val_set, patch_size=patch_size, batch_size=batch_size, length=max(1, val_batches),
                             seed=seed + 1, augment=False)
    accelerator = "gpu" if device in ("cuda", "gpu") or (device == "auto" and torch.cuda.is_available()) else "cpu"
    callbacks = []
    if checkpoint_dir is not None:
        callbacks.append(ModelCheckpoint(dirpath=str(checkpoint_dir), save_last=True, save_top_k=0,
                                         every_n_train_steps=checkpoint_every, save_on_train_epoch_end=True))
    trainer = nni_pl.Trainer(
        # One pass over the stream is the search: ``steps`` batches. (Not max_steps: DARTS-like
        # strategies step two optimisers per batch and Lightning counts both.)
        max_epochs=1, accelerator=accelerator, devices=1, logger=False,
        enable_checkpointing=bool(callbacks), callbacks=callbacks, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=str(output_dir) if output_dir else None,
    )
    module = SRLightningModule(scale=scale, learning_rate=learning_rate, loss=loss)
    return nni_pl.Lightning(
        module, trainer,
        train_dataloaders=nni.trace(PatchLoader)(train_stream),
        val_dataloaders=nni.trace(PatchLoader)(val_stream),
    )
