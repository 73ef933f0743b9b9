"""Data-parallel supernet training (``experiment.devices``) without starting processes: devices and nodes
reach the trainer, multi-trial strategies and missing GPUs are refused, and each rank draws its own
patch stream (rank 0 the single-process one) and resumes it. Two gloo ranks training:
``tests/integration/test_distributed.py``."""

from __future__ import annotations

import pytest
import torch

from srnas_nni.run.config import ConfigError, parse_config
from srnas_nni.evaluation import lightning as sr_lightning
from srnas_nni.evaluation.data import open_dataset
from srnas_nni.evaluation.lightning import (PatchStream, SupernetDDPStrategy, distributed_problem, rank_seed,
                                            sr_lightning_evaluator)


# -- no processes: settings, validation, the rank streams ----------------------------------------


def test_devices_and_nodes_reach_the_trainer(image_folder):
    single = sr_lightning_evaluator(scale=2, train_data=str(image_folder), val_data=str(image_folder), steps=2,
                                    patch_size=16, batch_size=2, device="cpu")
    assert single.trainer.world_size == 1
    assert not isinstance(single.trainer.strategy, SupernetDDPStrategy)
    double = sr_lightning_evaluator(scale=2, train_data=str(image_folder), val_data=str(image_folder), steps=2,
                                    patch_size=16, batch_size=2, device="cpu", devices=2, num_nodes=3)
    strategy = double.trainer.strategy
    assert isinstance(strategy, SupernetDDPStrategy)
    assert (strategy.num_processes, strategy.num_nodes, double.trainer.world_size) == (2, 3, 6)
    assert strategy.process_group_backend == "gloo"
    assert strategy._ddp_kwargs["find_unused_parameters"] is True
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="devices must be an integer >= 1"):
            sr_lightning_evaluator(scale=2, train_data=str(image_folder), val_data=str(image_folder), devices=bad)


def test_search_config_passes_devices_to_the_supernet_trainer(tmp_path, image_folder):
    from srnas_nni.run.search import _evaluator

    config = parse_config({"space": "deconas-proxy", "strategy": "darts", "output_dir": str(tmp_path / "run"),
                           "evaluator": {"data": str(image_folder), "val_data": str(image_folder), "device": "cpu",
                                         "supernet": {"steps": 2, "batch_size": 2, "patch_size": 16}},
                           "experiment": {"devices": 2}})
    trainer = _evaluator(config, tmp_path / "run", one_shot=True).trainer
    assert (trainer.num_devices, trainer.world_size) == (2, 2)
    config = parse_config({**config.data, "experiment": {**config.experiment, "devices": 1}})
    assert _evaluator(config, tmp_path / "run", one_shot=True).trainer.world_size == 1


@pytest.mark.parametrize("key", ["devices", "num_nodes"])
def test_multi_trial_strategies_refuse_several_devices(key):
    with pytest.raises(ConfigError) as info:
        parse_config({"space": "deconas-proxy", "strategy": "random", "experiment": {key: 2}})
    message = str(info.value)
    assert "\n" not in message
    assert f"experiment.{key}: 2:" in message and "trial_concurrency" in message


def test_gpu_devices_beyond_the_visible_ones_are_named():
    visible = torch.cuda.device_count()
    asked = max(2, visible + 1)
    assert distributed_problem(asked, 1, "cuda") == f"{asked} GPUs asked for, {visible} visible"
    assert distributed_problem(1, 1, "cuda") is None


def test_rank_streams_differ_reproducibly_and_rank0_is_the_single_process_stream(image_folder, monkeypatch):
    dataset = open_dataset(str(image_folder), 2, split="train")

    def batches(rank: int | None, count: int = 4, stream: PatchStream | None = None) -> list[torch.Tensor]:
        if rank is not None:
            monkeypatch.setattr(sr_lightning, "_distributed_rank", lambda: (rank, 2))
        stream = stream or PatchStream(dataset, patch_size=16, batch_size=2, length=count, seed=3)
        return [lr for lr, _ in stream]

    single = batches(None)
    rank0, rank1, again = batches(0), batches(1), batches(1)
    assert all(torch.equal(a, b) for a, b in zip(single, rank0))
    assert all(torch.equal(a, b) for a, b in zip(rank1, again))
    assert not any(torch.equal(a, b) for a, b in zip(rank0, rank1))
    assert rank_seed(3, 0) == 3 and len({rank_seed(3, r) for r in range(8)}) == 8
    assert rank_seed(3, 1) != rank_seed(4, 1)


def test_a_rank_resumes_its_own_stream(image_folder, monkeypatch):
    """The saved state of a 2-rank pass holds both ranks' samplers; each rank continues its own."""
    dataset = open_dataset(str(image_folder), 2, split="train")
    states = []
    for rank in (0, 1):
        monkeypatch.setattr(sr_lightning, "_distributed_rank", lambda rank=rank: (rank, 1))
        stream = PatchStream(dataset, patch_size=16, batch_size=2, length=5, seed=3)
        iterator = iter(stream)
        [next(iterator) for _ in range(2)]
        states.append(stream.state_dict())
    saved = {"consumed": 2, "sampler": states[0]["sampler"], "ranks": [s["sampler"] for s in states]}
    for rank in (0, 1, 2):
        monkeypatch.setattr(sr_lightning, "_distributed_rank", lambda rank=rank: (rank, 3))
        whole = [lr for lr, _ in PatchStream(dataset, patch_size=16, batch_size=2, length=5, seed=3)]
        resumed = PatchStream(dataset, patch_size=16, batch_size=2, length=5, seed=3)
        resumed.load_state_dict(saved)
        rest = [lr for lr, _ in resumed]
        assert len(rest) == 3
        if rank < 2:  # a rank the saved run had: exactly its remaining batches
            assert all(torch.equal(a, b) for a, b in zip(rest, whole[2:]))
        else:  # a new rank: its own stream from the top, for the remaining positions
            assert all(torch.equal(a, b) for a, b in zip(rest, whole[:3]))
