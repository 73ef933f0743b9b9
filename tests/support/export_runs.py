"""Search run directories as the runner writes them (``pareto.json``, model files), for the export tests."""

from __future__ import annotations

import json

import numpy as np
import torch

from srnas_nni.models.registry import build_from_spec, save_model_file
from srnas_nni.presets import read_preset
from srnas_nni.spaces import SPACE_PRESET_DIR, load_space_preset


def space_run(tmp_path, preset: str, count: int = 3, trained: tuple[int, ...] = (0,)):
    """A run directory whose pareto.json lists ``count`` random architectures of ``preset``;
    the entries in ``trained`` get a model file (weights seeded, standing for trained ones)."""
    kwargs = {k: v for k, v in read_preset(preset, SPACE_PRESET_DIR, kind="space", required_key="space")[0].items()
              if k not in ("space", "description")}
    space = load_space_preset(preset)
    state = np.random.RandomState(0)
    run_dir = tmp_path / f"run-{preset}"
    front = []
    for index in range(count):
        sample = space.random_sample(state)
        cost = space.cost(sample)
        item = {"trial": index, "architecture": sample, "psnr": 30.0 + index, "ssim": 0.9, "params": cost.params,
                "multadds": cost.multadds, "model_file": None}
        if index in trained:
            torch.manual_seed(100 + index)
            spec = {"space": space_name(preset), "space_kwargs": kwargs, "sample": sample, "scale": space.scale}
            model = build_from_spec(spec)
            save_model_file(run_dir / "trials" / str(index) / "model.pt", model, spec, space.scale)
            item["model_file"] = f"trials/{index}/model.pt"
        front.append(item)
    front.sort(key=lambda e: -e["psnr"])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "pareto.json").write_text(json.dumps({
        "format": "srnas-pareto/1", "space": {"space": space_name(preset), "space_kwargs": kwargs},
        "scale": space.scale, "strategy": "random", "objectives": ["psnr", "params", "multadds"],
        "front": front,
    }))
    return run_dir, front


def space_name(preset: str) -> str:
    return read_preset(preset, SPACE_PRESET_DIR, kind="space", required_key="space")[0]["space"]
