"""Data-parallel supernet training (``experiment.devices``): 2 CPU processes on gloo, forked by Lightning.

What must hold: each rank trains on its own patches (rank 0 on exactly the single-process ones), the
weights and architecture parameters stay identical on every rank, the process that started the ranks
ends with rank 0's supernet and search state, and the derived architecture is one of the space's, with
the labels a single-process search derives. Multi-trial strategies refuse ``devices`` > 1.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from pathlib import Path

import optuna
import pytest
import torch
from pytorch_lightning.callbacks import Callback

from srnas_nni.run.config import parse_config
from srnas_nni.evaluation.lightning import distributed_problem, sr_lightning_evaluator
from srnas_nni.run.search import run_search
from srnas_nni.spaces import load_space_preset
from srnas_nni.strategies import get

from nni.nas.experiment import NasExperiment, NasExperimentConfig  # noqa: E402

_PROBLEM = distributed_problem(2, 1, "cpu")
needs_two_cpu_ranks = pytest.mark.skipif(_PROBLEM is not None, reason=f"2 gloo ranks unavailable: {_PROBLEM}")

#: Differentiable (architecture parameters) and path sampling (none), each at its defaults.
STRATEGIES = {"darts": {}, "sparsestmax_darts": {}, "random_one_shot": {}}


def _fingerprint(batch) -> float:
    lr = batch["train"][0] if isinstance(batch, dict) else batch[0]
    return round(float(lr.double().sum()), 6)


class DumpRanks(Callback):
    """Every rank writes its training batches' fingerprints and its final module state to ``folder``."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.seen: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append(_fingerprint(batch))

    def on_train_end(self, trainer, pl_module):
        state = {name: value.detach().clone() for name, value in pl_module.state_dict().items()}
        alphas = [p.detach().clone() for p in getattr(pl_module, "arch_parameters", list)()]
        radius = getattr(getattr(pl_module, "relaxation", None), "radius", None)
        torch.save({"state": state, "alphas": alphas, "seen": self.seen, "radius": radius,
                    "world_size": trainer.world_size}, self.folder / f"rank{trainer.global_rank}.pt")


def _search(tmp_path: Path, image_folder: Path, name: str, devices: int):
    torch.manual_seed(0)
    folder = tmp_path / f"{name}-{devices}"
    folder.mkdir()
    space = load_space_preset("deconas-proxy")
    evaluator = sr_lightning_evaluator(scale=2, train_data=str(image_folder), val_data=str(image_folder), steps=4,
                                       val_batches=1, patch_size=16, batch_size=2, device="cpu", devices=devices,
                                       checkpoint_dir=folder / "ckpt", checkpoint_every=2, distributed_timeout=120)
    dump = DumpRanks(folder)
    evaluator.trainer.callbacks.append(dump)
    config = NasExperimentConfig("sequential", "raw")
    config.experiment_working_directory = str(folder / "nni")
    strategy = get(name, **STRATEGIES[name])
    experiment = NasExperiment(space, evaluator, strategy, config=config)
    experiment.run()
    try:
        derived = dict(next(iter(strategy.list_models())).sample)
        main = {"state": {k: v.detach().clone() for k, v in strategy.oneshot_module.state_dict().items()},
                "alphas": [p.detach().clone() for p in getattr(strategy.oneshot_module, "arch_parameters", list)()],
                "radius": getattr(getattr(strategy.oneshot_module, "relaxation", None), "radius", None),
                "strategy_state": strategy.state_dict()}
    finally:
        experiment.stop()
    ranks = [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(devices)]
    return space, derived, main, ranks


def _stream_states(node) -> list[dict]:
    """The :class:`PatchStream` states anywhere in a Lightning checkpoint."""
    if isinstance(node, dict):
        if "consumed" in node and "sampler" in node:
            return [node]
        return [state for value in node.values() for state in _stream_states(value)]
    if isinstance(node, (list, tuple)):
        return [state for value in node for state in _stream_states(value)]
    return []


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.equal(a, b) or torch.allclose(a, b, rtol=0, atol=0, equal_nan=True))


# -- two forked gloo ranks ----------------------------------------------------------------------


@needs_two_cpu_ranks
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_two_ranks_keep_identical_supernets_and_derive_a_valid_architecture(tmp_path, image_folder, name):
    space, single_derived, _, (single,) = _search(tmp_path, image_folder, name, devices=1)
    assert single["world_size"] == 1
    _, derived, main, (rank0, rank1) = _search(tmp_path, image_folder, name, devices=2)
    assert rank0["world_size"] == rank1["world_size"] == 2

    # Data: each rank its own patches, rank 0 the single-process ones, the same number of steps.
    assert len(rank0["seen"]) == len(rank1["seen"]) == len(single["seen"]) == 4
    assert rank0["seen"] == single["seen"]
    assert all(a != b for a, b in zip(rank0["seen"], rank1["seen"]))

    # Architecture parameters (and every weight and buffer) identical on both ranks, and trained.
    assert len(rank0["alphas"]) == len(rank1["alphas"]) == len(single["alphas"])
    assert bool(rank0["alphas"]) == (name != "random_one_shot")
    for a, b in zip(rank0["alphas"], rank1["alphas"]):
        assert torch.equal(a, b)
    assert rank0["state"].keys() == rank1["state"].keys() == single["state"].keys()
    assert [k for k in rank0["state"] if not _same(rank0["state"][k], rank1["state"][k])] == []
    if rank0["alphas"]:
        assert any(not torch.equal(a, torch.zeros_like(a)) for a in rank0["alphas"]), "alphas never moved"
        # ... and not the single-process ones: the second rank's patches took part in every step.
        assert any(not torch.equal(a, b) for a, b in zip(rank0["alphas"], single["alphas"]))
    assert any(not _same(rank0["state"][k], single["state"][k]) for k in rank0["state"])

    # The process that started the ranks holds rank 0's supernet and search state.
    assert [k for k in rank0["state"] if not _same(main["state"][k], rank0["state"][k])] == []
    for a, b in zip(main["alphas"], rank0["alphas"]):
        assert torch.equal(a, b)
    assert main["radius"] == rank0["radius"]
    # NNI's strategy state names rank 0's last checkpoint, which holds both ranks' patch streams.
    checkpoint = Path(main["strategy_state"]["ckpt_path"])
    assert checkpoint.is_file()
    streams = _stream_states(torch.load(checkpoint, weights_only=False))
    assert streams and all(len(state["ranks"]) == 2 and state["ranks"][0] != state["ranks"][1] for state in streams)

    # The derived architecture: the labels of the single-process search, values of the space.
    labels = space.simplify()
    assert derived.keys() == single_derived.keys() == labels.keys()
    for label, value in derived.items():
        labels[label].validate({label: value})


@needs_two_cpu_ranks
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_search_with_two_devices_end_to_end(tmp_path, image_folder):
    run_dir = tmp_path / "run"
    config = parse_config({
        "space": "deconas-proxy", "strategy": "sparsestmax_darts", "output_dir": str(run_dir), "seed": 1,
        "evaluator": {"data": str(image_folder), "val_data": str(image_folder), "device": "cpu",
                      "train": {"steps": 2, "batch_size": 2, "patch_size": 16, "val_every": 0,
                                "checkpoint_every": 0},
                      "supernet": {"steps": 3, "batch_size": 2, "patch_size": 16, "val_batches": 1,
                                   "checkpoint_every": 1}},
        "experiment": {"devices": 2},
    })
    port_before = os.environ.get("MASTER_PORT")
    result = run_search(config, progress=False)
    assert multiprocessing.active_children() == []  # both ranks joined
    assert os.environ.get("MASTER_PORT") == port_before  # the ranks' port is not left behind
    assert json.loads((run_dir / "run.json").read_text())["status"] == "done"
    study = optuna.load_study(study_name=result.study_name, storage=result.storage)
    derived = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("source") == "derived"]
    assert len(derived) == 1 and derived[0].state == optuna.trial.TrialState.COMPLETE
    architecture = json.loads(derived[0].user_attrs["architecture"])
    labels = config.build_space().simplify()
    assert architecture.keys() == labels.keys()
    for label, value in architecture.items():
        labels[label].validate({label: value})
    assert math.isfinite(derived[0].values[0])
    # Rank 0's checkpoint is where NNI's strategy state points (what --resume reads).
    assert (run_dir / "supernet" / "last.ckpt").is_file()
    probabilities = json.loads((run_dir / "probabilities.json").read_text())
    assert probabilities.keys() == labels.keys()


class CrashAfter(Callback):
    """Raises on every rank after ``steps`` training batches, as a crash of the run would."""

    def __init__(self, steps: int):
        self.steps = steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx + 1 >= self.steps:
            raise RuntimeError("simulated crash")


def _resumable(folder: Path, image_folder: Path, callbacks: list, experiment_id: str | None = None):
    torch.manual_seed(0)
    evaluator = sr_lightning_evaluator(scale=2, train_data=str(image_folder), val_data=str(image_folder), steps=5,
                                       val_batches=1, patch_size=16, batch_size=2, device="cpu", devices=2,
                                       checkpoint_dir=folder / "ckpt", checkpoint_every=1, distributed_timeout=120)
    evaluator.trainer.callbacks.extend(callbacks)
    config = NasExperimentConfig("sequential", "raw")
    config.experiment_working_directory = str(folder / "nni")
    config.execution_engine.continue_on_failure = True
    strategy = get("darts")
    return NasExperiment(load_space_preset("deconas-proxy"), evaluator, strategy, config=config,
                         id=experiment_id), strategy


@needs_two_cpu_ranks
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_rank_search_resumes_each_rank_where_it_stopped(tmp_path, image_folder):
    (tmp_path / "whole").mkdir()
    whole, strategy = _resumable(tmp_path / "whole", image_folder, [DumpRanks(tmp_path / "whole")])
    whole.run()
    expected = [p.detach().clone() for p in strategy.oneshot_module.arch_parameters()]
    whole.stop()
    uninterrupted = [torch.load(tmp_path / "whole" / f"rank{r}.pt", weights_only=False)["seen"] for r in (0, 1)]

    (tmp_path / "cut").mkdir()
    first, strategy = _resumable(tmp_path / "cut", image_folder, [CrashAfter(3)])
    first.run()  # the ranks fail; the engine records a failed model and the experiment ends
    assert Path(strategy.state_dict()["ckpt_path"]).is_file()  # rank 0's checkpoint, found after the failure
    first.stop()

    second, strategy = _resumable(tmp_path / "cut", image_folder, [DumpRanks(tmp_path / "cut")], first.id)
    second.resume()
    try:
        resumed = [torch.load(tmp_path / "cut" / f"rank{r}.pt", weights_only=False)["seen"] for r in (0, 1)]
        assert resumed == [seen[3:] for seen in uninterrupted]  # each rank its own remaining batches
        for got, want in zip(strategy.oneshot_module.arch_parameters(), expected):
            assert torch.allclose(got, want, atol=1e-6)
    finally:
        second.stop()
