"""Scalarisations turn (PSNR, params, Mult-Adds) into NNI's 'default' as documented."""

from __future__ import annotations

import pytest

from srnas_nni.errors import SRNASError
from srnas_nni.evaluation.objectives import make_scalarization

METRICS = {"psnr": 30.0, "params": 500_000, "multadds": 100_000_000_000}


def test_psnr_is_identity():
    assert make_scalarization("psnr")(METRICS) == 30.0


def test_hnas_joint_reward_formula_and_trade_off():
    reward = make_scalarization("hnas", lam=0.2)
    assert reward(METRICS) == pytest.approx(0.2 * 30.0 - 0.8 * 100 * 0.05)
    cheaper = dict(METRICS, multadds=50_000_000_000)
    assert reward(cheaper) > reward(METRICS)


def test_deconas_penalises_complexity_fraction():
    reward = make_scalarization("deconas", reference_params=1_000_000)
    assert reward(METRICS) == pytest.approx(30.0 - 2.0 * 0.5)
    with pytest.raises(SRNASError, match="reference_params"):
        make_scalarization("deconas")


def test_budget_penalty_is_proportional_to_the_excess():
    objective = make_scalarization("budget", max_params=400_000, penalty=10.0)
    assert objective(dict(METRICS, params=400_000)) == 30.0
    assert objective(METRICS) == pytest.approx(30.0 - 10.0 * 0.25)
    both = make_scalarization("budget", max_params=250_000, max_multadds=50_000_000_000)
    assert both(METRICS) == pytest.approx(30.0 - 10.0 * (1.0 + 1.0))


def test_errors_name_the_objective_and_options():
    with pytest.raises(SRNASError, match="unknown objective 'flops'.*psnr"):
        make_scalarization("flops")
    with pytest.raises(SRNASError, match="objective hnas: unknown option"):
        make_scalarization("hnas", lambda_=0.3)
    with pytest.raises(SRNASError, match=r"lam = 1.5"):
        make_scalarization("hnas", lam=1.5)
