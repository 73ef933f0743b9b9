"""``srnas evaluate``, ``cost``, ``train`` and ``compare``: one model, or several, on a data set."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from ..errors import SRNASError
from .options import add_data_options, add_train_options, hr_size, train_config

DEFAULT_MODELS = ("bicubic", "srcnn", "fsrcnn", "vdsr", "carn_m", "carn")


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="PSNR/SSIM of a model on a data set",
                       description="Super-resolve every image of a data set and report Y-channel PSNR/SSIM "
                                   "(crop = scale, 8-bit output) as the SR literature does, plus RGB PSNR.")
    p.add_argument("--model", required=True, help="registered name, spec JSON, or model file from 'srnas train'")
    p.add_argument("--scale", type=int, default=None, help="2, 3 or 4 (a model file carries its own)")
    add_data_options(p, default="builtin:val",
                     help_text="folder of HR images, DIV2K-style root, or builtin[:train|:val]")
    p.add_argument("--crop", type=int, default=None, help="border pixels ignored (default: the scale)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--output", default=None, help="also write the JSON result to this file")
    p.add_argument("--save-dir", default=None, help="also write each SR image (8-bit PNG) into this folder")
    p.set_defaults(handler=_cmd_evaluate)

    p = sub.add_parser("cost", help="parameters and Mult-Adds of a model",
                       description="Count learnable parameters and multiply-accumulates to produce an HR image "
                                   "of --hr-size (1280x720 by default, the convention of CARN, FALSR, DLSR).")
    p.add_argument("--model", required=True, help="registered name, spec JSON, or model file")
    p.add_argument("--scale", type=int, default=None)
    p.add_argument("--hr-size", type=hr_size, default=(720, 1280), help="HEIGHTxWIDTH (default 720x1280)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_cmd_cost)

    p = sub.add_parser("train", help="train a baseline or an exported architecture",
                       description="Train a model on random HR patches within a step budget; writes "
                                   "OUTPUT_DIR/model.pt, OUTPUT_DIR/train.json and a resumable checkpoint.")
    p.add_argument("--model", required=True, help="registered name or spec JSON (or a model file to fine-tune)")
    p.add_argument("--scale", type=int, default=None)
    add_data_options(p, default="builtin", help_text="training images: folder, DIV2K-style root or builtin")
    p.add_argument("--val-data", default="builtin:val", help="validation images (whole-image PSNR/SSIM)")
    p.add_argument("--output-dir", default=None, help="default: runs/train-<model>-x<scale>")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    add_train_options(p)
    p.set_defaults(handler=_cmd_train)

    p = sub.add_parser("compare", help="train several models with one budget and tabulate PSNR vs cost",
                       description="Every model gets the same data, steps, patch and batch; the table shows "
                                   "params, Mult-Adds (1280x720), PSNR and SSIM on the validation images.")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated names or spec files")
    p.add_argument("--scale", type=int, default=2)
    add_data_options(p, default="builtin", help_text="training images: folder, DIV2K-style root or builtin")
    p.add_argument("--val-data", default="builtin:val")
    p.add_argument("--output-dir", default="runs/compare")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    add_train_options(p, steps_flag="--train-steps", steps=300)
    p.set_defaults(handler=_cmd_compare)


def _cmd_evaluate(args) -> int:
    from ..evaluation.data import open_dataset
    from ..evaluation.validation import validate
    from ..spaces.published import resolve_model, get_entry
    from ..runtime import resolve_device, atomic_write_json

    resolved = resolve_model(args.model, args.scale)
    if not resolved.trained and "model" in resolved.spec and get_entry(resolved.spec["model"]).trainable:
        logging.getLogger("srnas").warning(
            "%s has untrained weights: pass a model file from 'srnas train' to evaluate a trained model",
            args.model,
        )
    dataset = open_dataset(args.data, resolved.scale, split="val", skip_bad=args.skip_bad, cache_dir=args.cache_dir)
    device = resolve_device(args.device)
    result = validate(resolved.model.to(device), dataset, device=device, crop=args.crop)
    payload = {"model": args.model, "data": args.data, **result.as_dict()}
    if args.output:
        atomic_write_json(args.output, payload)
    if args.save_dir:
        from ..evaluation.upscale import save_sr_images

        save_sr_images(resolved.model, dataset, args.save_dir, device=device)
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        for image in result.images:
            print(f"{image.name:24s} PSNR {image.psnr:7.3f} dB  SSIM {image.ssim:.4f}  (RGB PSNR {image.psnr_rgb:.3f})")
        print(f"{'mean':24s} PSNR {result.psnr:7.3f} dB  SSIM {result.ssim:.4f}  (RGB PSNR {result.psnr_rgb:.3f})"
              f"  x{result.scale}, Y channel, crop {result.crop}, {len(result.images)} images")
    return 0


def _cmd_cost(args) -> int:
    from ..evaluation.cost import measure
    from ..spaces.published import resolve_model

    resolved = resolve_model(args.model, args.scale)
    report = measure(resolved.model, resolved.scale, hr_size=args.hr_size)
    if args.json:
        print(json.dumps({"model": args.model, "scale": resolved.scale, **report.as_dict()}, indent=2))
    else:
        h, w = args.hr_size
        print(f"{args.model} x{resolved.scale}: {report.params:,} parameters, "
              f"{report.multadds / 1e9:.2f} G Mult-Adds for a {w}x{h} output")
        if report.uncounted:
            skipped = ", ".join(f"{name} x{count}" for name, count in sorted(report.uncounted.items()))
            print(f"not counted by convention: {skipped}")
    return 0


def _train_one(reference: str, scale: int, args, output_dir: Path, train_set, val_set) -> dict:
    from ..evaluation.cost import measure
    from ..evaluation.trainer import Trainer
    from ..evaluation.validation import validate
    from ..spaces.published import resolve_model, save_model_file, get_entry
    from ..runtime import atomic_write_json, seed_everything, resolve_device

    config = train_config(args)
    seed_everything(config.seed)
    resolved = resolve_model(reference, scale)
    cost = measure(resolved.model, resolved.scale)
    trainable = any(p.requires_grad for p in resolved.model.parameters())
    if "model" in resolved.spec:
        trainable = trainable and get_entry(resolved.spec["model"]).trainable
    if trainable and config.steps > 0:
        trainer = Trainer(resolved.model, train_set, val_set, config, output_dir=output_dir)
        outcome = trainer.fit(resume=not getattr(args, "no_resume", False))
        validation, seconds, steps = outcome.validation, outcome.train_seconds, outcome.steps
        history = outcome.history
    else:
        device = resolve_device(config.device)
        validation = validate(resolved.model.to(device), val_set, device=device)
        seconds, steps, history = 0.0, 0, []
    summary = {
        "model": reference, "spec": resolved.spec, "scale": resolved.scale,
        "params": cost.params, "multadds": cost.multadds, "hr_size": list(cost.hr_size),
        "psnr": validation.psnr, "ssim": validation.ssim, "psnr_rgb": validation.psnr_rgb,
        "steps": steps, "train_seconds": seconds, "train": config.as_dict(),
        "validation": validation.as_dict(), "history": history,
    }
    save_model_file(output_dir / "model.pt", resolved.model, resolved.spec, resolved.scale,
                    extra={"psnr": validation.psnr, "ssim": validation.ssim, "steps": steps})
    atomic_write_json(output_dir / "train.json", summary)
    return summary


def _open_train_val(args, scale: int):
    from ..evaluation.data import open_dataset

    train_set = open_dataset(args.data, scale, split="train", skip_bad=args.skip_bad, cache_dir=args.cache_dir)
    val_set = open_dataset(args.val_data, scale, split="val", skip_bad=args.skip_bad, cache_dir=args.cache_dir)
    return train_set, val_set


def _cmd_train(args) -> int:
    from ..spaces.published import resolve_model

    scale = args.scale if args.scale is not None else resolve_model(args.model, None).scale
    name = Path(args.model).stem if args.model.endswith((".json", ".pt")) else args.model
    output_dir = Path(args.output_dir or f"runs/train-{name}-x{scale}")
    train_set, val_set = _open_train_val(args, scale)
    summary = _train_one(args.model, scale, args, output_dir, train_set, val_set)
    print(f"{args.model} x{scale}: {summary['steps']} steps in {summary['train_seconds']:.1f} s, "
          f"PSNR {summary['psnr']:.3f} dB, SSIM {summary['ssim']:.4f} on {args.val_data}")
    print(f"model: {output_dir / 'model.pt'}   summary: {output_dir / 'train.json'}")
    return 0


def _cmd_compare(args) -> int:
    from ..runtime import atomic_write_json

    references = [m.strip() for m in args.models.split(",") if m.strip()]
    if not references:
        raise SRNASError("--models is empty")
    output_dir = Path(args.output_dir)
    train_set, val_set = _open_train_val(args, args.scale)
    rows = []
    started = time.perf_counter()
    for reference in references:
        print(f"[{len(rows) + 1}/{len(references)}] {reference} ...", file=sys.stderr, flush=True)
        name = Path(reference).stem if reference.endswith((".json", ".pt")) else reference
        summary = _train_one(reference, args.scale, args, output_dir / name, train_set, val_set)
        rows.append({k: summary[k] for k in ("model", "params", "multadds", "psnr", "ssim", "steps",
                                             "train_seconds")})
    atomic_write_json(output_dir / "compare.json", {
        "scale": args.scale, "data": args.data, "val_data": args.val_data, "rows": rows,
        "train_steps": args.steps, "batch_size": args.batch_size, "patch_size": args.patch_size,
    })
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"\nx{args.scale}, {args.steps} steps each (batch {args.batch_size}, HR patch {args.patch_size}), "
              f"validated on {args.val_data}; Mult-Adds for a 1280x720 output\n")
        print("| model | params | Mult-Adds | PSNR (Y) | SSIM (Y) | train s |")
        print("|---|---:|---:|---:|---:|---:|")
        for row in rows:
            print(f"| {row['model']} | {row['params']:,} | {row['multadds'] / 1e9:.2f}G | {row['psnr']:.3f} | "
                  f"{row['ssim']:.4f} | {row['train_seconds']:.1f} |")
        print(f"\n{len(rows)} models in {time.perf_counter() - started:.0f} s; results in {output_dir}/compare.json")
    return 0
