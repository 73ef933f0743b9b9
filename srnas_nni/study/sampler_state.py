"""Plain-data snapshots of an Optuna search's in-memory state, for checkpoints that outlive library upgrades.

A strategy checkpoint must load after Optuna (or numpy) is upgraded, so it holds no pickled Optuna
object: Optuna 5.x samplers hold a ``threading.Lock`` and cannot be pickled at all, and a pickled
``FrozenTrial`` ties the file to one library layout. What a search needs back is plain data:

* :func:`sampler_random_state` / :func:`restore_sampler_random_state`: the state of every random
  generator a sampler holds (numpy ``RandomState`` or ``Generator``, found by walking the sampler's
  attributes and those of the Optuna or srnas-nni objects it holds, e.g. the ``LazyRandomState`` of
  ``TPESampler`` or the ``RandomSampler`` NSGA-II falls back on), keyed by attribute path. Restored into
  a sampler rebuilt from its name, seed and options, the next ``ask`` draws what it would have drawn
  without the interruption. Everything else a sampler keeps is derived from the study (NSGA-II/III
  generations and parents are trial and study system attributes; caches are rebuilt).
* :func:`study_to_plain` / :func:`restore_study`: an in-memory study's trials (parameters with
  ``distribution_to_json`` distributions, values, state, user and system attributes, intermediate
  values, times) and its system attributes.

Everything returned is JSON-serialisable; the functions take and return only builtins.
"""

from __future__ import annotations

import datetime
import logging
import zlib
from typing import Any, Iterator

import numpy as np
import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.trial import FrozenTrial, TrialState

__all__ = ["RANDOM_STATE_FORMAT", "sampler_random_state", "restore_sampler_random_state", "study_to_plain",
           "restore_study", "trial_to_plain", "trial_from_plain"]

_logger = logging.getLogger(__name__)

#: Version of the :func:`sampler_random_state` layout (a later layout can still read this one).
RANDOM_STATE_FORMAT = 1
#: How deep :func:`sampler_random_state` follows attributes (sampler -> strategy object -> lazy state -> rng).
_MAX_DEPTH = 4
_OWN_MODULES = ("optuna", "srnas_nni")


# -- random generators ----------------------------------------------------------------------------


def _generators(sampler: Any) -> Iterator[tuple[str, Any, str]]:
    """``(path, owner, attribute)`` of each numpy generator slot under ``sampler``, first path per object.

    A slot holding ``None`` where a generator is expected (Optuna's ``LazyRandomState._rng`` before first
    use) is not reported: a rebuilt sampler has the same lazy slot, seeded from the same seed.
    """
    seen: set[int] = {id(sampler)}
    # Breadth first, attributes in name order: a generator shared by several holders (NSGA-II hands its
    # own to its child-generation strategy) is named by its shortest path, the sampler's own attribute.
    queue: list[tuple[Any, str, int]] = [(sampler, "", 0)]
    while queue:
        owner, prefix, depth = queue.pop(0)
        attributes = getattr(owner, "__dict__", None)
        if not isinstance(attributes, dict):
            continue
        for name in sorted(attributes):
            value = attributes[name]
            if id(value) in seen:
                continue
            if isinstance(value, (np.random.RandomState, np.random.Generator)):
                seen.add(id(value))
                yield f"{prefix}{name}", owner, name
            elif depth < _MAX_DEPTH and _is_followed(value):
                seen.add(id(value))
                queue.append((value, f"{prefix}{name}.", depth + 1))


def _is_followed(value: Any) -> bool:
    """Objects of Optuna or of this package that a sampler holds (not a study or a storage: not its state)."""
    if isinstance(value, (type, optuna.Study, optuna.storages.BaseStorage)):
        return False
    module = type(value).__module__ or ""
    return any(module == own or module.startswith(own + ".") for own in _OWN_MODULES)


def sampler_random_state(sampler: optuna.samplers.BaseSampler) -> dict[str, Any]:
    """The state of every random generator ``sampler`` holds, as plain data (see the module docstring)."""
    generators = {}
    for path, owner, name in _generators(sampler):
        generator = getattr(owner, name)
        if isinstance(generator, np.random.RandomState):
            generators[path] = {"kind": "RandomState", "state": _plain(generator.get_state(legacy=False))}
        else:
            generators[path] = {"kind": "Generator", "state": _plain(generator.bit_generator.state)}
    return {"format": RANDOM_STATE_FORMAT, "sampler": type(sampler).__name__, "optuna": optuna.__version__,
            "generators": generators}


def restore_sampler_random_state(sampler: optuna.samplers.BaseSampler, state: dict[str, Any] | None, *,
                                 seed: int | None, trials_so_far: int) -> list[str]:
    """Set ``sampler``'s generators back to ``state`` (from :func:`sampler_random_state`).

    ``sampler`` is a fresh one built with the same name, seed and options. A generator ``state`` does
    not cover (none saved, another sampler class, or an Optuna that renamed its internals since) is
    re-seeded from ``(seed, trials_so_far)`` when ``seed`` is set, so that a resumed run never replays
    the draws its first trials made; it is left as built when ``seed`` is None (the run was not
    reproducible anyway). Returns the paths so re-seeded or left, empty when everything was restored.
    """
    saved: dict[str, Any] = {}
    if isinstance(state, dict) and state.get("format") == RANDOM_STATE_FORMAT \
            and state.get("sampler") == type(sampler).__name__:
        saved = dict(state.get("generators") or {})
    restored = set()
    for path, entry in saved.items():
        if _restore_generator(sampler, path, entry):
            restored.add(path)
        else:
            _logger.warning("sampler %s: random generator %s of the checkpoint has no place in this Optuna (%s); "
                            "it is not restored", type(sampler).__name__, path, optuna.__version__)
    left = []
    for path, owner, name in _generators(sampler):
        if path in restored:
            continue
        left.append(path)
        if seed is not None:
            reseeded = np.random.SeedSequence([seed, trials_so_far, zlib.crc32(path.encode())]).generate_state(1)
            generator = getattr(owner, name)
            if isinstance(generator, np.random.RandomState):
                generator.seed(int(reseeded[0]))
            else:
                setattr(owner, name, np.random.default_rng(int(reseeded[0])))
    return left


def _restore_generator(sampler: Any, path: str, entry: dict[str, Any]) -> bool:
    *parents, name = path.split(".")
    owner = sampler
    for parent in parents:
        owner = getattr(owner, parent, None)
        if owner is None or not _is_followed(owner):
            return False
    if not hasattr(owner, name) or not isinstance(entry, dict):
        return False
    current = getattr(owner, name)
    try:
        if entry.get("kind") == "RandomState":
            if current is None:  # a lazy slot not used yet in the rebuilt sampler
                current = np.random.RandomState()
                setattr(owner, name, current)
            if not isinstance(current, np.random.RandomState):
                return False
            current.set_state(_unplain(entry["state"]))
            return True
        if entry.get("kind") == "Generator":
            if current is None:
                current = np.random.default_rng()
                setattr(owner, name, current)
            if not isinstance(current, np.random.Generator):
                return False
            current.bit_generator.state = _unplain(entry["state"])
            return True
    except (KeyError, TypeError, ValueError) as exc:
        _logger.warning("random generator %s: unusable saved state (%s)", path, exc)
    return False


def _plain(value: Any) -> Any:
    """Numpy arrays and scalars in a generator state as JSON-able builtins (arrays keep their dtype)."""
    if isinstance(value, np.ndarray):
        return {"__array__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _unplain(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__array__", "dtype"}:
            return np.asarray(value["__array__"], dtype=np.dtype(value["dtype"]))
        return {k: _unplain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unplain(v) for v in value]
    return value


# -- trials and studies ---------------------------------------------------------------------------


def trial_to_plain(trial: FrozenTrial) -> dict[str, Any]:
    """One trial as plain data (``trial_id`` kept to translate references to it, see :func:`restore_study`)."""
    return {
        "number": trial.number,
        "trial_id": trial._trial_id,
        "state": trial.state.name,
        "values": None if trial.values is None else [float(v) for v in trial.values],
        "params": dict(trial.params),
        "distributions": {name: distribution_to_json(d) for name, d in trial.distributions.items()},
        "user_attrs": dict(trial.user_attrs),
        "system_attrs": dict(trial.system_attrs),
        "intermediate_values": [[int(step), float(v)] for step, v in sorted(trial.intermediate_values.items())],
        "datetime_start": _time(trial.datetime_start),
        "datetime_complete": _time(trial.datetime_complete),
    }


def trial_from_plain(entry: dict[str, Any]) -> FrozenTrial:
    """The :class:`FrozenTrial` :func:`trial_to_plain` described (to add to a study)."""
    state = TrialState[entry["state"]]
    started = _parse_time(entry.get("datetime_start"))
    if started is None and state != TrialState.WAITING:
        started = datetime.datetime.now()
    completed = _parse_time(entry.get("datetime_complete"))
    if state.is_finished() and completed is None:
        completed = started
    return FrozenTrial(
        number=int(entry["number"]), state=state, value=None, values=entry.get("values"),
        datetime_start=started, datetime_complete=completed if state.is_finished() else None,
        params=dict(entry.get("params") or {}),
        distributions={name: json_to_distribution(d) for name, d in (entry.get("distributions") or {}).items()},
        user_attrs=dict(entry.get("user_attrs") or {}), system_attrs=dict(entry.get("system_attrs") or {}),
        intermediate_values={int(step): float(v) for step, v in entry.get("intermediate_values") or []},
        trial_id=int(entry.get("trial_id", entry["number"])))


def study_to_plain(study: optuna.Study) -> dict[str, Any]:
    """Every trial of ``study`` (running ones too: a resumed search settles them) and its system attributes."""
    return {"trials": [trial_to_plain(t) for t in study.get_trials(deepcopy=False)],
            "system_attrs": dict(study._storage.get_study_system_attrs(study._study_id))}


def restore_study(study: optuna.Study, plain: dict[str, Any]) -> None:
    """Add :func:`study_to_plain`'s trials to the empty ``study``, with the same numbers.

    The study's system attributes (NSGA-II/III cache their parent populations there, as trial ids)
    are restored when the re-added trials got their former ids, as they do in a fresh in-memory
    study; otherwise they are left out and the sampler computes them again.
    """
    if study.get_trials(deepcopy=False):
        raise ValueError("restore_study needs an empty study")
    entries = sorted(plain.get("trials") or [], key=lambda e: int(e["number"]))
    study.add_trials([trial_from_plain(e) for e in entries])
    added = study.get_trials(deepcopy=False)
    if [t.number for t in added] != [int(e["number"]) for e in entries]:
        raise ValueError("the saved trials are not numbered 0..n-1")
    if all(t._trial_id == int(e.get("trial_id", -1)) for t, e in zip(added, entries)):
        for key, value in (plain.get("system_attrs") or {}).items():
            study._storage.set_study_system_attr(study._study_id, key, value)


def _time(value: datetime.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: str | None) -> datetime.datetime | None:
    return None if value is None else datetime.datetime.fromisoformat(value)
