"""The options of ``hierarchical_rl``, declared once, and the papers' settings that ``preset:`` selects.

:class:`HierarchicalRLOptions` has one field per option the YAML accepts; the registry reads its field
names, the strategy builds it once from its keyword arguments and hands it whole to the controller,
the learner, the rewards and (parameter sharing) the Lightning module.

``preset:`` names one of :data:`PAPER_SETTINGS`, a paper's controller, optimiser, REINFORCE and reward
settings; an option left out takes the paper's value, an explicit one wins:

* ``hnas`` (default; PAPERS.md 1.3): hidden 100, one LSTM layer, uniform(-0.1, 0.1), Adam lr 3e-4,
  betas (0.5, 0.999), weight decay 5e-4, baseline decay 0.95, entropy 0.1 in the loss, position
  weight 10, reward ``hnas``;
* ``deconas`` (PAPERS.md 5.3): two LSTM layers of 64, ``tanh_constant`` 1.1 / ``op_tanh_reduce`` 2.5,
  baseline EMA 0.99 of the PSNR, entropy 1e-4 added to the reward, Adam lr 3e-4 with no weight decay,
  reward ``deconas`` with ``lambda_cb`` 2.

Each mode has options of its own (:data:`MULTI_TRIAL_DEFAULTS`, :data:`ONE_SHOT_DEFAULTS`); giving
one to the other mode is an error. Every check raises :class:`~srnas_nni.errors.SRNASError` with a
one-line message.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ...errors import SRNASError

__all__ = ["PAPER_SETTINGS", "MULTI_TRIAL_DEFAULTS", "ONE_SHOT_DEFAULTS", "HierarchicalRLOptions"]

#: The controller settings "as the paper", by the name the YAML key ``preset`` gives.
PAPER_SETTINGS: dict[str, dict[str, Any]] = {
    "hnas": dict(hidden_size=100, num_layers=1, init_range=0.1, temperature=None, tanh_constant=None,
                 op_tanh_reduce=2.5, learning_rate=3e-4, betas=(0.5, 0.999), weight_decay=5e-4,
                 baseline_decay=0.95, baseline_target="reward", entropy_weight=0.1, entropy_in_reward=False,
                 network_level_weight=10.0, reward="hnas", reward_lambda=0.5, cost_scale=0.5e-8, cost_lr_size=48,
                 lambda_cb=2.0, complexity_metric="params"),
    "deconas": dict(hidden_size=64, num_layers=2, init_range=0.1, temperature=None, tanh_constant=1.1,
                    op_tanh_reduce=2.5, learning_rate=3e-4, betas=(0.9, 0.999), weight_decay=0.0,
                    baseline_decay=0.99, baseline_target="psnr", entropy_weight=1e-4, entropy_in_reward=True,
                    network_level_weight=1.0, reward="deconas", reward_lambda=0.5, cost_scale=0.5e-8,
                    cost_lr_size=48, lambda_cb=2.0, complexity_metric="params"),
}

#: Options of the multi-trial mode only.
MULTI_TRIAL_DEFAULTS: dict[str, Any] = dict(dedup=True, max_duplicates=200)
#: Options of parameter sharing only: weight steps between controller phases, controller steps per phase
#: (HNAS alternates one supernet epoch and one controller epoch), first weight step that trains the
#: controller, derivation.
ONE_SHOT_DEFAULTS: dict[str, Any] = dict(controller_every=20, controller_steps=30, controller_start=0,
                                         derive_samples=10, derive_metric="psnr")

_INTEGERS = ("hidden_size", "num_layers", "controller_batch", "cost_lr_size", "max_duplicates", "controller_every",
             "controller_steps", "controller_start", "derive_samples")


class _LeftOut:
    """The default of an option whose value depends on ``preset`` or on the mode."""

    def __repr__(self) -> str:
        return "<left out>"


_LEFT_OUT: Any = _LeftOut()


@dataclass
class HierarchicalRLOptions:
    """Every option of ``hierarchical_rl``; ``<left out>`` ones are filled from ``preset`` or the mode.

    After construction every option holds its value; the other mode's options hold ``None``.
    """

    preset: str = "hnas"  # a key of PAPER_SETTINGS
    parameter_sharing: bool = False
    # PAPER_SETTINGS[preset] when left out. The controller:
    hidden_size: int = _LEFT_OUT
    num_layers: int = _LEFT_OUT
    init_range: float = _LEFT_OUT
    temperature: float | None = _LEFT_OUT
    tanh_constant: float | None = _LEFT_OUT
    op_tanh_reduce: float = _LEFT_OUT
    # its optimiser (Adam):
    learning_rate: float = _LEFT_OUT
    betas: tuple[float, float] = _LEFT_OUT
    weight_decay: float = _LEFT_OUT
    # REINFORCE:
    baseline_decay: float = _LEFT_OUT
    baseline_target: str = _LEFT_OUT  # reward | psnr
    entropy_weight: float = _LEFT_OUT
    entropy_in_reward: bool = _LEFT_OUT
    network_level_weight: float = _LEFT_OUT
    # the reward:
    reward: str = _LEFT_OUT  # hnas | deconas
    reward_lambda: float = _LEFT_OUT
    cost_scale: float = _LEFT_OUT
    cost_lr_size: int = _LEFT_OUT
    lambda_cb: float = _LEFT_OUT
    complexity_metric: str = _LEFT_OUT  # params | multadds
    # Both modes:
    controller_batch: int = 1  # rewards per controller update
    grad_clip: float | None = None
    failure_psnr: float = 0.0  # the PSNR a failed trial is rewarded as
    seed: int | None = None  # None: fresh entropy
    # MULTI_TRIAL_DEFAULTS when left out:
    dedup: bool = _LEFT_OUT
    max_duplicates: int = _LEFT_OUT
    # ONE_SHOT_DEFAULTS when left out (derive_metric: psnr as HNAS, or reward):
    controller_every: int = _LEFT_OUT
    controller_steps: int = _LEFT_OUT
    controller_start: int = _LEFT_OUT
    derive_samples: int = _LEFT_OUT
    derive_metric: str = _LEFT_OUT

    def __post_init__(self) -> None:
        if not isinstance(self.parameter_sharing, bool):
            raise SRNASError(f"hierarchical_rl: parameter_sharing = {self.parameter_sharing!r} must be true or false")
        if self.preset not in PAPER_SETTINGS:
            raise SRNASError(f"hierarchical_rl: preset = {self.preset!r}; choose one of {sorted(PAPER_SETTINGS)}")
        own, other = ((ONE_SHOT_DEFAULTS, MULTI_TRIAL_DEFAULTS) if self.parameter_sharing
                      else (MULTI_TRIAL_DEFAULTS, ONE_SHOT_DEFAULTS))
        misplaced = sorted(name for name in other if getattr(self, name) is not _LEFT_OUT)
        if misplaced:
            raise SRNASError(f"hierarchical_rl: option(s) {misplaced} do not apply here; "
                             f"options: {sorted(self._mode_options(own))}")
        for name, value in {**PAPER_SETTINGS[self.preset], **own}.items():
            if getattr(self, name) is _LEFT_OUT:
                setattr(self, name, value)
        for name in other:
            setattr(self, name, None)
        self._check()
        for name in _INTEGERS:
            if getattr(self, name) is not None:
                setattr(self, name, int(getattr(self, name)))

    def _mode_options(self, own: dict[str, Any]) -> list[str]:
        """The options a mode takes besides ``preset`` and ``parameter_sharing``: the shared ones and ``own``."""
        not_shared = {"preset", "parameter_sharing", *MULTI_TRIAL_DEFAULTS, *ONE_SHOT_DEFAULTS}
        return [field.name for field in dataclasses.fields(self) if field.name not in not_shared] + list(own)

    def _check_number(self, name: str, integer: bool = False, allow_zero: bool = False) -> None:
        value = getattr(self, name)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = number and (value >= 0 if allow_zero else value > 0)
        if integer:
            ok = ok and float(value).is_integer()
        if not ok:
            kind = ("non-negative " if allow_zero else "positive ") + ("integer" if integer else "number")
            raise SRNASError(f"hierarchical_rl: {name} = {value!r} must be a {kind}")

    def _check(self) -> None:
        for name in ("hidden_size", "num_layers", "controller_batch", "cost_lr_size"):
            self._check_number(name, integer=True)
        for name in ("learning_rate", "init_range", "op_tanh_reduce"):
            self._check_number(name)
        for name in ("weight_decay", "entropy_weight", "network_level_weight", "cost_scale", "lambda_cb"):
            self._check_number(name, allow_zero=True)
        for name in ("temperature", "tanh_constant", "grad_clip"):
            if getattr(self, name) is not None:
                self._check_number(name)
        if not 0.0 <= float(self.baseline_decay) < 1.0:
            raise SRNASError(f"hierarchical_rl: baseline_decay = {self.baseline_decay!r} must lie in [0, 1)")
        if self.baseline_target not in ("reward", "psnr"):
            raise SRNASError(f"hierarchical_rl: baseline_target = {self.baseline_target!r}; choose reward or psnr")
        betas = self.betas
        if not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(0 <= float(b) < 1 for b in betas)):
            raise SRNASError(f"hierarchical_rl: betas = {betas!r} must be two numbers in [0, 1)")
        self.betas = (float(betas[0]), float(betas[1]))
        if self.reward not in ("hnas", "deconas"):
            raise SRNASError(f"hierarchical_rl: reward = {self.reward!r}; choose hnas or deconas")
        if self.seed is not None and not isinstance(self.seed, int):
            raise SRNASError(f"hierarchical_rl: seed = {self.seed!r} must be an integer")
        if self.parameter_sharing:
            for name in ("controller_every", "controller_steps", "derive_samples"):
                self._check_number(name, integer=True)
            self._check_number("controller_start", integer=True, allow_zero=True)
            if self.derive_metric not in ("psnr", "reward"):
                raise SRNASError(f"hierarchical_rl: derive_metric = {self.derive_metric!r}; choose psnr or reward")
        else:
            self._check_number("max_duplicates", integer=True)
