"""The training engine: races of several nets trained in lockstep on identical batches, on any device.

One engine serves the app (through :mod:`resnet_core.runs`), the notebook and the ``resnet-train`` CLI.

* Device ``"auto"`` picks CUDA, then MPS, then CPU. On CUDA the engine uses automatic mixed precision (bf16
  where the GPU supports it, else fp16 with a gradient scaler), channels-last tensors and pinned,
  non-blocking host-to-device copies.
* SGD with momentum 0.9 and weight decay 1e-4 (He et al. 2015, section 4.2), a linear learning-rate warm-up,
  then a step (x0.1 at 50% and 75% of the steps, the paper's 32k/48k of 64k) or cosine schedule.
* A race trains every racer on the same batch at every step (one sampler, one batch tensor), so curves
  compare step by step. Per step and racer: loss, accuracy, learning rate, images/s and the gradient norm
  of each stage, all computed on the device and copied to the host in one transfer per step.
  Held-out accuracy every ``eval_every`` steps.
* A non-finite loss stops that racer with status "diverged" and a message; the others go on. With fp16 and a
  gradient scaler, non-finite gradients are normal now and then (the scaler skips that step and lowers its
  scale); only :data:`MAX_SKIPPED_STEPS` skipped steps in a row count as divergence (see :func:`step_action`).
* Under ``torchrun --nproc_per_node N`` each racer is wrapped in DistributedDataParallel (gloo on CPU, NCCL on
  CUDA), batches come from a DistributedSampler, metrics are averaged over ranks and only rank 0 writes.
"""

from __future__ import annotations

from .config import (
    DEGRADATION_MARGIN,
    FINAL_WINDOW,
    PRESET_NOTES,
    PRESETS,
    SCHEDULES,
    RaceConfig,
    RacerSpec,
    degradation_note,
    lr_at,
)
from .devices import amp_dtype, describe_device, dist_info, pick_device
from .engine import MAX_SKIPPED_STEPS, Race, stage_groups, step_action, summarize

__all__ = [
    "DEGRADATION_MARGIN", "FINAL_WINDOW", "MAX_SKIPPED_STEPS", "PRESETS", "PRESET_NOTES", "SCHEDULES", "Race", "RaceConfig",
    "RacerSpec", "amp_dtype", "degradation_note", "describe_device", "dist_info", "lr_at", "pick_device",
    "stage_groups", "step_action", "summarize",
]
