"""After the search: choose an architecture from a run's Pareto front and export it.

A search run directory holds ``pareto.json`` (format ``srnas-pareto/1``)::

    {"format": "srnas-pareto/1", "space": {"space": "dlsr", "space_kwargs": {...}}, "scale": 2,
     "strategy": "nsga2", "objectives": ["psnr", "params", "multadds"],
     "front": [{"trial": 3, "architecture": {label: value}, "psnr": 31.2, "ssim": 0.91, "params": 12345,
                "multadds": 678900000, "model_file": "trials/3/model.pt" or null}, ...]}

**Pick rules** (:func:`pick`, pure functions over the front's entries; ``--pick`` on the command line):

* ``best-psnr`` (:func:`pick_best_psnr`): the highest PSNR; ties go to fewer Mult-Adds.
* ``knee`` (:func:`pick_knee`): the knee of the PSNR / Mult-Adds trade-off. Both are normalised to
  [0, 1] over the front; the line through the two extremes (the cheapest entry and the best-PSNR
  entry) is drawn; the knee is the entry farthest from that line on the side of cheap-and-good
  (above it). With fewer than three entries, or none above the line (a straight or concave front),
  it is the best-PSNR entry.
* ``under-multadds=50G`` / ``under-params=300K`` (:func:`pick_under`): the best PSNR among entries
  whose Mult-Adds (or parameters) are at most the budget; units ``K`` = 1e3, ``M`` = 1e6, ``G`` = 1e9
  (case-insensitive, decimals allowed). When nothing fits, an :class:`SRNASError` names the budget
  and the cheapest entry.

**Export** (:func:`export_model`) writes into one folder:

* ``architecture.json`` - the model spec (``{"space", "space_kwargs", "sample", "scale"}`` or
  ``{"model", "kwargs", "scale"}``), loadable by :func:`~srnas_nni.models.registry.resolve_model`,
  ``srnas train --model`` and ``srnas retrain``;
* ``model.ts`` - TorchScript, loadable with ``torch.jit.load`` in a process that never imports
  srnas_nni; input ``1x3xhxw`` float RGB in [0, 1], output ``scale`` times the size;
* ``model.onnx`` - ONNX with dynamic (symbolic) height and width (input ``lr``, output ``sr``);
* ``export.json`` - where it came from: the pick rule, the trial and its scores, whether the
  weights are trained, and the checks made.

Networks are traced (the search spaces' modules use Python control flow that scripting cannot
compile; tracing runs the frozen, fixed architecture, so it records every op). A trace can bake the
input size into the graph, so every export is checked: the traced module and the ONNX model are run
at a second input size, of another aspect ratio, and must match the eager network. MATLAB bicubic
resizing (HiNAS's global residual, the ``bicubic``/``srcnn``/``vdsr`` baselines) builds its weights
from the input size in Python; while tracing, :func:`~srnas_nni.models.imresize.imresize` itself switches to
:func:`~srnas_nni.models.imresize.traceable_bicubic_upscale`, the same interpolation for integer
upscaling written as size-independent tensor ops.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import re
import tempfile
import warnings
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import SRNASError
from ..spaces.published import MODEL_FILE_FORMAT, build_from_spec, resolve_model
from ..runtime import atomic_write_bytes, atomic_write_json, read_json_file

__all__ = [
    "PARETO_FORMAT", "PARETO_FILE", "UNITS",
    "read_pareto", "parse_amount", "pick", "pick_best_psnr", "pick_knee", "pick_under",
    "ExportSource", "resolve_export_source", "export_torchscript", "export_onnx",
    "ExportResult", "export_model",
]

PARETO_FORMAT = "srnas-pareto/1"
PARETO_FILE = "pareto.json"
#: Suffixes of budgets: ``50G`` = 50e9.
UNITS = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9}

#: LR sizes (height, width) used to trace and then to check that no size was baked in.
TRACE_SIZE = (64, 64)
CHECK_SIZE = (48, 80)
#: Largest |export - eager| accepted by the checks (outputs are in [0, 1]-ish units).
CHECK_TOLERANCE = 1e-4

_BUDGET_KEYS = {"multadds": "multadds", "params": "params"}


# -- the run's Pareto front ---------------------------------------------------------------------


def read_pareto(run_dir: str | Path) -> dict:
    """Read and check ``RUN_DIR/pareto.json``; errors name the file and the offending key."""
    path = Path(run_dir) / PARETO_FILE
    data = read_json_file(path, missing=f"no such file (is {run_dir} a search run directory?)")
    if not isinstance(data, dict) or data.get("format") != PARETO_FORMAT:
        raise SRNASError(f"{path}: not a Pareto file (expected \"format\": \"{PARETO_FORMAT}\")")
    space = data.get("space")
    if not isinstance(space, dict) or not isinstance(space.get("space"), str):
        raise SRNASError(f"{path}: 'space' must be an object with a 'space' name")
    if not isinstance(data.get("scale"), int):
        raise SRNASError(f"{path}: 'scale' must be an integer, got {data.get('scale')!r}")
    front = data.get("front")
    if not isinstance(front, list) or not front:
        raise SRNASError(f"{path}: 'front' is empty or missing (no trial has finished yet?)")
    for index, entry in enumerate(front):
        where = f"{path}: front[{index}]"
        if not isinstance(entry, dict):
            raise SRNASError(f"{where} is not an object")
        if not isinstance(entry.get("architecture"), dict):
            raise SRNASError(f"{where}: 'architecture' must be an object of label: value")
        for key in ("psnr", "params", "multadds"):
            value = entry.get(key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise SRNASError(f"{where}: {key!r} must be a finite number, got {value!r}")
    return data


# -- pick rules -----------------------------------------------------------------------------------


def parse_amount(text: str) -> float:
    """``"50G"`` -> 5e10, ``"300K"`` -> 3e5, ``"1.5M"`` -> 1.5e6, ``"1000"`` -> 1000.0 (units: :data:`UNITS`)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]?)\s*", text)
    if not match or match.group(2).upper() not in UNITS:
        raise SRNASError(f"budget {text!r} is not a number with an optional unit K, M or G (e.g. 50G, 300K)")
    return float(match.group(1)) * UNITS[match.group(2).upper()]


def _label(entry: dict) -> str:
    return f"trial {entry['trial']}" if "trial" in entry else "entry"


def _amount_text(value: float) -> str:
    for unit in ("G", "M", "K"):
        if value >= UNITS[unit]:
            return f"{value / UNITS[unit]:.4g}{unit}"
    return f"{value:.4g}"


def pick_best_psnr(front: Sequence[dict]) -> dict:
    """The entry with the highest PSNR; ties go to the one with fewer Mult-Adds."""
    if not front:
        raise SRNASError("the Pareto front is empty")
    return max(front, key=lambda e: (e["psnr"], -e["multadds"]))


def pick_knee(front: Sequence[dict]) -> dict:
    """The knee of the (PSNR up, Mult-Adds down) front: see the module docstring for the definition."""
    best = pick_best_psnr(front)
    if len(front) < 3:
        return best
    cheapest = min(front, key=lambda e: (e["multadds"], -e["psnr"]))
    costs = np.array([e["multadds"] for e in front], dtype=np.float64)
    psnrs = np.array([e["psnr"] for e in front], dtype=np.float64)
    cost_span, psnr_span = np.ptp(costs), np.ptp(psnrs)
    if cost_span == 0 or psnr_span == 0:
        return best

    def normalised(entry: dict) -> tuple[float, float]:
        # x: cheapness (1 = cheapest), y: quality (1 = best); a knee bulges towards (1, 1).
        return (costs.max() - entry["multadds"]) / cost_span, (entry["psnr"] - psnrs.min()) / psnr_span

    (ax, ay), (bx, by) = normalised(cheapest), normalised(best)
    length = math.hypot(bx - ax, by - ay)
    if length == 0:
        return best
    scored = []
    for entry in front:
        x, y = normalised(entry)
        # Signed distance from the line A->B; the normal (by - ay, ax - bx) has no negative component
        # (A is the cheapest, B the best), so it points towards (1, 1): positive = above the line.
        distance = ((by - ay) * (x - ax) - (bx - ax) * (y - ay)) / length
        scored.append((distance, entry["psnr"], -entry["multadds"], entry))
    distance, *_, knee = max(scored, key=lambda item: item[:3])
    return knee if distance > 1e-12 else best


def pick_under(front: Sequence[dict], objective: str, budget: float) -> dict:
    """The best-PSNR entry whose ``objective`` (``"multadds"`` or ``"params"``) is at most ``budget``."""
    if objective not in _BUDGET_KEYS:
        raise SRNASError(f"unknown budget {objective!r}; use under-multadds=... or under-params=...")
    fitting = [e for e in front if e[objective] <= budget]
    if not fitting:
        cheapest = min(front, key=lambda e: (e[objective], -e["psnr"]))
        raise SRNASError(
            f"no architecture on the front has {objective} <= {_amount_text(budget)}; the cheapest is "
            f"{_label(cheapest)} with {_amount_text(cheapest[objective])} {objective} "
            f"(PSNR {cheapest['psnr']:.3f} dB)"
        )
    return pick_best_psnr(fitting)


def pick(front: Sequence[dict], rule: str) -> dict:
    """Apply a rule written as on the command line: ``best-psnr``, ``knee``, ``under-multadds=50G``,
    ``under-params=300K``."""
    rule = rule.strip()
    if rule == "best-psnr":
        return pick_best_psnr(front)
    if rule == "knee":
        return pick_knee(front)
    match = re.fullmatch(r"under-(multadds|params)=(.+)", rule)
    if match:
        return pick_under(front, match.group(1), parse_amount(match.group(2)))
    raise SRNASError(f"unknown pick rule {rule!r}; use best-psnr, knee, under-multadds=50G or under-params=300K")


# -- what to export -------------------------------------------------------------------------------


@dataclass
class ExportSource:
    """A built network with its spec, whether its weights are trained, and where it came from."""

    model: nn.Module
    spec: dict
    scale: int
    trained: bool
    origin: dict = field(default_factory=dict)


def _same_architecture(saved: dict, listed: dict) -> bool:
    """Same space and sample, compared as JSON (tuples and lists alike)."""
    def plain(value):
        return json.loads(json.dumps(value))

    return saved.get("space") == listed["space"] and plain(saved.get("sample")) == plain(listed["sample"])


def resolve_export_source(reference: str | Path, rule: str = "best-psnr", *, seed: int = 0) -> ExportSource:
    """What ``srnas export REFERENCE --pick RULE`` exports.

    ``reference`` is a search run directory (``pareto.json`` inside; ``rule`` picks the entry; its
    ``model_file`` supplies trained weights when present), a model spec JSON file, or a model file
    (``srnas-model/1``, trained weights). Untrained networks are initialised after
    ``torch.manual_seed(seed)`` so exports are reproducible.
    """
    path = Path(reference).expanduser()
    if path.is_dir() and (path / PARETO_FILE).exists():
        pareto = read_pareto(path)
        entry = pick(pareto["front"], rule)
        spec = {"space": pareto["space"]["space"], "space_kwargs": dict(pareto["space"].get("space_kwargs") or {}),
                "sample": dict(entry["architecture"]), "scale": int(pareto["scale"])}
        origin = {"run_dir": str(path), "pick": rule, "strategy": pareto.get("strategy"),
                  "entry": {k: v for k, v in entry.items() if k != "architecture"}}
        model_file = entry.get("model_file")
        if model_file:
            resolved = resolve_model(str(path / model_file), int(pareto["scale"]))
            if not _same_architecture(resolved.spec, spec):
                raise SRNASError(f"{path / model_file}: its architecture differs from {_label(entry)} of "
                                 f"{path / PARETO_FILE}")
            # The model file's own spec is the one its weights were saved with.
            return ExportSource(resolved.model, resolved.spec, resolved.scale, True, origin)
        torch.manual_seed(seed)
        model = build_from_spec(spec, source=f"{path / PARETO_FILE}: {_label(entry)}")
        return ExportSource(model, spec, int(pareto["scale"]), False, origin)
    if path.is_dir():
        raise SRNASError(f"{path}: no {PARETO_FILE} here (expected a search run directory, a spec JSON or a "
                         "model file)")
    if not path.exists():
        raise SRNASError(f"{path}: no such file or folder")
    if path.suffix == ".pt":
        resolved = resolve_model(str(path))
        return ExportSource(resolved.model, resolved.spec, resolved.scale, True, {"model_file": str(path)})
    torch.manual_seed(seed)
    resolved = resolve_model(str(path))
    return ExportSource(resolved.model, resolved.spec, resolved.scale, False, {"spec_file": str(path)})


# -- tracing -------------------------------------------------------------------------------------


def _example(size: tuple[int, int], channels: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(1, channels, *size, generator=generator)


def _max_difference(a: torch.Tensor | np.ndarray, b: torch.Tensor) -> float:
    a = torch.as_tensor(a)
    if tuple(a.shape) != tuple(b.shape):
        return math.inf
    return float((a.float() - b.float()).abs().max())


def export_torchscript(model: nn.Module, path: str | Path) -> dict:
    """Trace ``model`` (eval mode, CPU) into a TorchScript file at ``path`` (written atomically).

    The traced module is checked against the eager model at :data:`CHECK_SIZE`; a mismatch (a size
    baked into the trace) raises :class:`SRNASError`. Returns ``{"check_size", "max_difference"}``.
    """
    model = model.eval().cpu()
    channels = int(getattr(model, "in_channels", 3))
    example, check = _example(TRACE_SIZE, channels, 0), _example(CHECK_SIZE, channels, 1)
    with torch.no_grad():
        expected = model(check)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings: checked below, by running another size
            try:
                traced = torch.jit.trace(model, example, check_trace=False)
            except Exception as exc:  # noqa: BLE001 - any tracing failure is reported the same way
                raise SRNASError(f"cannot trace the network for TorchScript: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        difference = _max_difference(traced(check), expected)
    if not difference <= CHECK_TOLERANCE:
        raise SRNASError(f"the TorchScript trace does not generalise to a {CHECK_SIZE[1]}x{CHECK_SIZE[0]} input "
                         f"(max difference {difference:.3g}): the network depends on its input size in Python")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated in favour of torch.export
        torch.jit.save(traced, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return {"check_size": list(CHECK_SIZE), "max_difference": difference}


def _onnx_runtime_output(path: Path, check: torch.Tensor) -> np.ndarray | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"lr": check.numpy()})[0]


def export_onnx(model: nn.Module, path: str | Path) -> dict:
    """Export ``model`` to ONNX at ``path`` (atomically) with dynamic height and width.

    Needs the ``onnx`` and ``onnxscript`` packages (torch's exporter). The file is checked with
    ``onnx.checker``; when ``onnxruntime`` is installed it is also run at :data:`CHECK_SIZE` and
    compared with the eager model. Returns ``{"check_size", "max_difference" (None when not run)}``.
    """
    try:
        import onnx
    except ImportError:
        raise SRNASError("ONNX export needs the 'onnx' package (pip install onnx onnxscript)") from None
    path = Path(path)
    model = model.eval().cpu()
    channels = int(getattr(model, "in_channels", 3))
    example, check = _example(TRACE_SIZE, channels, 0), _example(CHECK_SIZE, channels, 1)
    # Dim.DYNAMIC lets torch.export find the smallest size the network accepts by itself (a named Dim
    # with a wrong minimum sends torch's exporter into a much slower fallback).
    dynamic = torch.export.Dim.DYNAMIC
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        with torch.no_grad(), warnings.catch_warnings(), _quiet_exporter():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(model, (example,), temporary, input_names=["lr"], output_names=["sr"],
                                  dynamo=True, external_data=False, verbose=False,
                                  dynamic_shapes=({2: dynamic, 3: dynamic},))
            except ImportError as exc:
                raise SRNASError(f"ONNX export needs torch's exporter dependencies: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - torch.export raises many kinds
                raise SRNASError(f"cannot export the network to ONNX: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        onnx.checker.check_model(temporary)
        with torch.no_grad():
            expected = model(check)
        output = _onnx_runtime_output(Path(temporary), check)
        difference = None if output is None else _max_difference(output, expected)
        if difference is not None and not difference <= CHECK_TOLERANCE:
            raise SRNASError(f"the ONNX model does not match the network at a {CHECK_SIZE[1]}x{CHECK_SIZE[0]} "
                             f"input (max difference {difference:.3g})")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return {"check_size": list(CHECK_SIZE), "max_difference": difference}


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """torch's ONNX exporter prints progress lines to stdout and logs warnings about optional packages
    (torchvision) it does not need here; keep them out of the command's output."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


# -- the whole export ------------------------------------------------------------------------------


@dataclass
class ExportResult:
    output_dir: Path
    files: dict[str, Path]
    source: ExportSource
    checks: dict[str, Any]


def export_model(source: ExportSource, output_dir: str | Path, *, onnx: bool = True) -> ExportResult:
    """Write ``architecture.json``, ``model.ts``, ``model.onnx`` (unless ``onnx=False``) and
    ``export.json`` for ``source`` into ``output_dir`` (each file atomically).

    ``architecture.json`` is written first, so a failing trace or ONNX export still leaves the
    architecture on disk.
    """
    output_dir = Path(output_dir)
    files = {"architecture": output_dir / "architecture.json", "torchscript": output_dir / "model.ts"}
    atomic_write_json(files["architecture"], source.spec)
    checks = {"torchscript": export_torchscript(source.model, files["torchscript"])}
    if onnx:
        files["onnx"] = output_dir / "model.onnx"
        checks["onnx"] = export_onnx(source.model, files["onnx"])
    files["summary"] = output_dir / "export.json"
    atomic_write_json(files["summary"], {
        "format": "srnas-export/1", "spec": source.spec, "scale": source.scale, "trained_weights": source.trained,
        "origin": source.origin, "files": {k: v.name for k, v in files.items()}, "checks": checks,
        "model_file_format": MODEL_FILE_FORMAT, "torch": torch.__version__,
        "input": "1x3xhxw float32 RGB in [0, 1]", "output": f"1x3x{source.scale}hx{source.scale}w",
    })
    return ExportResult(output_dir, files, source, checks)
