"""Experiment files: one YAML composes a space, a strategy, an evaluator budget and NNI settings.

::

    space: hnas-proxy                 # preset name, path, or {preset: hnas-proxy, <overrides>} / {space: hnas, ...}
    strategy: hierarchical_rl         # preset name, path, or {name: nsga2, <options>} / {preset: nsga2, <overrides>}
    evaluator:
      data: builtin                   # training images: builtin, a folder, a DIV2K-style root
      val_data: builtin:val           # whole-image validation (PSNR/SSIM on Y, crop = scale)
      train: {steps: 200, batch_size: 8, patch_size: 48}      # each candidate's budget (TrainConfig)
      supernet: {steps: 200, batch_size: 8, patch_size: 48}   # one-shot strategies' supernet budget
      objective: psnr                 # scalarisation NNI ranks by: psnr, hnas, deconas, budget
    experiment: {max_trials: 20, max_duration: 1h, trial_concurrency: 1, engine: sequential}
    tracking: {storage: null, study_name: null}              # default sqlite:///<output_dir>/study.db
    seed: 0                           # every random choice: weights, patches, the strategy's sampler
    output_dir: runs/my-search

:func:`load_config` reads a file, applies ``--set key.path=value`` overrides, and validates every
key before anything runs: unknown keys (with the closest valid key), wrong types, out-of-range
values, unknown preset or strategy names (with the available ones), a strategy that cannot search
the space, a scale that contradicts the space, data folders that do not exist. Each problem is one
:class:`~srnas_nni.errors.ConfigError` line naming the file, the key path and the value.
:meth:`ExperimentConfig.check_images` then opens every image by its header (``srnas validate``,
``search`` and ``worker`` do, before anything runs).
:func:`smoke` shrinks every budget so that any valid file finishes in well under a minute.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from ..errors import ConfigError, SRNASError
from ..presets import closest_hint
from ..runtime import read_yaml_mapping, seeded

__all__ = ["ConfigError", "ExperimentConfig", "load_config", "parse_config", "apply_overrides", "smoke",
           "parse_duration", "SCHEMA"]


# -- the schema -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """One key of the schema: accepted types, default, and an optional check returning a problem or None."""

    types: tuple[type, ...]
    default: Any = None
    check: Callable[[Any], str | None] | None = None
    doc: str = ""


def _at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v is None or v >= low else f"must be >= {low}"


def _one_of(*choices: Any) -> Callable[[Any], str | None]:
    names = ", ".join("null" if choice is None else str(choice) for choice in choices)
    return lambda v: None if v in choices else f"must be one of {names}"


def _hr_size(value: Any) -> str | None:
    if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        return "must be [height, width], two positive integers"
    return None


def _duration(value: Any) -> str | None:
    try:
        parse_duration(value)
    except ValueError as exc:
        return str(exc)
    return None


_INT, _FLOAT, _STR, _BOOL = (int,), (int, float), (str,), (bool,)
_NONE = type(None)

SCHEMA: dict[str, dict[str, Key]] = {
    "evaluator": {
        "data": Key(_STR, "builtin", doc="training images: builtin, a folder of HR images, a DIV2K-style root"),
        "val_data": Key(_STR, "builtin:val", doc="validation images (whole images)"),
        "scale": Key(_INT + (_NONE,), None, _one_of(None, 2, 3, 4), doc="SR factor; default: the space's"),
        "train": Key((dict,), {}, doc="each candidate's training budget (steps, batch_size, patch_size, ...)"),
        "supernet": Key((dict,), {}, doc="one-shot supernet budget: steps, batch_size, patch_size, learning_rate, "
                                         "loss, val_batches, checkpoint_every"),
        "objective": Key(_STR, "psnr", doc="scalarisation NNI ranks by: psnr, hnas, deconas, budget"),
        "objective_options": Key((dict,), {}),
        "hr_size": Key((list,), [720, 1280], _hr_size, doc="HR size at which Mult-Adds are counted"),
        "skip_bad": Key(_BOOL, False, doc="leave out unreadable or too-small images with one warning (--skip-bad) "
                                          "instead of refusing the data"),
        "cache_dir": Key(_STR + (_NONE,), None),
        "device": Key(_STR, "auto"),
    },
    "experiment": {
        "max_trials": Key(_INT + (_NONE,), 20, _at_least(1), doc="architectures to evaluate (multi-trial)"),
        "max_duration": Key(_STR + _INT + (_NONE,), None, _duration, doc="e.g. 90m, 2h, 3600 (seconds)"),
        "trial_concurrency": Key(_INT, 1, _at_least(1)),
        "engine": Key(_STR, "sequential", _one_of("sequential", "nni"),
                      doc="sequential: in this process; nni: NNI's manager, web UI and training service"),
        "port": Key(_INT, 8080, lambda v: None if 0 < v < 65536 else "must be a TCP port (1-65535)"),
        "host": Key(_STR, "127.0.0.1", doc="interface NNI's web UI binds to"),
        "training_service": Key((dict,), {"platform": "local"},
                                doc="NNI training-service settings, passed through unchanged"),
        "devices": Key(_INT, 1, _at_least(1), doc="one-shot strategies: processes (CPU, gloo) or GPUs (NCCL) per "
                                                  "node that train the supernet data-parallel"),
        "num_nodes": Key(_INT, 1, _at_least(1), doc="one-shot strategies: machines running the same search "
                                                    "(MASTER_ADDR, MASTER_PORT, NODE_RANK set on each)"),
    },
    "tracking": {
        "storage": Key(_STR + (_NONE,), None, doc="Optuna storage URL; default sqlite:///<output_dir>/study.db"),
        "study_name": Key(_STR + (_NONE,), None, doc="default: the experiment file's name (else SPACE-STRATEGY)"),
    },
}
TOP_LEVEL: dict[str, Key] = {
    "space": Key((str, dict), None),
    "strategy": Key((str, dict), None),
    "evaluator": Key((dict,), {}),
    "experiment": Key((dict,), {}),
    "tracking": Key((dict,), {}),
    "seed": Key(_INT, 0, lambda v: None if 0 <= v < 2 ** 63 else "must be in 0..2**63-1 (a random seed)",
                doc="every random choice of the run; replaces a strategy preset's seed (not one set inline "
                    "in strategy:)"),
    "output_dir": Key(_STR + (_NONE,), None),
    "description": Key(_STR + (_NONE,), None),
}
_SUPERNET_KEYS = {"steps": _INT, "batch_size": _INT, "patch_size": _INT, "learning_rate": _FLOAT, "loss": _STR,
                  "val_batches": _INT, "checkpoint_every": _INT}
_SUPERNET_DEFAULTS = {"steps": 200, "batch_size": 8, "patch_size": 48, "learning_rate": 2e-4, "loss": "l1",
                      "val_batches": 4, "checkpoint_every": 25}


def parse_duration(value: Any) -> float | None:
    """``90`` (seconds), ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` -> seconds; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 90m or 2h")
    if isinstance(value, (int, float)):
        if abs(value) > 1e15:  # float() of a huge int overflows; no run lasts 30 million years
            raise ValueError("must be a duration of at most 1e15 seconds")
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(value))
        if not match:
            raise ValueError(f"must be a duration such as 90m or 2h, not {value!r}")
        seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("must be a positive duration")
    return seconds


# -- the validated configuration ------------------------------------------------------------------


@dataclass
class ExperimentConfig:
    """A validated experiment file. ``data`` is the full mapping (defaults filled in) it was read as."""

    data: dict[str, Any]
    source: str = "<config>"
    space_name: str = ""
    space_options: dict[str, Any] = field(default_factory=dict)  # the space's keyword arguments but the scale
    #: The SR factor: the one place it is kept (the space's and ``evaluator.scale`` agree once validated).
    scale: int = 0
    strategy_name: str = ""
    strategy_options: dict[str, Any] = field(default_factory=dict)
    #: The instances validation built; the run uses these, it does not build them again.
    space: Any = field(default=None, repr=False)
    strategy: Any = field(default=None, repr=False)
    #: The random generators' states after building them from ``seed`` (:func:`~srnas_nni.runtime.seeded`).
    random_states: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def space_spec(self) -> dict[str, Any]:
        """``{"space": name, "space_kwargs": {...}}`` as run files record it (scale included)."""
        return {"space": self.space_name, "space_kwargs": {**self.space_options, "scale": self.scale}}

    @property
    def evaluator(self) -> dict[str, Any]:
        return self.data["evaluator"]

    @property
    def experiment(self) -> dict[str, Any]:
        return self.data["experiment"]

    @property
    def tracking(self) -> dict[str, Any]:
        return self.data["tracking"]

    @property
    def seed(self) -> int:
        return int(self.data["seed"])

    @property
    def output_dir(self) -> Path:
        return Path(self.data["output_dir"])

    @property
    def study_name(self) -> str:
        return self.tracking["study_name"]

    def storage_url(self) -> str:
        return self.tracking["storage"] or f"sqlite:///{(self.output_dir / 'study.db').resolve()}"

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {message}")

    def build_space(self):
        """A fresh instance of the configured space (for a process other than the one that validated it)."""
        from ..spaces import get as get_space

        return get_space(self.space_spec["space"], **self.space_spec["space_kwargs"])

    def build_strategy(self):
        from ..strategies import get as get_strategy

        return get_strategy(self.strategy_name, **copy.deepcopy(self.strategy_options))

    def supernet_budget(self) -> dict[str, Any]:
        return {**_SUPERNET_DEFAULTS, **self.evaluator["supernet"]}

    def check_images(self) -> dict[str, Any]:
        """Open every training and validation image by its header, before anything runs.

        What ``srnas validate``, ``search`` and ``worker`` do first (cheap: no pixel is decoded, and
        each file's outcome is cached by path, size and modification time, on disk too with
        ``evaluator.cache_dir``). An image is unusable if it is not a readable image, is cut short,
        or is too small for the scale, the training patch (``evaluator.train``, and for one-shot
        strategies ``evaluator.supernet``) or whole-image scoring; see
        :func:`~srnas_nni.evaluation.data.check_images`. Unusable images are a :class:`ConfigError`
        naming the key, the first such file and how many more there are; with
        ``evaluator.skip_bad`` they are left out with one
        :class:`~srnas_nni.evaluation.data.SkippedImageWarning` line per key instead (and no warning
        per file later in the run), unless none is left. Returns ``{"data": ImageCheck,
        "val_data": ImageCheck}``, or ``{}`` when the trials run on other machines (``engine: nni``
        with a training service other than ``local``), whose copies of the data these are not.
        """
        settings = self.experiment
        if settings["engine"] == "nni" and settings["training_service"].get("platform", "local") != "local":
            return {}
        import warnings

        from ..evaluation.data import SkippedImageWarning, check_images, mark_skip_reported
        from ..evaluation.trainer import TrainConfig
        from ..strategies import is_one_shot

        evaluator = self.evaluator
        train_patch = TrainConfig.from_dict(evaluator["train"]).patch_size
        one_shot = is_one_shot(self.strategy)
        supernet_patch = self.supernet_budget()["patch_size"] if one_shot else None
        rules = {
            "data": {"split": "train", "patch_size": max(train_patch, supernet_patch or 0)},
            "val_data": {"split": "val", "score_crop": self.scale, "patch_size": supernet_patch},
        }
        checks: dict[str, Any] = {}
        announced: set[str] = set()  # data and val_data are often one folder: each file is named once
        for key, rule in rules.items():
            try:
                check = check_images(evaluator[key], self.scale, cache_dir=evaluator["cache_dir"], **rule)
            except SRNASError as exc:
                raise self.error(f"evaluator.{key}", str(exc)) from None
            checks[key] = check
            if not check.problems:
                continue
            first, more = check.problems[0], len(check.problems) - 1
            if not evaluator["skip_bad"]:
                others = f"; {more} more unusable in {check.root}" if more else ""
                raise self.error(f"evaluator.{key}", f"{first}{others}; fix or remove {'them' if more else 'it'}, "
                                                     "or pass --skip-bad (evaluator.skip_bad: true)")
            if check.usable == 0:
                raise self.error(f"evaluator.{key}", f"{check.root}: none of the {check.total} images is usable "
                                                     f"(the first: {first})")
            new = [problem for problem in check.problems if problem.path not in announced]
            announced.update(problem.path for problem in new)
            mark_skip_reported(problem.path for problem in check.problems)
            if new:
                rest = [Path(problem.path).name for problem in new[1:]]
                listed = "" if not rest else (f"; also {', '.join(rest[:5])}"
                                              + (f" and {len(rest) - 5} more" if len(rest) > 5 else ""))
                warnings.warn(SkippedImageWarning(f"evaluator.{key}: skipping {len(check.problems)} of {check.total} "
                                                  f"images in {check.root}: {new[0]}{listed}"), stacklevel=2)
        return checks

    def to_yaml(self) -> str:
        """The validated file as a run records it: defaults filled in, ``evaluator.scale`` included."""
        data = copy.deepcopy(self.data)
        data["evaluator"]["scale"] = self.scale
        return yaml.safe_dump(data, sort_keys=False)


# -- reading --------------------------------------------------------------------------------------


def load_config(path: str | Path, overrides: list[str] | None = None, *, smoke_run: bool = False,
                check_data: bool = True) -> ExperimentConfig:
    """Read, override (``key.path=value`` strings) and validate an experiment file.

    ``smoke_run`` shrinks every budget (see :func:`smoke`) after validation of the file as written.
    """
    path = Path(path)
    data = read_yaml_mapping(path, what="experiment file", shape="space:, strategy:, ...")
    data = apply_overrides(data, overrides or [], source=str(path))
    data.setdefault("tracking", {})
    if isinstance(data["tracking"], dict) and data["tracking"].get("study_name") is None:
        data["tracking"]["study_name"] = path.stem
    if data.get("output_dir") is None:
        data["output_dir"] = str(Path("runs") / path.stem)
    config = parse_config(data, source=str(path), check_data=check_data)
    if smoke_run:
        config = parse_config(smoke(config.data, config.scale), source=f"{path} (--smoke)", check_data=check_data)
    return config


def apply_overrides(data: dict[str, Any], overrides: list[str], *, source: str = "--set") -> dict[str, Any]:
    """``["evaluator.train.steps=10", "strategy.name=nsga2"]`` applied to a copy of ``data``.

    Values are read as YAML (``10`` is a number, ``[1, 2]`` a list, ``null`` None); intermediate
    mappings are created as needed; a preset name given as a string is turned into a mapping when a
    key below it is set (``strategy=nsga2`` then ``strategy.population_size=8``).
    """
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"--set {item!r}: empty key path")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if isinstance(child, str) and part in ("space", "strategy") and depth == 0:
                child = {"preset": child}
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {'.'.join(parts[:depth + 1])} is not a mapping")
            node[part] = child
            node = child
        node[parts[-1]] = value
    return data


def parse_config(data: dict[str, Any], *, source: str = "<config>", check_data: bool = True) -> ExperimentConfig:
    """Validate a mapping (as read from YAML) into an :class:`ExperimentConfig`."""
    data = copy.deepcopy(data)

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(f"{source}: {_printable(key)}: {' '.join(str(message).splitlines())}")

    for key in data:
        if key not in TOP_LEVEL:
            raise fail(key, f"unknown key{closest_hint(key, TOP_LEVEL)}; valid keys: {', '.join(TOP_LEVEL)}")
    for key in ("space", "strategy"):
        if data.get(key) is None:
            raise fail(key, "missing (a preset name, a path, or a mapping)")
    for key, spec in TOP_LEVEL.items():
        if key not in data or data[key] is None:
            data[key] = copy.deepcopy(spec.default)
        _check_type(key, data[key], spec, fail)
    for section, keys in SCHEMA.items():
        values = data[section]
        for key in values:
            if key not in keys:
                raise fail(f"{section}.{key}", f"unknown key{closest_hint(key, keys)}; "
                                               f"valid keys: {', '.join(keys)}")
        for key, spec in keys.items():
            if key not in values:
                values[key] = copy.deepcopy(spec.default)
            _check_type(f"{section}.{key}", values[key], spec, fail)

    config = ExperimentConfig(data=data, source=source)
    # Built from the experiment's seed, as the run would build them: the run continues from these
    # generator states (random_states), so the instances validated are the ones that run.
    with seeded(config.seed) as config.random_states:
        _resolve_space(config, fail)
        _resolve_strategy(config, fail)
    _check_evaluator(config, fail, check_data)
    _check_compatibility(config, fail)
    _check_distributed(config, fail)
    if config.tracking["study_name"] is None:  # a file's name when loaded from one; else space and strategy
        config.tracking["study_name"] = f"{config.space_name}-{config.strategy_name}"
    return config


def _printable(key: Any) -> str:
    """A key path as one line: keys with newlines or other control characters are escaped."""
    key = str(key)
    return key if key.isprintable() else repr(key)[1:-1]


def _check_string_keys(key: str, mapping: dict[str, Any], fail) -> None:
    """Options passed on as keyword arguments must have string names (YAML also allows 1:, null:, ...)."""
    for name in mapping:
        if not isinstance(name, str):
            raise fail(f"{key}.{name}", f"{name!r} is {type(name).__name__}; option names are strings")


def _type_names(types: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true/false", dict: "a mapping",
             list: "a list", type(None): "null"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def _check_type(key: str, value: Any, spec: Key, fail) -> None:
    ok = isinstance(value, spec.types) and not (isinstance(value, bool) and bool not in spec.types)
    if not ok:
        raise fail(key, f"{value!r} is {type(value).__name__}; expected {_type_names(spec.types)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise fail(key, f"{value!r} is not a finite number")
    if spec.check is not None:
        problem = spec.check(value)
        if problem:
            raise fail(key, f"{value!r} {problem}")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} characters)"


def _resolve_entry(section: str, raw: Any, preset_dir: Path, name_key: str, registered: list[str],
                   fail) -> tuple[str, dict[str, Any]]:
    """The registered name and the options of a ``space:`` or ``strategy:`` entry.

    An entry is a preset name or path, ``{preset: ..., <overrides>}`` or ``{<name_key>: NAME, <options>}``;
    a bare registered name with no preset file means that name at its defaults.
    """
    from ..presets import read_preset

    entry = {"preset": raw} if isinstance(raw, str) else dict(raw)
    _check_string_keys(section, entry, fail)
    options: dict[str, Any] = {}
    if "preset" in entry:
        preset = entry.pop("preset")
        if not isinstance(preset, str):
            raise fail(f"{section}.preset", f"{_short(preset)} must be a preset name or path")
        try:
            preset_data, _ = read_preset(preset, preset_dir, kind=section, required_key=name_key)
        except OSError as exc:  # e.g. a name too long for a file name
            raise fail(section, f"preset {_short(preset)} cannot be read: {exc.strerror}") from None
        except SRNASError as exc:
            if preset in registered:
                preset_data = {name_key: preset}
            else:
                raise fail(section, str(exc)) from None
        name = preset_data[name_key]
        options.update({k: v for k, v in preset_data.items() if k not in (name_key, "description")})
        if name_key in entry:
            raise fail(f"{section}.{name_key}", f"give either a preset or a {section} name, not both")
    elif name_key in entry:
        name = entry.pop(name_key)
    else:
        raise fail(section, f"a mapping needs 'preset' (a preset name or path) or '{name_key}' (a registered "
                            f"{section})")
    if name not in registered:
        raise fail(section, f"unknown {section} {name!r}{closest_hint(str(name), registered)}; "
                            f"available: {', '.join(registered)}")
    entry.pop("description", None)
    options.update(entry)
    return str(name), options


def _resolve_space(config: ExperimentConfig, fail) -> None:
    from ..spaces import SPACE_PRESET_DIR, get as get_space, list_spaces

    name, kwargs = _resolve_entry("space", config.data["space"], SPACE_PRESET_DIR, "space", list_spaces(), fail)
    scale = config.evaluator["scale"]
    if scale is not None:
        if "scale" in kwargs and kwargs["scale"] != scale:  # the space checks its own scale's type
            raise fail("evaluator.scale", f"{scale} contradicts the space's scale {kwargs['scale']!r} "
                                          "(set one of them)")
        kwargs["scale"] = int(scale)
    try:
        space = get_space(name, **kwargs)
    except SRNASError as exc:
        raise fail("space", str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise fail("space", f"{name}: {exc}") from None
    kwargs.pop("scale", None)
    config.space_name, config.space_options, config.scale, config.space = name, kwargs, int(space.scale), space


def _resolve_strategy(config: ExperimentConfig, fail) -> None:
    from ..runtime import numpy_seed
    from ..strategies import STRATEGY_PRESET_DIR, accepts_option, get as get_strategy, list_strategies

    raw = config.data["strategy"]
    name, options = _resolve_entry("strategy", raw, STRATEGY_PRESET_DIR, "name", list_strategies(), fail)
    # The experiment's seed drives the strategy's sampler, replacing a preset file's ``seed:`` (presets are
    # shared; the run is the experiment file's). Only a seed written in this file's own strategy mapping
    # (or --set strategy.seed=N) pins the strategy's sampler apart from the experiment's seed.
    if accepts_option(name, "seed") and not (isinstance(raw, dict) and "seed" in raw):
        options["seed"] = numpy_seed(config.seed)
    try:
        strategy = get_strategy(name, **copy.deepcopy(options))
    except SRNASError as exc:
        raise fail("strategy", str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise fail("strategy", f"{name}: {exc}") from None
    config.strategy_name, config.strategy_options, config.strategy = name, options, strategy


def _check_evaluator(config: ExperimentConfig, fail, check_data: bool) -> None:
    from ..evaluation.objectives import make_scalarization
    from ..evaluation.trainer import TrainConfig

    evaluator = config.evaluator
    for key in ("train", "supernet", "objective_options"):
        _check_string_keys(f"evaluator.{key}", evaluator[key], fail)
    _check_string_keys("experiment.training_service", config.experiment["training_service"], fail)
    try:
        TrainConfig.from_dict(evaluator["train"])
    except SRNASError as exc:
        raise fail("evaluator.train", str(exc).replace("train.", "")) from None
    for key, value in evaluator["supernet"].items():
        if key not in _SUPERNET_KEYS:
            raise fail(f"evaluator.supernet.{key}", f"unknown key{closest_hint(key, _SUPERNET_KEYS)}; "
                                                    f"valid keys: {', '.join(_SUPERNET_KEYS)}")
        _check_type(f"evaluator.supernet.{key}", value,
                    Key(_SUPERNET_KEYS[key], check=_at_least(1) if _SUPERNET_KEYS[key] is _INT else None), fail)
        if key == "learning_rate" and value <= 0:
            raise fail("evaluator.supernet.learning_rate", f"{value!r} must be > 0")
    try:
        make_scalarization(evaluator["objective"], **evaluator["objective_options"])
    except SRNASError as exc:
        raise fail("evaluator.objective", str(exc)) from None
    if check_data:
        for key in ("data", "val_data"):
            spec = evaluator[key]
            if spec.startswith("builtin"):
                continue
            try:
                exists = Path(spec).exists()
            except OSError as exc:  # e.g. a name too long for a file name
                raise fail(f"evaluator.{key}", f"{_short(spec)}: {exc.strerror}") from None
            if not exists:
                raise fail(f"evaluator.{key}", f"{spec!r}: no such folder")


def _check_compatibility(config: ExperimentConfig, fail) -> None:
    from ..strategies import check_compatible

    try:
        check_compatible(config.strategy, config.space)
    except SRNASError as exc:
        raise fail("strategy", str(exc)) from None


def _check_distributed(config: ExperimentConfig, fail) -> None:
    """``experiment.devices`` / ``num_nodes`` above 1 train one supernet data-parallel: one-shot strategies only."""
    from ..strategies import is_one_shot

    settings = config.experiment
    for key in ("devices", "num_nodes"):
        if settings[key] > 1 and not is_one_shot(config.strategy):
            raise fail(f"experiment.{key}", f"{settings[key]}: data-parallel training is for one-shot strategies "
                                            f"(one supernet); {config.strategy_name!r} trains one candidate per "
                                            "trial: run trials side by side with experiment.trial_concurrency")


# -- smoke runs -----------------------------------------------------------------------------------


def smoke(data: dict[str, Any], scale: int) -> dict[str, Any]:
    """A copy of an experiment mapping with every budget shrunk: a set-up check, not a search."""
    data = copy.deepcopy(data)
    evaluator = data["evaluator"]
    patch = 8 * int(scale)
    evaluator["train"] = {**evaluator.get("train", {}), "steps": min(int(evaluator["train"].get("steps", 2)), 2),
                          "batch_size": 2, "patch_size": patch, "val_every": 0, "checkpoint_every": 0}
    evaluator["supernet"] = {**evaluator.get("supernet", {}), "steps": 2, "batch_size": 2, "patch_size": patch,
                             "val_batches": 1, "checkpoint_every": 1}
    experiment = data["experiment"]
    trials = experiment.get("max_trials")
    experiment["max_trials"] = 2 if trials is None else min(int(trials), 2)
    experiment["max_duration"] = "5m"
    return data
