"""After the search: ``srnas export``, ``retrain`` and ``upscale``.

* ``export RUN_DIR|ARCH.json|MODEL.pt [--pick RULE]`` - pick an architecture of a run's Pareto
  front and write ``architecture.json``, ``model.ts`` (TorchScript), ``model.onnx`` and
  ``export.json`` (:mod:`srnas_nni.results.export`);
* ``retrain ARCH.json --data ... --steps ...`` - full training of an exported architecture, with
  checkpoints and resume as ``srnas train``; writes a model file for ``evaluate``/``upscale``;
* ``upscale MODEL IMAGE... -o OUT`` - super-resolve images of any size in tiles
  (:mod:`srnas_nni.evaluation.upscale`).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from ..errors import ImageReadError, SRNASError
from .options import add_data_options, add_train_options, positive_int

#: Steps of ``srnas retrain`` when ``--steps`` is not given (the papers train 1e5 to 1e6 steps).
RETRAIN_STEPS = 100_000
RETRAIN_CHECKPOINT_EVERY = 1000


def register(sub) -> None:
    p = sub.add_parser("export", help="write a searched architecture as JSON, TorchScript and ONNX",
                       description="Pick an architecture from a search run's Pareto front (or take a spec JSON "
                                   "or a model file) and write architecture.json (the model spec), model.ts "
                                   "(TorchScript) and model.onnx (dynamic height/width). The trial's trained "
                                   "weights go in when the run kept them; otherwise the weights are freshly "
                                   "initialised (train them with 'srnas retrain architecture.json').")
    p.add_argument("source", metavar="RUN_DIR", help="search run directory (pareto.json), spec JSON or model file")
    p.add_argument("--pick", default="best-psnr",
                   help="best-psnr, knee, under-multadds=50G or under-params=300K (units K, M, G)")
    p.add_argument("--output-dir", default=None, help="default: RUN_DIR/export (beside the file for a file)")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX file")
    p.add_argument("--seed", type=int, default=0, help="seed of freshly initialised weights")
    p.set_defaults(handler=_cmd_export)

    p = sub.add_parser("retrain", help="train an exported architecture fully (checkpoints, resume)",
                       description="Train an architecture (architecture.json from 'srnas export', any spec JSON, "
                                   "or a model file to fine-tune) on random HR patches; writes OUTPUT_DIR/model.pt "
                                   "(for 'srnas evaluate --model' and 'srnas upscale'), OUTPUT_DIR/train.json and "
                                   "a checkpoint that a second run resumes from.")
    p.add_argument("architecture", metavar="ARCH", help="spec JSON, an export folder, or a model file")
    p.add_argument("--scale", type=int, default=None, help="default: the scale in the spec")
    add_data_options(p, default="builtin", help_text="training images: folder, DIV2K-style root or builtin")
    p.add_argument("--val-data", default="builtin:val", help="validation images (whole-image PSNR/SSIM)")
    p.add_argument("--output-dir", default=None, help="default: a 'retrain' folder beside ARCH")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    add_train_options(p, steps=RETRAIN_STEPS)
    p.set_defaults(handler=_cmd_retrain, checkpoint_every=RETRAIN_CHECKPOINT_EVERY)

    p = sub.add_parser("upscale", help="super-resolve images of any size (tiled)",
                       description="Super-resolve each IMAGE with a trained model. Large images are processed "
                                   "in tiles of --tile LR pixels with --overlap pixels of context on each side, "
                                   "so memory stays bounded; with an overlap at least the network's receptive "
                                   "field the result equals whole-image inference. Output is 8-bit PNG (or the "
                                   "format of OUT's suffix for one image); gray images stay gray, alpha is "
                                   "dropped, 16-bit input is rounded to 8 bit.")
    p.add_argument("model", metavar="MODEL", help="model file from 'srnas retrain'/'srnas train' (or any --model)")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    p.add_argument("-o", "--output", required=True,
                   help="output folder (IMAGE_x<scale>.png inside), or a file name when there is one image")
    p.add_argument("--scale", type=int, default=None, help="needed only for a registered name or spec")
    p.add_argument("--tile", type=positive_int, default=256, help="LR tile side (0: whole image at once)")
    p.add_argument("--overlap", type=positive_int, default=32, help="LR context pixels around each tile")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.set_defaults(handler=_cmd_upscale)


def _cmd_export(args) -> int:
    from ..results.export import export_model, resolve_export_source

    source_path = Path(args.source)
    source = resolve_export_source(source_path, args.pick, seed=args.seed)
    default_dir = source_path / "export" if source_path.is_dir() else source_path.parent / f"{source_path.stem}-export"
    output_dir = Path(args.output_dir) if args.output_dir else default_dir
    entry = source.origin.get("entry")
    if entry:
        print(f"picked trial {entry.get('trial')} ({args.pick}): PSNR {entry['psnr']:.3f} dB, "
              f"{int(entry['params']):,} parameters, {entry['multadds'] / 1e9:.2f} G Mult-Adds")
    if not source.trained:
        print("note: no trained weights for this architecture; the exported networks have freshly initialised "
              f"weights (train them: srnas retrain {output_dir / 'architecture.json'} --data ...)")
    result = export_model(source, output_dir, onnx=not args.no_onnx)
    for name, path in result.files.items():
        print(f"{name:12s} {path}")
    return 0


def _architecture_reference(text: str) -> str:
    path = Path(text)
    if path.is_dir() and (path / "architecture.json").is_file():
        return str(path / "architecture.json")
    if path.is_dir():
        raise SRNASError(f"{path}: no architecture.json in this folder (expected 'srnas export' output)")
    if not path.exists():
        raise SRNASError(f"{path}: no such file")
    return text


def _cmd_retrain(args) -> int:
    from ..spaces.published import resolve_model
    from .models import _open_train_val, _train_one

    reference = _architecture_reference(args.architecture)
    scale = args.scale if args.scale is not None else resolve_model(reference, None).scale
    output_dir = Path(args.output_dir) if args.output_dir else Path(reference).parent / "retrain"
    train_set, val_set = _open_train_val(args, scale)
    summary = _train_one(reference, scale, args, output_dir, train_set, val_set)
    print(f"{reference} x{scale}: {summary['steps']} steps in {summary['train_seconds']:.1f} s, "
          f"PSNR {summary['psnr']:.3f} dB, SSIM {summary['ssim']:.4f} on {args.val_data}")
    print(f"model: {output_dir / 'model.pt'}   summary: {output_dir / 'train.json'}")
    return 0


def _output_paths(images: list[Path], output: Path, scale: int) -> list[Path]:
    """Where each image's result goes; a clash of two inputs onto one output is an error."""
    from ..evaluation.images import IMAGE_EXTENSIONS

    if len(images) == 1 and output.suffix.lower() in IMAGE_EXTENSIONS and not output.is_dir():
        return [output]
    if output.exists() and not output.is_dir():
        raise SRNASError(f"{output}: exists and is not a folder (several images need an output folder)")
    targets = [output / f"{image.stem}_x{scale}.png" for image in images]
    seen: dict[Path, Path] = {}
    for image, target in zip(images, targets):
        if target in seen:
            raise SRNASError(f"{seen[target]} and {image} would both be written to {target}")
        seen[target] = image
    return targets


def _cmd_upscale(args) -> int:
    from ..evaluation.upscale import upscale_file
    from ..spaces.published import resolve_model
    from ..runtime import resolve_device

    resolved = resolve_model(args.model, args.scale)
    if not resolved.trained:
        logging.getLogger("srnas").warning("%s has untrained weights: pass a model file from 'srnas retrain'",
                                           args.model)
    device = resolve_device(args.device)
    model = resolved.model.to(device)
    images = [Path(image) for image in args.images]
    targets = _output_paths(images, Path(args.output), resolved.scale)
    failed = 0
    for image, target in zip(images, targets):
        try:
            width, height = upscale_file(model, image, target, resolved.scale, tile=args.tile,
                                         overlap=args.overlap, device=device)
        except ImageReadError as exc:
            print(f"srnas: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        except RuntimeError as exc:  # e.g. an image smaller than the network's pooling windows, out of memory
            reason = " ".join(str(exc).split())[:200]
            print(f"srnas: error: {image}: the network cannot process this image ({reason}); "
                  "try a larger image or a smaller --tile", file=sys.stderr)
            failed += 1
            continue
        print(f"{image} -> {target} ({width}x{height})")
    return 2 if failed else 0
