"""Trainer: learning happens, budgets/schedules are honoured, resume is exact, NaN is a clean failure."""

from __future__ import annotations

import math

import pytest
import torch

from srnas_nni.errors import SRNASError, TrainingDivergedError
from srnas_nni.evaluation.data import ImageFolderDataset
from srnas_nni.evaluation.trainer import TrainConfig, Trainer

from tests.support.models import TinySR


def _config(**overrides) -> TrainConfig:
    values = dict(steps=8, batch_size=4, patch_size=16, learning_rate=1e-3, device="cpu", seed=3)
    values.update(overrides)
    return TrainConfig(**values)


def test_training_lowers_the_loss(image_folder):
    data = ImageFolderDataset(image_folder, 2)
    torch.manual_seed(0)
    trainer = Trainer(TinySR(), data, data, _config(steps=120, learning_rate=3e-3, val_every=20))
    result = trainer.fit(resume=False)
    assert result.steps == 120
    window_losses = [h["loss"] for h in result.history if "loss" in h]
    assert len(window_losses) == 6
    assert window_losses[-1] < 0.8 * window_losses[0]  # measured 0.69 on the dev machine
    assert result.validation is not None and math.isfinite(result.validation.psnr)


def test_validation_psnr_improves_over_untrained(image_folder):
    data = ImageFolderDataset(image_folder, 2)
    torch.manual_seed(1)
    trainer = Trainer(TinySR(), data, data, _config(steps=150, learning_rate=3e-3, val_every=75))
    before = trainer.validate().psnr
    result = trainer.fit(resume=False)
    assert result.validation.psnr > before + 0.5
    assert [h["step"] for h in result.history if "val_psnr" in h] == [0, 75, 150]
    assert result.best_psnr == max(h["val_psnr"] for h in result.history if "val_psnr" in h)


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(image_folder, tmp_path, monkeypatch):
    data = ImageFolderDataset(image_folder, 2)

    torch.manual_seed(0)
    straight = Trainer(TinySR(), data, None, _config(steps=10), output_dir=tmp_path / "a")
    straight.fit(resume=False)

    torch.manual_seed(0)
    interrupted = Trainer(TinySR(), data, None, _config(steps=10, checkpoint_every=4), output_dir=tmp_path / "b")
    real_step = interrupted._train_step

    def step_then_die():
        if interrupted.step == 6:  # two steps after the checkpoint at step 4: their work is lost
            raise KeyboardInterrupt
        return real_step()

    monkeypatch.setattr(interrupted, "_train_step", step_then_die)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(resume=False)

    torch.manual_seed(123)  # a different init: everything must come from the checkpoint
    resumed = Trainer(TinySR(), data, None, _config(steps=10, checkpoint_every=4), output_dir=tmp_path / "b")
    assert resumed.try_resume() and resumed.step == 4
    resumed.fit(resume=False)

    assert resumed.step == 10
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_same_seed_same_result_other_seed_other_result(image_folder):
    data = ImageFolderDataset(image_folder, 2)

    def run(seed):
        torch.manual_seed(0)
        trainer = Trainer(TinySR(), data, None, _config(seed=seed))
        trainer.fit(resume=False)
        return torch.cat([p.flatten() for p in trainer.model.parameters()])

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


class _Exploding(TinySR):
    def forward(self, x):
        out = super().forward(x)
        return out * float("nan") if self.training else out


def test_nan_loss_raises_and_keeps_the_last_checkpoint(image_folder, tmp_path):
    data = ImageFolderDataset(image_folder, 2)
    good = Trainer(TinySR(), data, None, _config(steps=3), output_dir=tmp_path)
    good.fit(resume=False)
    checkpoint = tmp_path / "checkpoints" / "last.pt"
    before = checkpoint.read_bytes()

    bad = Trainer(_Exploding(), data, None, _config(steps=6), output_dir=tmp_path / "other")
    with pytest.raises(TrainingDivergedError) as excinfo:
        bad.fit(resume=False)
    assert "step 1" in str(excinfo.value) and "nan" in str(excinfo.value)
    assert checkpoint.read_bytes() == before


def test_schedules():
    cosine = Trainer.__new__(Trainer)
    cosine.config = _config(steps=100, schedule="cosine", warmup_steps=10)
    assert cosine._lr_factor(0) == pytest.approx(0.1)
    assert cosine._lr_factor(10) == pytest.approx(1.0)
    assert cosine._lr_factor(100) == pytest.approx(0.0, abs=1e-12)
    step = Trainer.__new__(Trainer)
    step.config = _config(steps=100, schedule="step", step_size=25)
    assert [step._lr_factor(s) for s in (0, 24, 25, 50, 99)] == [1.0, 1.0, 0.5, 0.25, 0.125]


@pytest.mark.parametrize("overrides, key", [
    ({"steps": -1}, "train.steps"),
    ({"schedule": "linear"}, "train.schedule"),
    ({"learning_rate": 0.0}, "train.learning_rate"),
    ({"loss": "ssim"}, "unknown loss 'ssim'"),
])
def test_bad_config_is_a_one_line_error_naming_the_key(overrides, key):
    with pytest.raises(SRNASError) as excinfo:
        _config(**overrides)
    assert key in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_unknown_option_is_named():
    with pytest.raises(SRNASError, match="unknown training option.*'stepz'"):
        TrainConfig.from_dict({"stepz": 3})
