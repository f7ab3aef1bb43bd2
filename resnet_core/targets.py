"""What to explain or differentiate: small callables from logits to one scalar per sample.

Kept apart from the methods (pytorch-grad-cam's idea): probes and Grad-CAM take the same targets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ClassTarget:
    """The logit of one class index for every sample."""

    index: int

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if not 0 <= self.index < logits.shape[1]:
            raise ValueError(f"Class index {self.index} is outside this model's {logits.shape[1]} classes.")
        return logits[:, self.index]

    def class_indices(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.full((logits.shape[0],), self.index, dtype=torch.long, device=logits.device)


@dataclass(frozen=True)
class TopClassTarget:
    """The logit of each sample's own top-1 class."""

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.gather(1, self.class_indices(logits)[:, None])[:, 0]

    def class_indices(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.detach().argmax(dim=1)


@dataclass(frozen=True)
class LossTarget:
    """Cross-entropy against given labels (per sample), the quantity training differentiates."""

    labels: torch.Tensor

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, self.labels.to(logits.device), reduction="none")

    def class_indices(self, logits: torch.Tensor) -> torch.Tensor:
        return self.labels.to(logits.device)


Target = ClassTarget | TopClassTarget | LossTarget


def as_target(target: int | Target | None) -> Target:
    """An int is a class index; None means each sample's top-1 class."""
    if target is None:
        return TopClassTarget()
    if isinstance(target, int):
        return ClassTarget(target)
    if callable(target):
        return target
    raise TypeError(f"A target is a class index, None (top-1) or a callable on logits, got {type(target).__name__}.")


def scalar_objective(target: Target, logits: torch.Tensor) -> torch.Tensor:
    """Sum of the per-sample target values: one scalar to differentiate (samples stay independent)."""
    return target(logits).sum()
