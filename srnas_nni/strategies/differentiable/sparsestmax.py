"""SparsestMax: architecture weights that go from sparse to exactly one-hot as a radius grows.

Contract
--------
:func:`sparsestmax` ``(z, radius, dim=-1)`` maps real scores ``z`` (any shape, the candidates lie
along ``dim``) to probability vectors along ``dim``: every output is non-negative and sums to 1.
``radius = 0`` gives :func:`sparsemax`; as the radius grows the outputs get sparser (fewer
non-zeros) and, from ``radius >= sqrt((n - 1) / n)`` on (so always at ``radius = 1``), every output
is exactly one-hot at the argmax of ``z`` (the lowest index among tied maxima, as
``torch.argmax``). Trilevel NAS (Wu et al., arXiv 2101.06658) uses it for its cell-, kernel- and
network-level weights and anneals the radius from 0 to 1 during the search (:func:`radius_schedule`),
so searching and training are one phase and the final architecture needs no discretisation step.
:class:`SparsestMax` is the ``nn.Module`` form with a settable ``radius``: it is what a DARTS
strategy receives as its ``softmax`` (NNI's DARTS calls ``softmax(alpha)`` on each label's 1-D
logit vector).

Algorithm (SSN, Shao et al., "SSN: Learning Sparse Switchable Normalization via SparsestMax",
CVPR 2019)
------------------------------------------------------------------------------------------------
Let ``n`` be the number of candidates, ``S`` the probability simplex and ``u0 = (1/n, ..., 1/n)``
its centre. SparsestMax is sparsemax (the Euclidean projection of ``z`` onto ``S``) with the
extra, non-convex constraint ``||p - u0|| >= r``: the point must leave the ball of radius ``r``
around the centre, and since the simplex's vertices are the points farthest from it, a bigger
``r`` leaves only points near the vertices. SSN solves it greedily, and so do we:

1. ``p = sparsemax(z)`` (Martins & Astudillo 2016: sort ``z`` descending, the support size is the
   largest ``k`` with ``1 + k z_(k) > z_(1) + ... + z_(k)``, the threshold is
   ``tau = (z_(1) + ... + z_(k) - 1) / k`` and ``p = max(z - tau, 0)``).
2. ``F`` = support of ``p`` (the face of the simplex ``p`` lies in), ``m = |F|``, ``u_F`` = the
   face's centre (``1/m`` on ``F``). ``u_F`` is the orthogonal projection of ``u0`` onto the face's
   plane, so the sphere ``||p - u0|| = r`` cuts that plane in a sphere around ``u_F`` of radius
   ``r_F = sqrt(r**2 - ||u_F - u0||**2) = sqrt(r**2 - (1/m - 1/n))`` (Pythagoras). If ``m == 1``
   (a vertex) or ``||p - u0|| >= r`` (equivalently ``||p - u_F|| >= r_F``), the answer is ``p``.
3. Otherwise push ``p`` outward along the ray from ``u_F`` through ``p`` onto that sphere:
   ``p = u_F + r_F (p - u_F) / ||p - u_F||``. If ``p >= 0`` it is the answer.
4. Otherwise project ``p`` onto the simplex again, which fixes the coordinates that became negative
   (and possibly a few more) to 0 and shifts the others equally: it is the projection onto the
   remaining, smaller face. Go to 2 with that face. Every pass drops at least one coordinate, so
   there are at most ``n - 1`` pushes.

Implementation notes:

* Ray direction and ties. On every face reached, ``p - u_F`` is a positive multiple of
  ``z_F - mean(z_F)`` (sparsemax and the projections subtract a constant, the pushes scale about
  the centre), so we push along the latter: the same point, computed from the inputs without
  rounding drift. If ``z`` is constant on ``F`` then ``p = u_F`` and there is no ray (e.g. all-equal
  scores): the push goes towards the vertex of the lowest index in ``F``, which is the lowest-index
  argmax of ``z``. Ties are therefore always broken towards the lowest index.
* Exact one-hot. The distance from ``u0`` to a vertex is ``sqrt((n - 1) / n) < 1``; for ``r`` at or
  above it no non-vertex point satisfies the constraint, the greedy passes end on the vertex of the
  argmax, and we return that one-hot vector directly. Outputs that end on a vertex inside the loop
  are also set to exactly 1 / 0.
* Vectorised: all vectors (every position of the other dimensions) go through the passes together,
  with masks; the loop is over passes (at most ``n - 1``, and ``n`` is 2-55 in the search spaces).
* Gradients: plain autograd through sort / cumsum / gather / clamp / norm, so the Jacobian is the
  true derivative of this piecewise-smooth map wherever it is differentiable (almost everywhere).
  Output entries that are 0 get a zero gradient, and so do the scores below the sparsemax threshold.
  A score whose coordinate was dropped by a push still sets that push's length, so it may get a
  non-zero gradient: that is the map's real derivative, not leakage. ``radius`` is a schedule
  value, not a parameter: it receives no gradient. Inputs must be finite.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = ["sparsemax", "sparsestmax", "SparsestMax", "radius_schedule", "ScheduleKind", "SCHEDULE_KINDS"]

ScheduleKind = Literal["linear", "cosine", "step"]
SCHEDULE_KINDS: tuple[str, ...] = ("linear", "cosine", "step")


# ----------------------------------------------------------------------------------------------
# Helpers over 2-D "rows" tensors: one probability vector per row.
# ----------------------------------------------------------------------------------------------
def _to_rows(z: Tensor, dim: int) -> tuple[Tensor, torch.Size]:
    """Move ``dim`` last and flatten the rest: returns the rows and the moved shape to undo it."""
    if z.ndim == 0:
        raise ValueError("sparsestmax needs at least a 1-D tensor (the candidates lie along `dim`)")
    if not z.is_floating_point():
        raise TypeError(f"sparsestmax needs a floating-point tensor, got {z.dtype}")
    moved = z.movedim(dim, -1)
    if moved.shape[-1] == 0:
        raise ValueError("sparsestmax needs at least one candidate along `dim`")
    return moved.reshape(-1, moved.shape[-1]), moved.shape


def _from_rows(rows: Tensor, moved_shape: torch.Size, dim: int) -> Tensor:
    return rows.reshape(moved_shape).movedim(-1, dim)


def _project_rows(rows: Tensor, face: Tensor | None = None) -> Tensor:
    """Sparsemax of every row; with ``face`` (bool, same shape) only over the face's coordinates.

    Coordinates outside ``face`` come out as exactly 0 (they are set to -inf before sorting, so they
    can never enter the support, whatever the rounding of the threshold).
    """
    if face is not None:
        rows = rows.masked_fill(~face, float("-inf"))
    # Sparsemax is shift invariant; subtracting the (detached) max only keeps the sums in range.
    rows = rows - rows.max(dim=-1, keepdim=True).values.detach()
    ordered = rows.sort(dim=-1, descending=True).values
    cumulative = ordered.cumsum(dim=-1)
    sizes = torch.arange(1, rows.shape[-1] + 1, dtype=rows.dtype, device=rows.device)
    # The support is a prefix of the sorted scores; its first entry always qualifies.
    in_support = 1 + sizes * ordered > cumulative
    support_size = in_support.sum(dim=-1, keepdim=True)
    threshold = (cumulative.gather(-1, support_size - 1) - 1) / support_size.to(rows.dtype)
    return (rows - threshold).clamp(min=0)


def _one_hot_argmax_rows(rows: Tensor) -> Tensor:
    """Exact one-hot at each row's argmax (lowest index among ties), still attached to the graph."""
    winner = rows.detach().argmax(dim=-1, keepdim=True)
    one_hot = torch.zeros_like(rows, requires_grad=False).scatter_(-1, winner, 1.0)
    # `rows * 0` keeps the output in the autograd graph (with a zero gradient), so a caller can
    # always call backward(), also once the annealed radius has made every weight one-hot.
    return one_hot + rows * 0


def _push_direction(rows: Tensor, face: Tensor, centre: Tensor) -> Tensor:
    """Unit vector, inside each row's face, along which that face's point is pushed outward.

    It is ``z_F - mean(z_F)`` normalised (see the module notes); when ``z`` is constant on the face
    it points at the face's lowest-index vertex instead. Rows whose face is a single vertex get 0.
    """
    face_weight = face.to(rows.dtype)
    face_size = face_weight.sum(dim=-1, keepdim=True)
    face_mean = (rows * face_weight).sum(dim=-1, keepdim=True) / face_size
    offset = (rows - face_mean) * face_weight
    # Exact tie test on the inputs themselves (a mean of equal floats need not equal them).
    scores = rows.detach()
    highest = scores.masked_fill(~face, float("-inf")).max(dim=-1, keepdim=True).values
    lowest = scores.masked_fill(~face, float("inf")).min(dim=-1, keepdim=True).values
    tied = highest == lowest
    first_in_face = face_weight.argmax(dim=-1, keepdim=True)
    towards_first_vertex = torch.zeros_like(centre).scatter_(-1, first_in_face, 1.0) - centre
    offset = torch.where(tied, towards_first_vertex, offset)
    length = offset.norm(dim=-1, keepdim=True)
    return offset / length.clamp(min=torch.finfo(rows.dtype).tiny)


def _sparsestmax_rows(rows: Tensor, radius: float) -> Tensor:
    """Steps 1-4 of the module docstring for every row at once (``radius < sqrt((n-1)/n)``)."""
    num_candidates = rows.shape[-1]
    dtype = rows.dtype
    radius_sq = radius * radius
    point = _project_rows(rows)
    # Rows whose last push landed inside the simplex are finished even if rounding puts them a hair
    # inside the sphere; only rows that were just projected onto a smaller face are checked again.
    unfinished = torch.ones(rows.shape[0], 1, dtype=torch.bool, device=rows.device)
    for _ in range(num_candidates):  # at most n - 1 pushes: each one ends the row or drops a coordinate
        face = point > 0
        face_size = face.sum(dim=-1, keepdim=True)
        centre = face.to(dtype) / face_size.to(dtype)
        # Radius of the ball's cross-section by the face's plane (Pythagoras through u_F).
        face_radius_sq = radius_sq - (1.0 / face_size.to(dtype) - 1.0 / num_candidates)
        distance_sq = (point - centre).square().sum(dim=-1, keepdim=True)
        needs_push = unfinished & (face_size > 1) & (distance_sq < face_radius_sq)
        if not bool(needs_push.any()):
            break
        direction = _push_direction(rows, face, centre)
        pushed = centre + face_radius_sq.clamp(min=0).sqrt() * direction
        leaves_simplex = (pushed < 0).any(dim=-1, keepdim=True)
        projected = _project_rows(pushed, face)
        point = torch.where(needs_push, torch.where(leaves_simplex, projected, pushed), point)
        unfinished = needs_push & leaves_simplex
    # A single remaining coordinate is 1 up to the rounding of the last threshold: make it exact.
    face = point > 0
    at_vertex = face.sum(dim=-1, keepdim=True) == 1
    return torch.where(at_vertex, face.to(dtype), point)


def _check_radius(radius: float | Tensor) -> float:
    if isinstance(radius, Tensor):
        if radius.numel() != 1:
            raise ValueError(f"radius must be a scalar, got a tensor of shape {tuple(radius.shape)}")
        radius = radius.detach().item()
    radius = float(radius)
    if not 0.0 <= radius <= 1.0:  # also rejects NaN
        raise ValueError(f"radius must be in [0, 1], got {radius}")
    return radius


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------
def sparsemax(z: Tensor, dim: int = -1) -> Tensor:
    """Euclidean projection of ``z`` onto the probability simplex along ``dim`` (Martins & Astudillo 2016).

    Sparse: scores below a data-dependent threshold get exactly 0. Differentiable almost everywhere.
    """
    rows, moved_shape = _to_rows(z, dim)
    return _from_rows(_project_rows(rows), moved_shape, dim)


def sparsestmax(z: Tensor, radius: float | Tensor, dim: int = -1) -> Tensor:
    """SparsestMax of ``z`` along ``dim`` with the given radius in ``[0, 1]`` (see the module docstring).

    ``radius = 0`` is sparsemax; ``radius >= sqrt((n - 1) / n)`` (``n`` candidates), in particular
    ``radius = 1``, gives exactly one-hot vectors at the argmax (lowest index on ties).
    """
    radius = _check_radius(radius)
    rows, moved_shape = _to_rows(z, dim)
    num_candidates = rows.shape[-1]
    # At or beyond the vertex distance the constraint leaves only vertices: return the exact answer.
    if radius * radius >= (num_candidates - 1) / num_candidates:
        result = _one_hot_argmax_rows(rows)
    else:
        result = _sparsestmax_rows(rows, radius)
    return _from_rows(result, moved_shape, dim)


class SparsestMax(nn.Module):
    """:func:`sparsestmax` as a module with a settable ``radius``; a drop-in for ``nn.Softmax(dim=-1)``.

    A strategy anneals it with ``module.radius = radius_schedule(step, total_steps)`` or, for short,
    ``module.anneal(step, total_steps, kind="cosine")``.
    """

    def __init__(self, radius: float = 0.0, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim
        self.radius = radius

    @property
    def radius(self) -> float:
        return self._radius

    @radius.setter
    def radius(self, value: float | Tensor) -> None:
        self._radius = _check_radius(value)

    def anneal(self, step: int, total_steps: int, start: float = 0.0, end: float = 1.0,
               kind: ScheduleKind = "linear", num_stages: int = 4) -> float:
        """Set ``radius`` to :func:`radius_schedule` at ``step`` and return it."""
        self.radius = radius_schedule(step, total_steps, start=start, end=end, kind=kind, num_stages=num_stages)
        return self.radius

    def forward(self, z: Tensor) -> Tensor:
        return sparsestmax(z, self._radius, dim=self.dim)

    def extra_repr(self) -> str:
        return f"radius={self._radius:g}, dim={self.dim}"


def radius_schedule(step: int, total_steps: int, start: float = 0.0, end: float = 1.0,
                    kind: ScheduleKind = "linear", num_stages: int = 4) -> float:
    """Radius at ``step`` of a search annealed from ``start`` (step 0) to ``end`` (step ``total_steps``).

    With ``t = min(step / total_steps, 1)`` (steps past the end stay at ``end``):

    * ``"linear"``: ``start + (end - start) * t``;
    * ``"cosine"``: ``start + (end - start) * (1 - cos(pi * t)) / 2``: slow near both ends, so the
      weights stay soft for longer at the beginning and settle gently into one-hot at the end;
    * ``"step"``: ``num_stages`` equal plateaus, ``start + (end - start) * floor(t * num_stages) /
      num_stages``: the radius is held while the network adapts, then raised.

    The result is monotone in ``step`` (non-decreasing when ``end >= start``). Both ends must lie in
    ``[0, 1]``, the radius range of :func:`sparsestmax`.
    """
    if kind not in SCHEDULE_KINDS:
        raise ValueError(f"unknown radius schedule kind {kind!r}; choose one of {', '.join(SCHEDULE_KINDS)}")
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    if step < 0:
        raise ValueError(f"step must be non-negative, got {step}")
    if num_stages < 1:
        raise ValueError(f"num_stages must be at least 1, got {num_stages}")
    _check_radius(start)
    _check_radius(end)
    progress = min(step / total_steps, 1.0)
    if kind == "linear":
        fraction = progress
    elif kind == "cosine":
        fraction = (1.0 - math.cos(math.pi * progress)) / 2.0
    else:
        fraction = math.floor(progress * num_stages) / num_stages
    return start + (end - start) * fraction
