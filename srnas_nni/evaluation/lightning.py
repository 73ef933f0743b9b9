"""The SR task as an NNI ``Lightning`` evaluator, for one-shot (supernet) strategies.

NNI's one-shot strategies (DARTS, GumbelDARTS, Proxyless, RandomOneShot, and ours) wrap a
Lightning module and drive its ``training_step`` on batches from a train and a validation loader;
DARTS-like strategies take architecture steps on *validation batches through training_step*, so
both loaders here yield batches of aligned (LR, HR) patches from :class:`PatchStream`.

:func:`sr_lightning_evaluator` builds the evaluator from the same data specifications as
:class:`~srnas_nni.evaluation.evaluator.SREvaluator` (``"builtin"``, a folder, a DIV2K root).
:class:`SRLightningModule` logs ``train_loss`` and ``val_psnr`` (Y-PSNR of the patches, crop =
scale) and reports them to NNI like the multi-trial evaluator does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import IterableDataset

from ..nni_compat import nni
from .data import PatchSampler, open_dataset
from .losses import get_loss
from .metrics import psnr

import nni.nas.evaluator.pytorch as nni_pl  # noqa: E402  (after nni_compat's warning filter)

__all__ = ["PatchStream", "SRLightningModule", "sr_lightning_evaluator"]


class PatchStream(IterableDataset):
    """``length`` batches of random aligned (LR, HR) patches; the same sequence on every pass."""

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
        for _ in range(self.length):
            yield sampler.next_batch("cpu")


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
                           output_dir: str | Path | None = None) -> nni_pl.Lightning:
    """An NNI ``Lightning`` evaluator of SR supernets: ``steps`` training batches, one epoch.

    Validation runs ``val_batches`` patch batches from ``val_data`` at the end of the epoch.
    """
    train_set = open_dataset(train_data, scale, split="train", skip_bad=skip_bad, cache_dir=cache_dir)
    val_set = open_dataset(val_data, scale, split="val", skip_bad=skip_bad, cache_dir=cache_dir)
    train_stream = PatchStream(train_set, patch_size=patch_size, batch_size=batch_size, length=steps, seed=seed)
    val_stream = PatchStream(val_set, patch_size=patch_size, batch_size=batch_size, length=max(1, val_batches),
                             seed=seed + 1, augment=False)
    accelerator = "gpu" if device in ("cuda", "gpu") or (device == "auto" and torch.cuda.is_available()) else "cpu"
    trainer = nni_pl.Trainer(
        max_epochs=1, max_steps=steps, accelerator=accelerator, devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, default_root_dir=str(output_dir) if output_dir else None,
    )
    module = SRLightningModule(scale=scale, learning_rate=learning_rate, loss=loss)
    return nni_pl.Lightning(
        module, trainer,
        train_dataloaders=nni_pl.DataLoader(train_stream, batch_size=None),
        val_dataloaders=nni_pl.DataLoader(val_stream, batch_size=None),
    )
