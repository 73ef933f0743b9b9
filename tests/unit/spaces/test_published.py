"""Published architectures: every preset builds at each of its scales through `srnas cost`, and
lands on the paper's figures where the paper published them (params within 1 %, Mult-Adds 2 %)."""

from __future__ import annotations

import json

import pytest

from srnas_nni.cli import main
from srnas_nni.spaces.published import presets

CASES = [(name, scale) for name, preset in sorted(presets().items()) for scale in preset.scales]


def test_the_papers_architectures_are_presets():
    assert {"deconasnet", "dlsr", "hnas_a", "hnas_b", "hnas_c", "trilevel", "hinas"} <= set(presets())


@pytest.mark.parametrize("name, scale", CASES)
def test_preset_cost_through_the_cli(capsys, name, scale):
    assert main(["cost", "--model", name, "--scale", str(scale), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["params"] > 0 and result["multadds"] > 0
    published = presets()[name].published.get(scale, {})
    if "params" in published:
        assert abs(result["params"] / published["params"] - 1) <= 0.01, (result["params"], published)
    if "multadds" in published:
        assert abs(result["multadds"] / published["multadds"] - 1) <= 0.02, (result["multadds"], published)


@pytest.mark.parametrize("name", sorted(presets()))
def test_presets_document_their_source(name):
    preset = presets()[name]
    assert preset.source and preset.notes
