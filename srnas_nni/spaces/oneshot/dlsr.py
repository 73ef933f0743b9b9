"""DLSR's supernet forms: the input fusions (:class:`~srnas_nni.spaces.dlsr.CellInputFusion`) under
one-shot strategies.

* ``RandomOneShot``: the input choices sample paths as
  :class:`~srnas_nni.spaces.oneshot.common.PathSamplingInputSelect`, which freezes to our plain
  ``SelectedInputs``; the refine ops take NNI's ``PathSamplingLayer``, and one ``resample`` picks one
  op per label, so every cell runs the same ops.
* ``DARTS`` / ``GumbelDARTS``: NNI's ``DifferentiableMixedLayer`` mixes the refine ops (one alpha per
  label, shared by all cells as in DLSR's single ``alphas[3, 9]``), and each fusion becomes
  :class:`DifferentiableCellInputFusion`, DLSR's own relaxation: every earlier output scaled by its
  softmax weight, all concatenated, one 1x1 of width ``(k - 1) * channels``; export keeps the top 2.

Not supported: ``Proxyless`` (NNI has no proxyless form of a concatenating multi-input choice) and
``ENAS`` (NNI's ENAS refuses multi-input choices outright).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...nni_adapter.oneshot import BaseSuperNetModule
from ..base import InputSelect, SelectedInputs
from ..dlsr import CellInputFusion
from .common import PathSamplingInputSelect  # noqa: F401  (this space's form of its InputSelect, see SUPERNET_FORMS)

from nni.mutable import CategoricalMultiple  # noqa: E402

__all__ = ["DifferentiableCellInputFusion"]


class DifferentiableCellInputFusion(BaseSuperNetModule):
    """DLSR's relaxed network level: ``LReLU(1x1(concat_j softmax(beta)_j * out_j))`` over all ``k - 1``
    earlier outputs, with a ``(k - 1) * channels``-wide 1x1 (the official ``RFDN_beta1``).

    ``export`` keeps the ``n_chosen`` largest weights (largest first, DLSR's genotype order);
    ``freeze`` gives the plain :class:`CellInputFusion` whose 1x1 holds the chosen inputs' columns of
    the wide 1x1, each scaled by its softmax weight (what those inputs contributed in the supernet).
    """

    _arch_parameter_names: list[str] = ["_arch_alpha"]

    def __init__(self, choice: CategoricalMultiple, channels: int, alpha: nn.Parameter, softmax: nn.Module,
                 negative_slope: float = 0.05):
        super().__init__()
        self.choice = self.add_mutable(choice)
        self.n_candidates = len(choice.values)
        self.n_chosen = int(choice.n_chosen)
        self.channels = channels
        self._arch_alpha = alpha
        self._softmax = softmax
        self.fuse = nn.Conv2d(self.n_candidates * channels, channels, 1)
        self.negative_slope = negative_slope

    @property
    def label(self) -> str:
        return self.choice.label

    @classmethod
    def mutate(cls, module, name, memo, mutate_kwargs):
        if type(module) is CellInputFusion and isinstance(module.select, InputSelect):
            label = module.select.label
            if label not in memo:
                raise KeyError(f"input choice {label} has no architecture parameter in the memo")
            softmax = mutate_kwargs.get("softmax", nn.Softmax(-1))
            return cls(module.select.choice, module.fuse.out_channels, memo[label], softmax, module.negative_slope)
        return None

    def forward(self, earlier: list[torch.Tensor]) -> torch.Tensor:
        if len(earlier) != self.n_candidates:
            raise ValueError(f"{self.label}: expected {self.n_candidates} inputs, got {len(earlier)}")
        weights = self._softmax(self._arch_alpha)
        mixed = torch.cat([w * x for w, x in zip(weights, earlier)], dim=1)
        return F.leaky_relu(self.fuse(mixed), self.negative_slope)

    def _top(self) -> list[int]:
        return torch.argsort(self._arch_alpha.detach(), descending=True)[: self.n_chosen].tolist()

    def resample(self, memo: dict[str, Any]) -> dict[str, Any]:
        return {}  # differentiable: nothing to sample

    def export(self, memo: dict[str, Any]) -> dict[str, Any]:
        return {} if self.label in memo else {self.label: self._top()}

    def export_probs(self, memo: dict[str, Any]) -> dict[str, Any]:
        if self.label in memo:
            return {}
        return {self.label: dict(enumerate(self._softmax(self._arch_alpha).detach().cpu().tolist()))}

    def arch_parameters(self):
        for name, parameter in self.named_parameters():
            if name in self._arch_parameter_names:
                yield parameter

    def freeze(self, sample: dict) -> nn.Module:
        self.validate(sample)
        chosen = [int(i) for i in self.choice.freeze(sample)]
        weights = self._softmax(self._arch_alpha).detach()
        c = self.channels
        fuse = nn.Conv2d(len(chosen) * c, c, 1)
        with torch.no_grad():
            blocks = [self.fuse.weight[:, i * c:(i + 1) * c] * weights[i] for i in chosen]
            fuse.weight.copy_(torch.cat(blocks, dim=1))
            fuse.bias.copy_(self.fuse.bias)
        return CellInputFusion(SelectedInputs(chosen, "concat"), fuse, self.negative_slope)
