"""Lightning callbacks the supernet tests train with."""

from __future__ import annotations

from pytorch_lightning.callbacks import Callback


class RecordBatches(Callback):
    """Records a fingerprint of every training batch; raises after ``crash_after`` batches."""

    def __init__(self, crash_after: int | None = None):
        self.seen: list[float] = []
        self.crash_after = crash_after

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        lr = batch["train"][0] if isinstance(batch, dict) else batch[0]
        self.seen.append(round(float(lr.double().sum()), 6))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.crash_after is not None and batch_idx + 1 >= self.crash_after:
            raise RuntimeError("simulated crash")
