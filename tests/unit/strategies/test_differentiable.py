"""The differentiable strategies: sparsestmax_darts, dlsr, hinas, and their shared base, on a toy space and
in parts. Their searches on the proxy spaces: ``tests/integration/test_differentiable_strategies.py``."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from srnas_nni.errors import SRNASError
from srnas_nni.nni_adapter.loader import nni  # noqa: F401
from srnas_nni.spaces import load_space_preset
from srnas_nni.spaces.base import SpaceCost, SRModelSpace
from srnas_nni.strategies import get, load_strategy_preset
from srnas_nni.strategies.differentiable.base import ExpectedCostPenalty, SkippingMixedInput, SkippingMixedLayer
from srnas_nni.strategies.differentiable.sparsestmax import SparsestMax

from nni.mutable import Categorical  # noqa: E402
from nni.mutable.frozen import frozen_context  # noqa: E402
from nni.nas.experiment import NasExperiment, NasExperimentConfig  # noqa: E402
from nni.nas.nn.pytorch import LayerChoice  # noqa: E402

from tests.support.supernets import run_supernet_search

STRATEGIES = ("sparsestmax_darts", "dlsr", "hinas")
PROXIES = ("hnas-proxy", "trilevel-proxy", "hinas-proxy", "dlsr-proxy", "deconas-proxy")


# ----------------------------------------------------------------------------------------------
# A toy SR space: the identity candidate adds a scrambled copy of the input (it hurts and nothing
# can undo it at these learning rates); the zero-initialised conv starts harmless and can learn.
# ----------------------------------------------------------------------------------------------
def _zero_conv() -> nn.Conv2d:
    conv = nn.Conv2d(12, 12, 3, padding=1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class _ToyNet(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        up = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        return up + self.shuffle(self.body(x.repeat(1, 4, 1, 1)))


class ToySpace(SRModelSpace):
    CONV_PARAMS = 12 * 12 * 9 + 12

    def __init__(self):
        super().__init__()
        self.scale = 2
        self.network = _ToyNet(LayerChoice({"identity": nn.Identity(), "conv": _zero_conv()}, label="body"))

    def cost(self, sample, hr_size=(720, 1280)):
        conv = sample["body"] == "conv"
        per_pixel = 12 * 12 * 9 if conv else 0
        return SpaceCost(self.CONV_PARAMS if conv else 0,
                         per_pixel * math.ceil(hr_size[0] / 2) * math.ceil(hr_size[1] / 2))


@pytest.mark.parametrize("name", STRATEGIES)
def test_toy_search_picks_the_useful_op_and_the_penalty_picks_the_cheap_one(name, image_folder, tmp_path):
    choices = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        strategy = get(name, arch_learning_rate=0.05, penalty_weight=weight, penalty_metric="params")
        experiment = run_supernet_search(ToySpace(), strategy, image_folder, tmp_path / str(weight), steps=30,
                                         learning_rate=1e-3)
        try:
            choices[weight] = strategy.export_architecture()["body"]
            probs = strategy.export_probabilities()["body"]
            assert math.isclose(sum(probs.values()), 1.0, rel_tol=1e-5)
        finally:
            experiment.stop()
    assert choices == {0.0: "conv", 1.0: "identity"}


# ----------------------------------------------------------------------------------------------
# The expected-cost penalty
# ----------------------------------------------------------------------------------------------
class _AdditiveSpace:
    """Three independent labels whose costs add up (a stand-in with the space's cost API)."""

    TABLE = {"a": {"x": 10, "y": 30, "z": 70}, "b": {"p": 5, "q": 1}, "c": {0: 0, 1: 100, 2: 40, 3: 7}}

    def __init__(self):
        self.labels = {label: Categorical(list(values), label=label) for label, values in self.TABLE.items()}

    def cost(self, sample, hr_size=(720, 1280)):
        total = sum(self.TABLE[label][sample[label]] for label in self.TABLE)
        return SpaceCost(total, total * 2)

    def random_sample(self, state):
        return {label: list(values)[state.randint(len(values))] for label, values in self.TABLE.items()}


def test_expected_cost_is_exact_on_additive_costs_and_reaches_the_alphas():
    space = _AdditiveSpace()
    penalty = ExpectedCostPenalty(space, space.labels, metric="params")
    torch.manual_seed(0)
    alphas = {label: torch.randn(len(values), requires_grad=True) for label, values in space.TABLE.items()}
    probs = {label: torch.softmax(alpha, -1) for label, alpha in alphas.items()}
    argmax = {label: list(space.TABLE[label])[int(alpha.argmax())] for label, alpha in alphas.items()}
    expected = penalty.expected_cost(argmax, probs)
    exact = sum(float((probs[label] * torch.tensor(list(values.values()), dtype=torch.float)).sum())
                for label, values in space.TABLE.items())
    assert float(expected) == pytest.approx(exact, rel=1e-5)
    expected.backward()
    for label, alpha in alphas.items():
        assert alpha.grad is not None and float(alpha.grad.abs().sum()) > 0, label
    # Marginals are cached while the argmax is unchanged, recomputed when it changes.
    calls = []
    original = space.cost
    space.cost = lambda sample, hr_size=(720, 1280): calls.append(1) or original(sample, hr_size)
    penalty.expected_cost(argmax, probs)
    assert not calls
    penalty.expected_cost({**argmax, "b": "q" if argmax["b"] == "p" else "p"}, probs)
    assert calls


def test_penalty_in_a_real_space_has_a_gradient_on_the_supernet_alphas():
    strategy = get("dlsr", penalty_weight=1.0)
    space = load_space_preset("dlsr-proxy")
    supernet = strategy.mutate_model(space)
    from srnas_nni.evaluation.lightning import SRLightningModule

    module = strategy.configure_oneshot_module(SRLightningModule(scale=space.scale))
    module.set_model(supernet)
    term = module.cost_penalty_term()
    term.backward()
    grads = [p.grad for p in module.arch_parameters()]
    assert grads and all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # Categorical-multiple labels (top-2 connections) take part too.
    distributions = module.label_distributions()
    assert "network/cell4/inputs" in distributions


# ----------------------------------------------------------------------------------------------
# Zero-weight candidates are not computed
# ----------------------------------------------------------------------------------------------
class _Counting(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.calls = 0
        self.scale = scale

    def forward(self, x):
        self.calls += 1
        return x * self.scale


def test_zero_weight_candidates_are_not_called():
    relaxation = SparsestMax(radius=0.0)
    a, b = _Counting(1.0), _Counting(2.0)
    alpha = nn.Parameter(torch.tensor([0.3, 0.0]))
    with frozen_context():  # NNI builds its supernet modules inside one
        layer = SkippingMixedLayer({"a": a, "b": b}, alpha, relaxation, "toy")
        mixed_input = SkippingMixedInput(2, 1, nn.Parameter(torch.tensor([0.0, 2.0])), relaxation, "inputs")
    x = torch.ones(1, 1, 2, 2)
    layer(x)
    assert (a.calls, b.calls) == (1, 1)  # both weights non-zero at radius 0
    relaxation.radius = 1.0  # one-hot on "a"
    out = layer(x)
    assert (a.calls, b.calls) == (2, 1)
    assert torch.equal(out, x)
    boom = torch.full((1, 1, 2, 2), float("nan"))
    assert torch.equal(mixed_input([boom, x]), x)  # the zero-weight NaN input is never touched


def test_zero_weight_exits_of_the_trilevel_path_are_not_computed():
    strategy = get("sparsestmax_darts")
    supernet = strategy.mutate_model(load_space_preset("trilevel-proxy"))
    strategy.configure_softmax().radius = 1.0
    calls = []
    for cell in supernet.network.modules():
        if type(cell).__name__ == "NetworkPathDifferentiable":
            path_module = cell
    for index, cell in enumerate(path_module.cells):
        cell.register_forward_hook(lambda *args, index=index: calls.append(index))
    label = path_module.path_choice.label
    values = list(path_module.path_choice.values)
    shortest = min(range(len(values)), key=lambda i: len(values[i]))
    with torch.no_grad():
        strategy._arch_parameters[label].zero_()
        strategy._arch_parameters[label][shortest] = 1.0
        supernet(torch.rand(1, 3, 8, 8))
    assert len(calls) == values[shortest].count("C")
    strategy.configure_softmax().radius = 0.0
    calls.clear()
    with torch.no_grad():
        strategy._arch_parameters[label].zero_()
        supernet(torch.rand(1, 3, 8, 8))
    assert len(calls) > values[shortest].count("C")


def test_radius_follows_the_schedule_and_updates_stop_after_the_search():
    strategy = get("sparsestmax_darts", search_steps=10, warmup_steps=2, radius_schedule="cosine")
    supernet = strategy.mutate_model(ToySpace())
    from srnas_nni.evaluation.lightning import SRLightningModule

    module = strategy.configure_oneshot_module(SRLightningModule(scale=2))
    module.set_model(supernet)
    module.log = lambda *args, **kwargs: None
    module.before_step(5)
    assert module.radius == pytest.approx((1 - math.cos(math.pi * 0.5)) / 2)
    assert not module.architecture_updates_enabled(1)
    assert module.architecture_updates_enabled(2) and module.architecture_updates_enabled(9)
    assert not module.architecture_updates_enabled(10)
    module.before_step(12)
    assert module.radius == 1.0


def test_order_loss_pushes_longer_paths_below_their_prefixes():
    strategy = get("sparsestmax_darts", order_weight=1.0)
    supernet = strategy.mutate_model(load_space_preset("trilevel-proxy"))
    from srnas_nni.evaluation.lightning import SRLightningModule

    module = strategy.configure_oneshot_module(SRLightningModule(scale=2))
    module.set_model(supernet)
    alpha = strategy._arch_parameters["network/path"]
    values = list(strategy._space_labels["network/path"].values)
    with torch.no_grad():
        alpha.copy_(torch.tensor([float(len(v)) for v in values]))  # longer paths preferred: violated order
    loss = module.architecture_regularizer()
    assert float(loss) > 0
    loss.backward()
    # Every prefix pair is violated, so each logit's gradient is (pairs where it is the longer value)
    # minus (pairs where it is the shorter one).
    pairs = [(i, j) for i, p in enumerate(values) for j, q in enumerate(values) if len(q) > len(p) and q.startswith(p)]
    assert pairs
    expected = torch.zeros(len(values))
    for shorter, longer in pairs:
        expected[longer] += 1
        expected[shorter] -= 1
    assert torch.allclose(alpha.grad, expected)
    with torch.no_grad():
        alpha.copy_(torch.tensor([-float(len(v)) for v in values]))  # order holds: no loss
    assert float(module.architecture_regularizer()) == 0


def test_hinas_checkpoints_its_mixtures_and_keeps_the_gradients():
    torch.manual_seed(0)
    plain = get("darts")
    ours = get("hinas")
    space_a, space_b = load_space_preset("hinas-proxy"), load_space_preset("hinas-proxy")
    space_b.load_state_dict(space_a.state_dict())
    net_a, net_b = plain.mutate_model(space_a), ours.mutate_model(space_b)
    for alpha_a, alpha_b in zip(plain._arch_parameters.values(), ours._arch_parameters.values()):
        alpha_b.data.copy_(alpha_a.data)
    # The HiNAS modules create their own alphas: copy those too, by position.
    arch_a = [p for n, p in net_a.named_parameters() if "_arch_" in n]
    arch_b = [p for n, p in net_b.named_parameters() if "_arch_" in n]
    for a, b in zip(arch_a, arch_b):
        b.data.copy_(a.data)
    net_a.load_state_dict(net_b.state_dict())
    x = torch.rand(1, 3, 8, 8)
    net_a(x).abs().mean().backward()
    net_b(x).abs().mean().backward()
    assert any(type(m.forward).__name__ == "_CheckpointedForward" for m in net_b.modules())
    for a, b in zip(arch_a, arch_b):
        assert torch.allclose(a.grad, b.grad, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# State and options
# ----------------------------------------------------------------------------------------------
def test_search_state_round_trips_through_the_lightning_checkpoint_hooks():
    from srnas_nni.evaluation.lightning import SRLightningModule

    def build():
        strategy = get("sparsestmax_darts", search_steps=10, penalty_weight=0.5)
        supernet = strategy.mutate_model(load_space_preset("trilevel-proxy"))
        module = strategy.configure_oneshot_module(SRLightningModule(scale=2))
        module.set_model(supernet)
        return strategy, module

    _, first = build()
    with torch.no_grad():
        for p in first.arch_parameters():
            p.add_(torch.randn_like(p))
    first.search_step.fill_(7)
    first.relaxation.radius = 0.7
    first.cost_penalty_term()  # fixes the cost reference
    checkpoint = {"state_dict": first.state_dict()}
    first.on_save_checkpoint(checkpoint)
    _, second = build()
    second.load_state_dict(checkpoint["state_dict"])
    second.on_load_checkpoint(checkpoint)
    assert int(second.search_step) == 7 and second.relaxation.radius == 0.7
    assert float(second.cost_reference) == float(first.cost_reference)
    assert second.export() == first.export()
    for a, b in zip(first.arch_parameters(), second.arch_parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", STRATEGIES)
def test_presets_load_and_bad_options_are_named(name):
    strategy = load_strategy_preset(name)
    assert strategy.__class__.__name__
    with pytest.raises(SRNASError, match="mode"):
        get(name, mode="trilevel")
    with pytest.raises(SRNASError, match="penalty_metric"):
        get(name, penalty_metric="flops")
    with pytest.raises(SRNASError, match="loss"):
        get(name, loss="ssim")
    with pytest.raises(SRNASError, match="warmup_steps"):
        get(name, warmup_steps=-1)


def test_sparsestmax_options_are_checked():
    with pytest.raises(SRNASError, match="radius_end"):
        get("sparsestmax_darts", radius_end=1.5)
    with pytest.raises(SRNASError, match="radius_schedule"):
        get("sparsestmax_darts", radius_schedule="exp")


def test_dlsr_uses_its_paper_loss(image_folder, tmp_path):
    strategy = get("dlsr", warmup_steps=1)
    experiment = run_supernet_search(ToySpace(), strategy, image_folder, tmp_path, steps=2)
    try:
        assert strategy.oneshot_module.training_module.loss_name == "l1+hfen"
    finally:
        experiment.stop()


def test_search_resumes_from_the_lightning_checkpoint(image_folder, tmp_path):
    from srnas_nni.evaluation.lightning import sr_lightning_evaluator

    checkpoints = tmp_path / "ckpt"

    def experiment_for(steps, workdir):
        evaluator = sr_lightning_evaluator(scale=2, train_data=str(image_folder), val_data=str(image_folder),
                                           steps=steps, val_batches=1, patch_size=16, batch_size=2, device="cpu",
                                           checkpoint_dir=checkpoints, checkpoint_every=1)
        strategy = get("sparsestmax_darts", search_steps=10, arch_learning_rate=0.01, penalty_weight=0.1)
        config = NasExperimentConfig("sequential", "raw")
        config.experiment_working_directory = str(workdir)
        return NasExperiment(ToySpace(), evaluator, strategy, config=config), strategy, evaluator

    class Interrupted(RuntimeError):
        pass

    def crash_at_step_3(self, step):
        if step == 3:
            raise Interrupted("simulated crash")
        return original(self, step)

    torch.manual_seed(0)
    first, strategy, _ = experiment_for(5, tmp_path / "a")
    original = strategy.module_class.before_step
    strategy.module_class = type("Crashing", (strategy.module_class,), {"before_step": crash_at_step_3})
    with pytest.raises(Interrupted):
        first.run()  # the checkpoint written after step 3 stays
    try:
        state = strategy.state_dict()
        alpha_after_first = strategy.oneshot_module.label_alphas["body"].detach().clone()
    finally:
        first.stop()
    assert state.get("ckpt_path") and (checkpoints / "last.ckpt").exists()
    saved = torch.load(state["ckpt_path"], map_location="cpu", weights_only=False)
    assert int(saved["state_dict"]["search_step"]) == 3

    second, resumed, evaluator = experiment_for(5, tmp_path / "b")
    evaluator.fit_kwargs["ckpt_path"] = state["ckpt_path"]
    steps_run = []

    def counting(self, step):
        steps_run.append(step)
        return original(self, step)

    resumed.module_class = type("Counting", (resumed.module_class,), {"before_step": counting})
    second.run()
    try:
        module = resumed.oneshot_module
        assert steps_run == [3, 4]  # continued where the first search stopped
        assert int(module.search_step) == 5
        assert not torch.equal(module.label_alphas["body"].detach(), alpha_after_first)  # and kept searching
    finally:
        second.stop()
