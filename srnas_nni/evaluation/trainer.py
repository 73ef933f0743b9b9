"""Training of any frozen SR model with a patch/batch/step budget.

Contract of :class:`Trainer`:

* the budget is counted in optimiser steps; each step draws ``batch_size`` random HR patches of
  ``patch_size`` (with flips/rotations) and their aligned LR patches;
* Adam with a learning-rate schedule (``constant``, ``step`` — halve every ``step_size`` steps,
  ``cosine``), optional linear warm-up, optional gradient-norm clipping;
* validation on whole images every ``val_every`` steps and at the end; the weights with the best
  validation PSNR are kept;
* with an ``output_dir``, a checkpoint (weights, optimiser, schedule, sampler RNG, history) is
  written atomically every ``checkpoint_every`` steps and at the end, and ``fit()`` resumes from it:
  a run interrupted and resumed gives the same weights as an uninterrupted one;
* deterministic under ``seed`` on CPU; on CUDA mixed precision (bf16 where supported, else fp16
  with loss scaling) unless ``amp=False``;
* a NaN/inf loss raises :class:`~srnas_nni.errors.TrainingDivergedError`; the last checkpoint
  stays intact.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import SRNASError, TrainingDivergedError
from ..runtime import atomic_torch_save, resolve_device
from .losses import get_loss
from .patches import PatchSampler
from .validation import ValidationResult, validate

__all__ = ["TrainConfig", "TrainResult", "Trainer"]

SCHEDULES = ("constant", "step", "cosine")


@dataclass
class TrainConfig:
    """Budget and optimisation settings; every field has a literature-typical default."""

    steps: int = 1000
    batch_size: int = 16
    patch_size: int = 96  # HR patch side (EDSR convention: LR patch = patch_size / scale)
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    loss: str = "l1"
    schedule: str = "cosine"
    step_size: int = 0  # for schedule="step": halve the rate every step_size steps (0: steps // 2)
    warmup_steps: int = 0
    grad_clip: float | None = None  # max gradient norm; None disables
    val_every: int = 0  # 0: validate only at the end
    checkpoint_every: int = 0  # 0: checkpoint only at the end
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision on CUDA; ignored on CPU
    augment: bool = True
    progress: bool = False

    def __post_init__(self) -> None:
        self._check_types()
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        checks = [
            ("steps", self.steps >= 0, "must be >= 0"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("patch_size", self.patch_size >= 2, "must be >= 2"),
            ("learning_rate", self.learning_rate > 0 and math.isfinite(self.learning_rate), "must be > 0"),
            ("schedule", self.schedule in SCHEDULES, f"must be one of {', '.join(SCHEDULES)}"),
            ("val_every", self.val_every >= 0, "must be >= 0"),
            ("checkpoint_every", self.checkpoint_every >= 0, "must be >= 0"),
            ("warmup_steps", self.warmup_steps >= 0, "must be >= 0"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise SRNASError(f"train.{name} = {getattr(self, name)!r} {why}")
        get_loss(self.loss)

    # Field name -> accepted types (a YAML file or --set can put any type anywhere).
    _TYPES = {"steps": (int,), "batch_size": (int,), "patch_size": (int,), "learning_rate": (int, float),
              "weight_decay": (int, float), "betas": (list, tuple), "loss": (str,), "schedule": (str,),
              "step_size": (int,), "warmup_steps": (int,), "grad_clip": (int, float, type(None)),
              "val_every": (int,), "checkpoint_every": (int,), "seed": (int,), "device": (str,), "amp": (bool,),
              "augment": (bool,), "progress": (bool,)}

    def _check_types(self) -> None:
        for name, types in self._TYPES.items():
            value = getattr(self, name)
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                expected = " or ".join(t.__name__ for t in types).replace("NoneType", "null")
                raise SRNASError(f"train.{name} = {value!r} is {type(value).__name__}; expected {expected}")
            if isinstance(value, float) and not math.isfinite(value):
                raise SRNASError(f"train.{name} = {value!r} is not a finite number")
        if len(self.betas) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1
                                           for b in self.betas):
            raise SRNASError(f"train.betas = {self.betas!r} must be two numbers in [0, 1)")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "TrainConfig":
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SRNASError(f"unknown training option(s) {unknown}; known: {', '.join(sorted(known))}")
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["betas"] = list(self.betas)
        return out


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    train_seconds: float
    validation: ValidationResult | None
    best_psnr: float | None
    best_step: int | None
    history: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "final_loss": self.final_loss,
            "train_seconds": self.train_seconds,
            "best_psnr": self.best_psnr,
            "best_step": self.best_step,
            "validation": self.validation.as_dict() if self.validation else None,
            "history": self.history,
        }


class Trainer:
    """Train ``model`` on ``train_set`` (and validate on ``val_set``) within ``config``'s budget.

    ``on_validation(step, result)`` is called after every validation (the NNI evaluator reports
    intermediate results through it).
    """

    CHECKPOINT_NAME = "last.pt"

    def __init__(self, model: nn.Module, train_set, val_set=None, config: TrainConfig | None = None, *,
                 output_dir: str | Path | None = None,
                 on_validation: Callable[[int, ValidationResult], None] | None = None):
        self.config = config or TrainConfig()
        self.device = resolve_device(self.config.device)
        self.model = model.to(self.device)
        self.train_set = train_set
        self.val_set = val_set
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.on_validation = on_validation
        self.loss_fn = get_loss(self.config.loss)
        self.sampler = PatchSampler(
            train_set, patch_size=self.config.patch_size, batch_size=self.config.batch_size,
            scale=train_set.scale, augment=self.config.augment, seed=self.config.seed,
        )
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise SRNASError(f"{type(model).__name__} has no trainable parameters")
        self.optimizer = torch.optim.Adam(
            params, lr=self.config.learning_rate, betas=self.config.betas, weight_decay=self.config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step = 0
        self.history: list[dict] = []
        self.best_psnr: float | None = None
        self.best_step: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.train_seconds = 0.0
        self.last_loss = float("nan")

    # -- schedule ---------------------------------------------------------------------------
    def _lr_factor(self, step: int) -> float:
        cfg = self.config
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        if cfg.schedule == "step":
            size = cfg.step_size or max(1, cfg.steps // 2)
            return 0.5 ** (step // size)
        span = max(1, cfg.steps - cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def _amp_dtype(self) -> torch.dtype | None:
        if not self.config.amp or self.device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return self.output_dir / "checkpoints" / self.CHECKPOINT_NAME if self.output_dir else None

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "history": self.history,
            "best_psnr": self.best_psnr,
            "best_step": self.best_step,
            "best_state": self.best_state,
            "train_seconds": self.train_seconds,
            "last_loss": self.last_loss,
            "config": self.config.as_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.best_psnr = state["best_psnr"]
        self.best_step = state["best_step"]
        self.best_state = state["best_state"]
        self.train_seconds = float(state["train_seconds"])
        self.last_loss = float(state["last_loss"])

    def save_checkpoint(self) -> Path | None:
        path = self.checkpoint_path
        if path is not None:
            atomic_torch_save(self.state_dict(), path)
        return path

    def try_resume(self) -> bool:
        path = self.checkpoint_path
        if path is None or not path.exists():
            return False
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
            self.load_state_dict(state)
        except Exception as exc:  # a checkpoint of another model or a damaged file
            raise SRNASError(f"{path}: cannot resume from this checkpoint: {exc}".splitlines()[0]) from None
        return True

    # -- training ---------------------------------------------------------------------------
    def _train_step(self) -> float:
        lr, hr = self.sampler.next_batch(self.device)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            sr = self.model(lr)
            loss = self.loss_fn(sr.float(), hr)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingDivergedError(self.step + 1, value)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return value

    def validate(self) -> ValidationResult | None:
        if self.val_set is None:
            return None
        result = validate(self.model, self.val_set, device=self.device)
        if self.best_psnr is None or result.psnr > self.best_psnr:
            self.best_psnr, self.best_step = result.psnr, self.step
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.history.append({"step": self.step, "val_psnr": result.psnr, "val_ssim": result.ssim})
        if self.on_validation is not None:
            self.on_validation(self.step, result)
        return result

    def fit(self, *, resume: bool = True) -> TrainResult:
        """Train to ``config.steps``; with ``resume`` continue from the checkpoint in output_dir."""
        cfg = self.config
        if resume:
            self.try_resume()
        self.model.train()
        progress = None
        if cfg.progress:
            from tqdm.auto import tqdm

            progress = tqdm(total=cfg.steps, initial=self.step, desc="train", dynamic_ncols=True)
        validation: ValidationResult | None = None
        running: list[float] = []
        try:
            while self.step < cfg.steps:
                started = time.perf_counter()
                value = self._train_step()
                self.step += 1
                self.train_seconds += time.perf_counter() - started
                self.last_loss = value
                running.append(value)
                if progress is not None:
                    progress.update(1)
                    postfix = {"loss": f"{value:.4f}"}
                    if self.best_psnr is not None:
                        postfix["best_psnr"] = f"{self.best_psnr:.2f}"
                    progress.set_postfix(postfix)
                if cfg.val_every and self.step % cfg.val_every == 0 and self.step < cfg.steps:
                    self.history.append({"step": self.step, "loss": sum(running) / len(running)})
                    running.clear()
                    validation = self.validate()
                    self.model.train()
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
            if running:
                self.history.append({"step": self.step, "loss": sum(running) / len(running)})
            validation = self.validate()
            self.save_checkpoint()
        finally:
            if progress is not None:
                progress.close()
        return TrainResult(
            steps=self.step,
            final_loss=self.last_loss,
            train_seconds=self.train_seconds,
            validation=validation,
            best_psnr=self.best_psnr,
            best_step=self.best_step,
            history=self.history,
        )
