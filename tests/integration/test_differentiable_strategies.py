"""The differentiable strategies searching proxy spaces end to end: HiNAS exports a feasible width path,
sparsestmax_darts ends one-hot and returns the fine-tuned network."""

from __future__ import annotations

import torch

from srnas_nni.spaces import load_space_preset
from srnas_nni.strategies import get

from tests.support.supernets import run_supernet_search


# ----------------------------------------------------------------------------------------------
# End to end on the proxy spaces
# ----------------------------------------------------------------------------------------------
# (Every strategy on every proxy space runs in tests/integration/test_strategy_matrix.py; HiNAS's decoder here.)
def test_hinas_exports_a_feasible_width_path_of_non_zero_moves(image_folder, tmp_path):
    space = load_space_preset("hinas-proxy")
    reference = load_space_preset("hinas-proxy")
    torch.manual_seed(0)
    strategy = get("hinas", penalty_weight=0.1, arch_learning_rate=0.01)
    experiment = run_supernet_search(space, strategy, image_folder, tmp_path, steps=3)
    try:
        sample = experiment.export_top_models(formatter="dict")[0]
        probs = strategy.export_probabilities()
        model = next(strategy.list_models())
    finally:
        experiment.stop()
    reference.check_sample(sample)
    assert model.sample == sample
    from srnas_nni.spaces.hinas import decode_width_path

    moves = [sample[f"outer/layer{i}/width"] for i in range(reference.num_layers)]
    levels = decode_width_path(moves, len(reference.node_widths))
    assert levels[0] in (0, 1) and all(abs(a - b) <= 1 for a, b in zip(levels, levels[1:]))
    # Viterbi picks only moves with non-zero probability.
    for i in range(len(levels)):
        assert probs[f"outer/layer{i}/width"][sample[f"outer/layer{i}/width"]] > 0


def test_sparsestmax_search_ends_one_hot_and_returns_the_fine_tuned_network(image_folder, tmp_path):
    torch.manual_seed(0)
    strategy = get("sparsestmax_darts", arch_learning_rate=0.01, finetune_steps=2)
    experiment = run_supernet_search(load_space_preset("hnas-proxy"), strategy, image_folder, tmp_path, steps=5)
    try:
        module = strategy.oneshot_module
        assert int(module.search_step) == 5
        assert module.radius == 1.0
        probs = strategy.export_probabilities()
        assert all(max(p.values()) == 1.0 for label, p in probs.items())
        model = next(strategy.list_models())
        supernet_state = strategy.supernet.state_dict()
    finally:
        experiment.stop()
    # The returned network carries the supernet's (fine-tuned) weights, not fresh ones.
    frozen_state = model.executable_model().state_dict()
    head = [k for k in frozen_state if k.endswith("weight")][0]
    matches = [k for k, v in supernet_state.items() if v.shape == frozen_state[head].shape
               and torch.equal(v, frozen_state[head])]
    assert matches
