"""The trial of an ``nnictl`` HPO experiment over an srnas-nni space (see ``examples/nni/``).

NAS experiments cannot be launched by ``nnictl create``; this module is the bridge: NNI's HPO
machinery with :class:`~srnas_nni.strategies.optuna.OptunaTuner` (or any tuner taking ``choice``
entries) picks one value per label of the space, and this trial builds the architecture and
evaluates it.

``python -m srnas_nni.nni_trial FILE [--set key.path=value ...]`` (the ``trialCommand``):

* ``FILE`` is an srnas experiment file; only its ``space``, ``evaluator`` and ``seed`` are used
  (``strategy`` may be left out, the other sections are ignored);
* the parameters of ``nni.get_next_parameter()`` are decoded with
  :class:`~srnas_nni.spaces.encoding.SpaceEncoding` (the encoding of the search-space file) and
  frozen with the space's own ``freeze``;
* the model is trained, validated and costed by
  :func:`~srnas_nni.evaluation.evaluator.evaluate_sr_model`, which reports the metric dict
  (``default``, ``psnr``, ``params``, ``multadds``, ``ssim``, ``architecture``, ...) with
  ``nni.report_final_result``; the trained model file goes to the trial's NNI output folder
  (``$NNI_OUTPUT_DIR/<sample key>/model.pt``), or under ``output_dir`` outside NNI.

``python -m srnas_nni.nni_trial FILE --write-search-space search_space.json`` writes the matching
``searchSpaceFile`` (NNI's ``{"label": {"_type": "choice", "_value": [...]}}``; ``-`` for stdout).
``--parameters JSON`` evaluates the given parameters without NNI (a dry run of one trial).
Bad input is one line on stderr (``srnas-nni trial: error: ...``) and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from .config import ExperimentConfig, apply_overrides, parse_config
from ..runtime import read_yaml_mapping
from ..errors import SRNASError
from ..nni_adapter.loader import nni

__all__ = ["trial_config", "search_space", "decode_parameters", "run_trial", "main"]


def trial_config(path: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """An experiment file read for a trial: validated as ``srnas search`` would, ``strategy`` optional."""
    path = Path(path)
    data = read_yaml_mapping(path, what="experiment file", shape="space:, evaluator:, ...")
    data = apply_overrides(data, list(overrides), source=str(path))
    data.setdefault("strategy", "random")  # unused by a trial; the schema asks for one
    data.setdefault("output_dir", ".")
    return parse_config(data, source=str(path))


def search_space(config: ExperimentConfig) -> dict[str, dict[str, Any]]:
    """NNI's HPO search space of the configured space: one ``choice`` per label."""
    from ..spaces.encoding import SpaceEncoding

    return SpaceEncoding(config.space).legacy_search_space()


def decode_parameters(space, parameters: Any) -> dict[str, Any]:
    """The sample (``{label: value}``) a tuner's parameters stand for; SRNASError if they do not fit."""
    from ..spaces.encoding import SpaceEncoding

    if not isinstance(parameters, dict):
        raise SRNASError(f"trial parameters must be a mapping of labels, got {type(parameters).__name__}")
    encoding = SpaceEncoding(space)
    unknown = sorted(set(parameters) - set(encoding.choices))
    missing = sorted(set(encoding.choices) - set(parameters))
    if unknown or missing:
        raise SRNASError(f"trial parameters do not match the space (unknown {unknown}, missing {missing}): was the "
                         "search-space file written from this experiment file?")
    try:
        return encoding.decode(parameters)
    except KeyError as exc:
        label = next((k for k, v in parameters.items() if v not in encoding.choices[k]), str(exc))
        raise SRNASError(f"trial parameter {label}={parameters.get(label)!r} is not one of "
                         f"{encoding.choices.get(label)}") from None


def run_trial(config: ExperimentConfig, parameters: Any = None, *, report: bool = True) -> dict[str, Any]:
    """Evaluate one architecture: ``parameters`` (default: NNI's next parameters); returns the metric dict."""
    from ..evaluation.evaluator import evaluate_sr_model

    if parameters is None:
        parameters = nni.get_next_parameter()
        if parameters is None:
            raise SRNASError("NNI gave this trial no parameters (run it from an NNI experiment, or pass --parameters)")
    space = config.space
    sample = decode_parameters(space, parameters)
    model = space.freeze(sample)
    evaluator = config.evaluator
    models_dir = os.environ.get("NNI_OUTPUT_DIR") or str(config.output_dir / "models")
    return evaluate_sr_model(
        model, architecture=sample, scale=config.scale, train_data=evaluator["data"], val_data=evaluator["val_data"],
        train={"seed": config.seed, "device": evaluator["device"], **evaluator["train"]},
        objective=evaluator["objective"], objective_options=evaluator["objective_options"],
        hr_size=evaluator["hr_size"], skip_bad=evaluator["skip_bad"], cache_dir=evaluator["cache_dir"],
        report=report, models_dir=models_dir, space_spec=config.space_spec)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m srnas_nni.nni_trial",
                                     description="One trial of an nnictl experiment over an srnas-nni space, or "
                                                 "its search-space file (--write-search-space).")
    parser.add_argument("file", help="srnas experiment file (space, evaluator, seed are used)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="override a key of the file (repeatable), e.g. evaluator.train.steps=10")
    parser.add_argument("--write-search-space", metavar="JSON",
                        help="write NNI's search-space file for the file's space and exit ('-': stdout)")
    parser.add_argument("--parameters", metavar="JSON", help="evaluate these tuner parameters without NNI")
    args = parser.parse_args(argv)
    try:
        config = trial_config(args.file, args.overrides)
        if args.write_search_space:
            text = json.dumps(search_space(config), indent=2) + "\n"
            if args.write_search_space == "-":
                sys.stdout.write(text)
            else:
                Path(args.write_search_space).write_text(text)
                print(f"wrote {args.write_search_space} ({len(json.loads(text))} labels)")
            return 0
        parameters = None
        if args.parameters is not None:
            try:
                parameters = json.loads(args.parameters)
            except json.JSONDecodeError as exc:
                raise SRNASError(f"--parameters: not JSON: {exc}") from None
        result = run_trial(config, parameters, report=args.parameters is None)
        if args.parameters is not None:
            print(json.dumps({k: result[k] for k in ("psnr", "ssim", "params", "multadds") if k in result}))
        return 0
    except SRNASError as exc:
        print(f"srnas-nni trial: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
