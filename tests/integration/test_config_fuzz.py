"""Fuzzing the experiment-file loader: a mutated example either loads or gives one clear line.

Each example in ``examples/*.yaml`` is mutated at random key paths (a value of another type, a
deleted key, an unknown key, huge/negative/NaN/infinite numbers, unicode strings and keys, lists
and mappings where scalars belong, a broken character in the YAML text). The property: either
:func:`load_config` succeeds, or it raises :class:`ConfigError` whose message is one line, starts
with the file name and names a key path of the input (or of the schema, for a missing key), or
says that the file is not valid YAML / not a mapping. Any other exception is a bug.
"""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from srnas_nni.cli import main
from srnas_nni.run.config import SCHEMA, TOP_LEVEL, ConfigError, load_config
from srnas_nni.errors import SRNASError

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
EXAMPLE_DATA = {path.stem: yaml.safe_load(path.read_text()) for path in EXAMPLES}

#: Paths worth setting even when an example lacks them (created with their parent mappings).
KNOWN_PATHS = [
    *[(key,) for key in TOP_LEVEL],
    *[(section, key) for section, keys in SCHEMA.items() for key in keys],
    *[("evaluator", budget, key) for budget in ("train", "supernet")
      for key in ("steps", "batch_size", "patch_size", "learning_rate", "loss")],
    ("evaluator", "objective_options", "lam"), ("experiment", "training_service", "platform"),
    ("space", "preset"), ("space", "space"), ("space", "scale"), ("space", "channels"),
    ("strategy", "name"), ("strategy", "preset"), ("strategy", "seed"), ("strategy", "population_size"),
]

#: Key paths an error may name although the input lacks them (a missing or a both-given key).
SCHEMA_PATHS = (
    set(TOP_LEVEL)
    | {f"{section}.{key}" for section, keys in SCHEMA.items() for key in keys}
    | {"space.preset", "space.space", "strategy.name", "strategy.preset"}
)

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- values and mutations -------------------------------------------------------------------------

_numbers = st.one_of(
    st.integers(min_value=-10, max_value=10),
    st.sampled_from([-1, 0, 2 ** 63, -(2 ** 63), 10 ** 30, 10 ** 400, -(10 ** 400)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 1e-320]),
)
_strings = st.one_of(
    st.text(max_size=12),  # any unicode, newlines and NUL included
    st.sampled_from(["", " ", "1h", "-5m", "builtin", "builtin:val", "x" * 5000, "é/ü/ß", "a\nb", "\x00",
                     "null", "psnr", "random", "nni", "dlsr-proxy", "../../etc/passwd.yaml"]),
)
_scalars = st.one_of(st.none(), st.booleans(), _numbers, _strings)
_keys = st.one_of(st.text(min_size=1, max_size=8), st.integers(-3, 3), st.booleans(), st.none(),
                  st.sampled_from(["a\nb", "tab\tkey", "ключ", "😀", "steps", "scale", "preset"]))
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)),
    max_leaves=5,
)


def _dict_paths(node, prefix=()):
    """Every key path into nested mappings (tuples of keys), parents before children."""
    paths = []
    if isinstance(node, dict):
        for key, value in node.items():
            paths.append(prefix + (key,))
            paths.extend(_dict_paths(value, prefix + (key,)))
    return paths


def _mutate(data: dict, draw) -> dict:
    paths = _dict_paths(data)
    action = draw(st.sampled_from(["replace", "replace", "delete", "add", "set", "set"]))
    if action == "set":
        path = draw(st.sampled_from(KNOWN_PATHS))
        node = data
        for key in path[:-1]:
            if isinstance(node.get(key), str) and key in ("space", "strategy"):
                node[key] = {"preset": node[key]}
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = draw(_values)
        return data
    if action == "add":
        parents = [()] + [path for path in paths if isinstance(_get(data, path), dict)]
        parent = _get(data, draw(st.sampled_from(parents)))
        parent[draw(_keys)] = draw(_values)
        return data
    path = draw(st.sampled_from(paths))
    parent = _get(data, path[:-1])
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(_values)
    return data


def _get(data, path):
    for key in path:
        data = data[key]
    return data


def _paths_named_by(data) -> set[str]:
    """Dotted key paths of ``data``, as written and with control characters escaped (as messages show them)."""
    dotted = {".".join(str(key) for key in path) for path in _dict_paths(data)}
    return dotted | {text if text.isprintable() else repr(text)[1:-1] for text in dotted} | SCHEMA_PATHS


@st.composite
def mutated_files(draw):
    """``(name, text, data)``: an example's YAML after 1-3 mutations; ``data`` None if the text is broken."""
    name = draw(st.sampled_from(sorted(EXAMPLE_DATA)))
    data = yaml.safe_load(yaml.safe_dump(EXAMPLE_DATA[name]))
    for _ in range(draw(st.integers(1, 3))):
        if not isinstance(data, dict) or not data:
            break
        data = _mutate(data, draw)
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    if draw(st.integers(0, 9)) == 0:  # a stray character somewhere in the text
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["[", "{", ":", "\t", "'", "&", "*x", "- ", "\x07"])) + text[at:]
        return name, text, None
    return name, text, data


def check_error(error: BaseException, path: Path, data, text: str | None = None) -> None:
    """``error`` is the one-line ConfigError the project promises, naming a key path of ``data``."""
    assert isinstance(error, ConfigError) and isinstance(error, SRNASError), repr(error)
    message = str(error)
    assert "\n" not in message and "\r" not in message, message
    assert message.startswith(f"{path}: "), message
    rest = message[len(f"{path}: "):]
    if rest.startswith(("not valid YAML", "an experiment file is a mapping")):
        return
    if data is None:  # a stray character that left valid YAML: the keys are what it reads as
        data = yaml.safe_load(text or "")
    named = rest.split(": ", 1)[0]
    assert named in _paths_named_by(data), f"{named!r} is no key path of the input: {message}"


# -- the properties -------------------------------------------------------------------------------


def test_every_example_is_fuzzed():
    assert len(EXAMPLE_DATA) >= 5 and all(isinstance(data, dict) for data in EXAMPLE_DATA.values())


@FUZZ
@given(case=mutated_files())
def test_mutated_examples_load_or_give_one_line_naming_the_key(tmp_path_factory, case):
    name, text, data = case
    path = tmp_path_factory.mktemp("fuzz") / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        config = load_config(path)
    except Exception as error:  # noqa: BLE001 - the property is about which exceptions occur
        check_error(error, path, data, text)
    else:
        assert config.strategy_name and config.space_spec["space"]
        assert load_config(path, smoke_run=True).experiment["max_trials"] <= 2  # a valid file also smoke-runs


@settings(FUZZ, max_examples=12)
@given(case=mutated_files())
def test_cli_validate_exits_0_or_2_with_one_line(tmp_path_factory, case):
    name, text, _data = case
    path = tmp_path_factory.mktemp("cli") / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["validate", str(path)])
    assert status in (0, 2)
    if status == 2:
        lines = err.getvalue().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"srnas: error: {path}: "), err.getvalue()
    else:
        assert err.getvalue() == ""


BASE = {"space": "dlsr-proxy", "strategy": "random"}


@pytest.mark.parametrize("patch, key", [
    ({"evaluator": {"scale": 5}}, "evaluator.scale"),                        # was TypeError in the message
    ({"experiment": {"max_duration": 10 ** 400}}, "experiment.max_duration"),  # was OverflowError
    ({"evaluator": {"data": "x" * 5000}}, "evaluator.data"),                 # was OSError: name too long
    ({"space": "x" * 5000}, "space"),
    ({"strategy": {"preset": "x" * 5000}}, "strategy"),
    ({"a\nb": 1}, "a\\nb"),                                                  # was a two-line message
    ({"evaluator": {"supernet": {"a\nb": 2}}}, "evaluator.supernet.a\\nb"),
    ({"evaluator": {"train": {1: 2, "steps": 3}}}, "evaluator.train.1"),     # was TypeError from sorted()
    ({"evaluator": {"objective_options": {1: 2}}}, "evaluator.objective_options.1"),  # keywords must be str
    ({"evaluator": {"scale": 3}, "space": {"preset": "dlsr-proxy", "scale": "abc"}}, "evaluator.scale"),
    ({"evaluator": {"scale": 2}, "space": {"space": "dlsr", "scale": [2]}}, "evaluator.scale"),  # was int([2])
    ({"space": {"preset": "dlsr-proxy", "channels": 2 ** 63}}, "space"),     # torch's message had a newline
    ({"seed": -5}, "seed"),                                                  # numpy rejects it at run time
    ({"seed": 10 ** 30}, "seed"),
])
def test_bugs_found_by_fuzzing_are_one_line_errors(tmp_path, patch, key):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({**BASE, **patch}, allow_unicode=True))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: {key}: "), message


def test_the_checker_rejects_what_it_must():
    """The property can fail: multi-line messages, other exceptions and unnamed keys are caught."""
    path = Path("exp.yaml")
    data = {"space": "dlsr-proxy", "experiment": {"port": 1}}
    check_error(ConfigError("exp.yaml: experiment.port: 0 must be a TCP port"), path, data)
    check_error(ConfigError("exp.yaml: strategy: missing"), path, data)
    for bad in (ConfigError("exp.yaml: experiment.port: two\nlines"), ConfigError("other.yaml: space: x"),
                ConfigError("exp.yaml: experiment.nothere: x"), TypeError("unhashable")):
        try:
            check_error(bad, path, data)
        except AssertionError:
            continue
        raise AssertionError(f"check_error accepted {bad!r}")
