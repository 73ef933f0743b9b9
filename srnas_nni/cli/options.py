"""Argument types and option groups shared by the subcommands."""

from __future__ import annotations

import argparse
import sys

__all__ = ["hr_size", "positive_int", "add_data_options", "add_train_options", "train_config"]


def hr_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 720x1280, got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"HR size must be positive, got {text!r}")
    return height, width


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def add_data_options(parser: argparse.ArgumentParser, *, default: str, help_text: str) -> None:
    parser.add_argument("--data", default=default, help=help_text)
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip unreadable or too-small images with a warning instead of failing")
    parser.add_argument("--cache-dir", default=None, help="cache LR images made on the fly in this folder")


def add_train_options(parser: argparse.ArgumentParser, *, steps_flag: str = "--steps", steps: int = 1000) -> None:
    group = parser.add_argument_group("training budget")
    group.add_argument(steps_flag, dest="steps", type=positive_int, default=steps, help="optimiser steps")
    group.add_argument("--batch-size", type=positive_int, default=16)
    group.add_argument("--patch-size", type=positive_int, default=96, help="HR patch side (LR = patch / scale)")
    group.add_argument("--lr", dest="learning_rate", type=float, default=2e-4, help="Adam learning rate")
    group.add_argument("--loss", default="l1", help="l1, mse, charbonnier, hfen, l1+hfen")
    group.add_argument("--schedule", default="cosine", help="constant, step or cosine")
    group.add_argument("--grad-clip", type=float, default=None, help="max gradient norm")
    group.add_argument("--val-every", type=positive_int, default=0, help="validate every N steps (0: at the end)")
    group.add_argument("--checkpoint-every", type=positive_int, default=0,
                       help="checkpoint every N steps (0: at the end)")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")


def train_config(args):
    from ..evaluation.trainer import TrainConfig

    return TrainConfig(
        steps=args.steps, batch_size=args.batch_size, patch_size=args.patch_size,
        learning_rate=args.learning_rate, loss=args.loss, schedule=args.schedule, grad_clip=args.grad_clip,
        val_every=args.val_every, checkpoint_every=args.checkpoint_every, seed=args.seed, device=args.device,
        progress=sys.stderr.isatty(),
    )
