"""SparsestMax / sparsemax / radius schedule (srnas_nni.strategies.differentiable.sparsestmax).

The reference below is written independently of the module: plain Python floats, sparsemax by
bisection on the threshold, the push length found by solving ``||u_F + s d - u0|| = r`` for ``s``
(no Pythagoras shortcut), the push direction taken from the point itself (``p - u_F``).
"""

from __future__ import annotations

import math

import pytest
import torch

from srnas_nni.strategies.differentiable.sparsestmax import SparsestMax, radius_schedule, sparsemax, sparsestmax

SIZES = [2, 3, 4, 5, 8, 13, 55]
RADII = [0.0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]


# ---------------------------------------------------------------------------------------------
# Independent slow reference
# ---------------------------------------------------------------------------------------------
def reference_sparsemax(scores: list[float]) -> list[float]:
    """Projection onto the simplex: find tau with sum(max(z - tau, 0)) = 1 by bisection."""
    low, high = min(scores) - 1.0, max(scores)
    for _ in range(200):
        middle = (low + high) / 2
        if sum(max(s - middle, 0.0) for s in scores) > 1.0:
            low = middle
        else:
            high = middle
    tau = (low + high) / 2
    return [max(s - tau, 0.0) for s in scores]


def reference_sparsestmax(scores: list[float], radius: float) -> list[float]:
    n = len(scores)
    centre_all = [1.0 / n] * n
    point = reference_sparsemax(scores)
    for _ in range(n + 1):
        face = [i for i in range(n) if point[i] > 0]
        distance = math.sqrt(sum((point[i] - centre_all[i]) ** 2 for i in range(n)))
        if len(face) == 1 or distance >= radius:
            return point
        face_centre = [1.0 / len(face) if i in face else 0.0 for i in range(n)]
        direction = [point[i] - face_centre[i] for i in range(n)]
        length = math.sqrt(sum(d * d for d in direction))
        if length < 1e-12:  # tie: no ray, head for the face's lowest-index vertex
            direction = [(1.0 if i == face[0] else 0.0) - face_centre[i] for i in range(n)]
            length = math.sqrt(sum(d * d for d in direction))
        direction = [d / length for d in direction]
        # Solve ||a + s d|| = r for s >= 0 with a = face_centre - centre_all.
        offset = [face_centre[i] - centre_all[i] for i in range(n)]
        along = sum(offset[i] * direction[i] for i in range(n))
        offset_sq = sum(a * a for a in offset)
        step = -along + math.sqrt(along * along - offset_sq + radius * radius)
        pushed = [face_centre[i] + step * direction[i] for i in range(n)]
        if min(pushed) >= 0:
            return pushed
        # Drop the negatives: project onto the simplex of the remaining face.
        kept = [i for i in face if pushed[i] > 0]
        projected = reference_sparsemax([pushed[i] for i in kept])
        point = [0.0] * n
        for index, value in zip(kept, projected):
            point[index] = value
    raise AssertionError("reference did not terminate")


def random_scores(n: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=generator, dtype=torch.float64) * scale


# ---------------------------------------------------------------------------------------------
# sparsemax
# ---------------------------------------------------------------------------------------------
def test_sparsemax_known_values():
    assert torch.allclose(sparsemax(torch.tensor([1.0, 2.0, 3.0])), torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(sparsemax(torch.tensor([0.0, 0.5])), torch.tensor([0.25, 0.75]))
    assert torch.allclose(sparsemax(torch.tensor([0.3, 0.3, 0.3])), torch.full((3,), 1 / 3))
    assert torch.allclose(sparsemax(torch.tensor([0.9, 0.8, -5.0])), torch.tensor([0.55, 0.45, 0.0]))


@pytest.mark.parametrize("n", SIZES)
def test_sparsemax_matches_bisection_reference(n):
    for seed in range(10):
        scores = random_scores(n, seed, scale=0.5 + seed / 5)
        expected = torch.tensor(reference_sparsemax(scores.tolist()), dtype=torch.float64)
        assert torch.allclose(sparsemax(scores), expected, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# sparsestmax: values
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", SIZES)
def test_output_on_simplex(n):
    for seed in range(5):
        for dtype in (torch.float32, torch.float64):
            scores = random_scores(n, seed, scale=3.0).to(dtype)
            for radius in RADII:
                output = sparsestmax(scores, radius)
                assert output.dtype == dtype
                assert (output >= 0).all()
                assert abs(float(output.sum()) - 1.0) < 1e-5


@pytest.mark.parametrize("n", SIZES)
def test_radius_zero_is_sparsemax(n):
    for seed in range(5):
        scores = random_scores(n, seed)
        assert torch.equal(sparsestmax(scores, 0.0), sparsemax(scores))


@pytest.mark.parametrize("n", SIZES)
def test_matches_reference(n):
    for seed in range(8):
        scores = random_scores(n, 100 + seed, scale=0.3 + seed / 3)
        for radius in RADII:
            expected = torch.tensor(reference_sparsestmax(scores.tolist(), radius), dtype=torch.float64)
            assert torch.allclose(sparsestmax(scores, radius), expected, atol=1e-6), (n, seed, radius)


@pytest.mark.parametrize("n", SIZES)
def test_constraint_holds_below_vertex_distance(n):
    """The result lies outside the ball ||p - u0|| < r whenever that is possible (r below vertex distance)."""
    vertex_distance = math.sqrt((n - 1) / n)
    centre = torch.full((n,), 1.0 / n, dtype=torch.float64)
    for seed in range(5):
        scores = random_scores(n, 200 + seed)
        for radius in RADII:
            if radius < vertex_distance:
                distance = float((sparsestmax(scores, radius) - centre).norm())
                assert distance >= radius - 1e-9


@pytest.mark.parametrize("n", SIZES)
def test_radius_one_is_exact_one_hot_at_argmax(n):
    for seed in range(5):
        scores = random_scores(n, 300 + seed, scale=0.01)
        output = sparsestmax(scores, 1.0)
        expected = torch.zeros(n, dtype=torch.float64)
        expected[scores.argmax()] = 1.0
        assert torch.equal(output, expected)


def test_one_hot_from_vertex_distance_on():
    scores = torch.tensor([0.1, 0.5, 0.45, 0.0])
    vertex_distance = math.sqrt(3 / 4)
    assert torch.equal(sparsestmax(scores, vertex_distance + 1e-6), torch.tensor([0.0, 1.0, 0.0, 0.0]))
    # Just below it, a near tie (0.5 vs 0.45) may still keep a small second weight on an edge.
    output = sparsestmax(scores, 0.85)
    assert output[1] > 0.95 and int((output > 0).sum()) <= 2


def test_ties_resolve_to_lowest_index():
    assert torch.equal(sparsestmax(torch.zeros(5), 1.0), torch.tensor([1.0, 0, 0, 0, 0]))
    assert torch.equal(sparsestmax(torch.tensor([1.0, 3.0, 3.0, 0.0]), 1.0), torch.tensor([0.0, 1, 0, 0]))
    assert torch.equal(sparsestmax(torch.full((3,), 7.0), 0.0), sparsemax(torch.full((3,), 7.0)))
    # All equal, intermediate radius: pushed towards vertex 0, the others stay equal.
    output = sparsestmax(torch.zeros(4, dtype=torch.float64), 0.5)
    assert output[0] > output[1] and torch.allclose(output[1:], output[1].expand(3))
    assert torch.allclose(output, torch.tensor(reference_sparsestmax([0.0] * 4, 0.5), dtype=torch.float64))
    # A tie on the sparsemax support only (index 2 dropped), pushed towards index 0.
    output = sparsestmax(torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64), 0.5)
    assert output[0] > output[1] > 0 and output[2] == 0
    assert torch.allclose(output, torch.tensor(reference_sparsestmax([1.0, 1.0, 0.0], 0.5), dtype=torch.float64))
    # Deterministic: the same input twice gives bit-identical output.
    scores = torch.tensor([0.2, 0.2, 0.2, -1.0])
    assert torch.equal(sparsestmax(scores, 0.6), sparsestmax(scores.clone(), 0.6))


@pytest.mark.parametrize("n", SIZES)
def test_sparsity_never_increases_with_radius(n):
    radii = [i / 50 for i in range(51)]
    for seed in range(10):
        scores = random_scores(n, 400 + seed, scale=0.2 + seed / 4)
        nonzeros = [int((sparsestmax(scores, radius) > 0).sum()) for radius in radii]
        assert all(later <= earlier for earlier, later in zip(nonzeros, nonzeros[1:])), nonzeros
        assert nonzeros[-1] == 1


def test_radius_accepts_zero_dim_tensor_and_rejects_bad_values():
    scores = random_scores(6, 7)
    assert torch.equal(sparsestmax(scores, torch.tensor(0.4)), sparsestmax(scores, 0.4))
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            sparsestmax(scores, bad)
    with pytest.raises(ValueError):
        sparsestmax(scores, torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError):
        sparsestmax(torch.tensor(1.0), 0.1)


def test_single_candidate():
    assert torch.equal(sparsestmax(torch.tensor([-3.0]), 0.0), torch.tensor([1.0]))
    assert torch.equal(sparsestmax(torch.tensor([-3.0]), 1.0), torch.tensor([1.0]))


# ---------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("radius", [0.0, 0.3, 0.6, 0.8, 1.0])
def test_batched_equals_row_by_row_and_dim_honoured(radius):
    generator = torch.Generator().manual_seed(5)
    scores = torch.randn(3, 7, 4, generator=generator, dtype=torch.float64)
    along_middle = sparsestmax(scores, radius, dim=1)
    assert along_middle.shape == scores.shape
    for i in range(3):
        for k in range(4):
            assert torch.equal(along_middle[i, :, k], sparsestmax(scores[i, :, k], radius))
    along_last = sparsestmax(scores, radius)
    for i in range(3):
        for j in range(7):
            assert torch.equal(along_last[i, j], sparsestmax(scores[i, j], radius))
    assert torch.allclose(along_middle.sum(dim=1), torch.ones(3, 4, dtype=torch.float64))
    assert torch.equal(sparsestmax(scores, radius, dim=-2), along_middle)
    assert torch.equal(sparsemax(scores, dim=0), torch.stack(
        [torch.stack([sparsemax(scores[:, j, k]) for k in range(4)], dim=-1) for j in range(7)], dim=1))


# ---------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 5, 8, 13])
def test_gradients_finite_and_zero_outside_support(n):
    for seed in range(6):
        scores = random_scores(n, 500 + seed)
        support_of_sparsemax = sparsemax(scores) > 0
        for radius in RADII:
            jacobian = torch.autograd.functional.jacobian(lambda z: sparsestmax(z, radius), scores)
            assert torch.isfinite(jacobian).all()
            output = sparsestmax(scores, radius)
            # Zero outputs do not move; scores below the sparsemax threshold do not matter.
            assert (jacobian[output == 0] == 0).all()
            assert (jacobian[:, ~support_of_sparsemax] == 0).all()
            if int((output > 0).sum()) == 1:
                assert (jacobian == 0).all()


def test_backward_through_module_and_all_equal_input():
    for scores in (torch.zeros(5, requires_grad=True), torch.randn(4, 9, requires_grad=True)):
        for radius in (0.0, 0.5, 1.0):
            weights = torch.arange(scores.shape[-1], dtype=scores.dtype)
            (SparsestMax(radius)(scores) * weights).sum().backward()
            assert scores.grad is not None and torch.isfinite(scores.grad).all()
            scores.grad = None


@pytest.mark.parametrize("radius", [0.0, 0.3, 0.55])
def test_gradcheck_against_finite_differences(radius):
    for seed in range(4):
        scores = random_scores(6, 600 + seed).requires_grad_()
        assert torch.autograd.gradcheck(lambda z: sparsestmax(z, radius), (scores,), eps=1e-7, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Module and schedule
# ---------------------------------------------------------------------------------------------
def test_module_is_a_softmax_replacement():
    module = SparsestMax()
    alpha = random_scores(7, 9)
    assert torch.equal(module(alpha), sparsemax(alpha))
    module.radius = 0.6
    assert module.radius == 0.6
    assert torch.equal(module(alpha), sparsestmax(alpha, 0.6))
    assert "radius=0.6" in repr(module)
    with pytest.raises(ValueError):
        module.radius = 2.0
    assert module.anneal(10, 10) == 1.0
    assert int((module(alpha) > 0).sum()) == 1
    assert module.anneal(5, 10, kind="cosine") == pytest.approx(0.5)
    assert SparsestMax(0.2, dim=0)(alpha.reshape(7, 1)).shape == (7, 1)


@pytest.mark.parametrize("kind", ["linear", "cosine", "step"])
def test_radius_schedule_ends_and_monotone(kind):
    total = 100
    values = [radius_schedule(step, total, kind=kind) for step in range(total + 20)]
    assert values[0] == 0.0
    assert values[total] == 1.0 and values[-1] == 1.0
    assert all(later >= earlier for earlier, later in zip(values, values[1:]))
    assert all(0.0 <= value <= 1.0 for value in values)
    shifted = [radius_schedule(step, total, start=0.2, end=0.9, kind=kind) for step in range(total + 1)]
    assert shifted[0] == pytest.approx(0.2) and shifted[-1] == pytest.approx(0.9)
    assert all(later >= earlier for earlier, later in zip(shifted, shifted[1:]))


def test_radius_schedule_kinds_differ_as_documented():
    assert radius_schedule(25, 100, kind="linear") == pytest.approx(0.25)
    assert radius_schedule(25, 100, kind="cosine") == pytest.approx((1 - math.cos(math.pi / 4)) / 2)
    assert radius_schedule(50, 100, kind="cosine") == pytest.approx(0.5)
    assert [radius_schedule(s, 100, kind="step") for s in (0, 24, 25, 49, 50, 99, 100)] == [
        0.0, 0.0, 0.25, 0.25, 0.5, 0.75, 1.0]
    assert radius_schedule(60, 100, kind="step", num_stages=2) == 0.5
    for bad in ({"kind": "exp"}, {"start": -0.5}, {"end": 1.5}, {"num_stages": 0}):
        with pytest.raises(ValueError):
            radius_schedule(1, 10, **bad)
    with pytest.raises(ValueError):
        radius_schedule(1, 0)
    with pytest.raises(ValueError):
        radius_schedule(-1, 10)
