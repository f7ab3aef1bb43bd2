"""Where a race runs: the device (CUDA, MPS, CPU), mixed precision, and torchrun's processes."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


# ------------------------------------------------------------------------------------------------ device
def pick_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" -> CUDA if available, then Apple MPS, then CPU; anything else is parsed by torch."""
    if str(device) != "auto":
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("CUDA was asked for but no CUDA GPU is available; use device 'auto' or 'cpu'.")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype on CUDA (bf16 where supported, else fp16); None elsewhere (full fp32)."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def describe_device(device: torch.device) -> str:
    """"NVIDIA H100 (CUDA, bf16 mixed precision)" or "CPU, 2 threads"."""
    if device.type == "cuda":
        dtype = amp_dtype(device)
        precision = "bf16" if dtype == torch.bfloat16 else "fp16 + grad scaler"
        return f"{torch.cuda.get_device_name(device)} (CUDA, {precision} mixed precision)"
    if device.type == "mps":
        return "Apple GPU (MPS, fp32)"
    threads = torch.get_num_threads()
    return f"CPU, {threads} thread{'' if threads == 1 else 's'}"


# ------------------------------------------------------------------------------------------------ DDP
@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info() -> DistInfo:
    """Rank and world size from torchrun's environment (single process when absent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def _init_distributed(info: DistInfo, device: torch.device) -> None:
    import torch.distributed as dist

    if info.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
