"""Process-level helpers: device choice, seeding, atomic file writes, reading a YAML mapping.

Writes of checkpoints, models and result files go through :func:`atomic_write_bytes` /
:func:`atomic_torch_save`: the data is written to a temporary file in the same folder and renamed
over the target, so a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import ipaddress
import io
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import yaml

from .errors import ConfigError, SRNASError

__all__ = ["resolve_device", "seed_everything", "numpy_seed", "mutable_random_state", "ieee_float32",
           "float32_precision_switches", "atomic_write_bytes", "atomic_write_json", "atomic_torch_save",
           "machine_description", "read_yaml_mapping"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; anything else is checked, not trusted."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise SRNASError(f"device {device!r} is not a torch device (use auto, cpu, cuda or cuda:N)") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SRNASError(f"device {device!r} was asked for but CUDA is not available on this machine")
    return resolved


#: Where NNI's mutables draw when their caller passes no generator (:mod:`~srnas_nni.nni_adapter.loader` routes
#: them here). NNI's own default is a fresh ``RandomState()`` per draw, seeded from the OS: the path
#: sampling of ``random_one_shot`` (and of the spaces' own supernet modules) could never be reproduced.
_UNSEEDED_MUTABLE_DRAWS = np.random.RandomState()


def numpy_seed(seed: int) -> int:
    """``seed`` as a seed numpy's ``RandomState`` accepts (``0 <= seed < 2**32``): itself when it fits,
    else a hash of it (distinct large seeds stay distinct, unlike ``seed % 2**32``)."""
    seed = int(seed)
    if 0 <= seed < 2**32:
        return seed
    return int(np.random.SeedSequence(abs(seed)).generate_state(1, np.uint32)[0])


def mutable_random_state() -> np.random.RandomState:
    """The generator NNI's mutables draw from when called without one; :func:`seed_everything` seeds it."""
    return _UNSEEDED_MUTABLE_DRAWS


def seed_everything(seed: int) -> None:
    """Seed Python, numpy, torch (all devices) and NNI's otherwise unseeded mutable draws.

    A search calls this once before it builds anything, so every draw that is not from a generator
    of its own (a strategy's ``seed`` option, a patch stream's seed) follows the experiment's seed.
    """
    random.seed(seed)
    np.random.seed(numpy_seed(seed))
    torch.manual_seed(seed)
    _UNSEEDED_MUTABLE_DRAWS.seed(numpy_seed(seed))


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1, ``[::1]``): addresses no other machine
    can reach, which every server srnas-nni starts binds by default."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def random_states() -> dict[str, Any]:
    """The state of every generator :func:`seed_everything` seeds (in memory only: library objects)."""
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
              "mutable": _UNSEEDED_MUTABLE_DRAWS.get_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: dict[str, Any]) -> None:
    """Put back what :func:`random_states` returned."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    _UNSEEDED_MUTABLE_DRAWS.set_state(states["mutable"])
    if "cuda" in states:
        torch.cuda.set_rng_state_all(states["cuda"])


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[dict[str, Any]]:
    """Inside: every generator seeded with ``seed``; after: the caller's generators as they were.

    Yields a dict that holds, on exit, the generators' states at the end of the block: a later
    :func:`set_random_states` of it continues exactly where the block stopped drawing.
    """
    saved = random_states()
    after: dict[str, Any] = {}
    seed_everything(seed)
    try:
        yield after
    finally:
        after.update(random_states())
        set_random_states(saved)


def float32_precision_switches() -> list[tuple[Any, str, Any]]:
    """``(owner, attribute, IEEE value)`` of this torch's CUDA float32 switches: convolutions, matmuls."""
    cudnn_conv = getattr(torch.backends.cudnn, "conv", None)
    if cudnn_conv is not None and hasattr(cudnn_conv, "fp32_precision"):  # torch >= 2.9: the new switches
        return [(cudnn_conv, "fp32_precision", "ieee"), (torch.backends.cuda.matmul, "fp32_precision", "ieee")]
    return [(torch.backends.cudnn, "allow_tf32", False), (torch.backends.cuda.matmul, "allow_tf32", False)]


@contextlib.contextmanager
def ieee_float32() -> Iterator[None]:
    """Inside: CUDA float32 convolutions and matmuls in full IEEE precision (no TF32); restored after.

    PyTorch lets cuDNN run float32 convolutions in TF32 by default (a 10-bit mantissa). That is
    fine for training, but it moved a model's scored PSNR by 6e-4 dB against the same model on a
    CPU (an H100), so every score (validation, evaluation, tiled inference) is computed in float32 proper.
    No effect on a CPU.
    """
    switches = float32_precision_switches()
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in switches]
    try:
        for owner, name, value in switches:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def _file_mode() -> int:
    # mkstemp creates 0600 files; a result file gets the mode an ordinary write would give it.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it: a crash leaves the old file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def _json_default(value: Any):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (Path,)):
        return str(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def machine_description(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Where figures were measured: platform, processor, Python and torch versions, device, torch threads."""
    import platform

    device = torch.device(device)
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "torch": torch.__version__, "device": str(device),
            "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "threads": torch.get_num_threads()}


def portable_paths(value: Any, root: str | os.PathLike) -> Any:
    """``value`` (JSON-like) with every absolute path string made relative to ``root``.

    A result file that says ``/home/alice/srnas/benchmarks/results`` means nothing on another machine;
    ``benchmarks/results`` or ``../shared/data/benchmark`` (relative to the repository) does. Only strings
    that are absolute paths are touched (a URL such as ``sqlite:////x`` is not one).
    """
    if isinstance(value, dict):
        return {key: portable_paths(item, root) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable_paths(item, root) for item in value]
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and os.path.isabs(value) and "\n" not in value:
        return os.path.relpath(value, root)
    return value


def write_result_file(path: str | os.PathLike, payload: Any, root: str | os.PathLike) -> None:
    """Write a benchmark's result ``payload`` as indented JSON, atomically, with its paths relative to
    ``root`` (see :func:`portable_paths`); values JSON cannot hold are written as text."""
    portable = portable_paths(json.loads(json.dumps(payload, default=str)), root)
    atomic_write_bytes(path, (json.dumps(portable, indent=2) + "\n").encode())


def read_json_file(path: str | os.PathLike, *, error: type[Exception] = SRNASError,
                   missing: str = "no such file") -> Any:
    """The JSON document in ``path``; ``error`` (one line naming the file, and the line and column of a syntax
    error) when it is missing (``missing`` says what to tell), unreadable or not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: {missing}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None


def read_yaml_mapping(path: str | os.PathLike, *, what: str, shape: str) -> dict[str, Any]:
    """The YAML mapping in ``path`` (an empty file is ``{}``); a :class:`ConfigError` naming the file, and
    the line and column of a syntax error, otherwise. ``what`` names the file's kind in errors ("experiment
    file"), ``shape`` hints at its keys ("space:, strategy:, ...")."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: an {what} is a mapping ({shape}), not a {type(data).__name__}")
    return data
