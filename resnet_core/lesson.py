"""The computations behind the "Why residuals work" lesson: every number the lesson shows comes from here.

Small CIFAR nets (width 8-16, 32x32 inputs) keep each step well under a second on a laptop CPU. Models are
built privately here (never a shared cached model), and hooks come off in ``finally``.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import torch
from torch import nn

from .hooks import preserved_state, taps
from .models import build, display_name, iter_blocks

# What the paper reported (He et al. 2015, Table 2: ImageNet top-1 error, %, 10-crop testing). Quoted, not
# measured here; the lesson labels it as the paper's.
PAPER_TABLE2_TOP1 = pd.DataFrame([
    {"depth": 18, "plain": 27.94, "resnet": 27.88},
    {"depth": 34, "plain": 28.54, "resnet": 25.03},
])
PAPER_CITATION = "He et al. 2015, Deep Residual Learning for Image Recognition, Table 2 (ImageNet val, 10-crop)"


def _batch(n: int, image_size: int, seed: int) -> torch.Tensor:
    """A seeded batch of standard-normal images, (n, 3, image_size, image_size)."""
    return torch.randn(n, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed))


def _block_io(model: nn.Module, block_name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The input and output of one block during an eval-mode forward pass of ``model`` on ``x``."""
    with taps(model, train=False) as tapped, torch.no_grad():
        seen_in = tapped.record(block_name, what="input")
        seen_out = tapped.record(block_name)
        model(x)
    return seen_in[block_name], seen_out[block_name]


def identity_check(
    arch: str = "resnet20", block: str = "layer2.1", *, width: int = 16, batch: int = 8, seed: int = 0
) -> pd.DataFrame:
    """Can one block be the identity? Four versions of the same block, all fed the same real input x.

    x is what ``block`` receives in the standard residual net's own forward pass on a seeded batch. The
    versions: residual or plain (``residual=False``), with the branch's last BN scale at zero
    (``zero_init_residual=True``; set by hand for the plain twin, where the option does nothing) or the
    standard init. With option A both nets built from one seed hold identical weights, so only the shortcut
    differs. Columns: variant, residual, zero_init, max_abs_diff (max |y - x|), max_abs_input (max |x|),
    relative_diff (||y - x|| / ||x||).
    """
    x_in, _ = _block_io(build(arch, seed=seed, width=width), block, _batch(batch, 32, seed))
    rows = []
    for residual in (True, False):
        for zero_init in (True, False):
            model = build(arch, seed=seed, residual=residual, width=width, zero_init_residual=zero_init)
            blk = dict(iter_blocks(model))[block]
            if zero_init and not residual:
                with torch.no_grad():  # the same zeroing the option applies to residual blocks
                    blk.last_bn().weight.zero_()
            with preserved_state(model, train=False), torch.no_grad():
                out = blk(x_in)
            rows.append({
                "variant": f"{'residual' if residual else 'plain'} block, "
                           f"{'last BN at zero' if zero_init else 'standard init'}",
                "residual": residual,
                "zero_init": zero_init,
                "max_abs_diff": float((out - x_in).abs().max()),
                "max_abs_input": float(x_in.abs().max()),
                "relative_diff": float(torch.linalg.vector_norm(out - x_in) / torch.linalg.vector_norm(x_in)),
            })
    return pd.DataFrame(rows)


def gradient_split(
    arch: str = "resnet20", *, width: int = 16, batch: int = 16, seed: int = 0, zero_init_residual: bool = False
) -> pd.DataFrame:
    """Per block, the input gradient through the shortcut vs through the branch (``probes.path_gradients``).

    A freshly built net (``seed``) in train mode on a seeded batch of normal images with random labels and the
    cross-entropy loss. One row per block; see ``probes.path_gradients`` for the columns (shortcut_norm,
    branch_norm, total_norm, shortcut_share + branch_share == 1, sum_error).
    """
    from .probes import path_gradients
    from .targets import LossTarget

    model = build(arch, seed=seed, width=width, zero_init_residual=zero_init_residual)
    x = _batch(batch, 32, seed)
    labels = torch.randint(0, model.fc.out_features, (batch,), generator=torch.Generator().manual_seed(seed + 1))
    return path_gradients(model, x, LossTarget(labels), train=True)


def depth_ratios(
    depths: tuple[int, ...] = (20, 32, 44, 56), *, width: int = 8, batch: int = 32, seed: int = 0
) -> pd.DataFrame:
    """First-block / last-block input-gradient norm ratio at initialisation, plain vs residual, per depth.

    ``probes.depth_sweep`` on the CIFAR family (train-mode BN, seeded batch, cross-entropy on random labels),
    plus ``plain_over_residual``: how many times larger the plain net's ratio is at the same depth.
    """
    from .probes import depth_sweep

    sweep = depth_sweep(depths, family="cifar", batch=batch, width=width, seed=seed)
    residual = sweep[sweep["residual"]].set_index("depth")["ratio"]
    sweep["plain_over_residual"] = [r / residual[d] for d, r in zip(sweep["depth"], sweep["ratio"], strict=True)]
    return sweep


def unrolled_paths(n_blocks: int) -> pd.DataFrame:
    """Veit et al. 2016: n residual blocks unroll into 2^n paths; a path's length (blocks whose branch it takes)
    is Binomial(n, 1/2). Columns: length, paths (C(n, k)), share (of all 2^n paths). Exact integers."""
    if not 0 <= n_blocks <= 1000:
        raise ValueError(f"n_blocks must be between 0 and 1000, got {n_blocks}.")
    total = 2**n_blocks
    rows = [{"length": k, "paths": math.comb(n_blocks, k), "share": math.comb(n_blocks, k) / total}
            for k in range(n_blocks + 1)]
    return pd.DataFrame(rows)


def path_summary(n_blocks: int) -> dict[str, Any]:
    """Headline numbers of the unrolled view: total paths, mean and std of the path length, the share of paths
    within one standard deviation of the mean, and the single longest path's share."""
    table = unrolled_paths(n_blocks)
    mean = float((table["length"] * table["share"]).sum())
    std = math.sqrt(float(((table["length"] - mean) ** 2 * table["share"]).sum()))
    near = table[(table["length"] - mean).abs() <= std]["share"].sum()
    return {"blocks": n_blocks, "paths": 2**n_blocks, "mean_length": mean, "std_length": std,
            "share_within_1std": float(near), "longest_share": float(table["share"].iloc[-1])}


def blocks_of(arch: str) -> int:
    """How many residual blocks ``arch`` has (counted on the meta device)."""
    with torch.device("meta"):
        return len(iter_blocks(build(arch)))


def label(arch: str, residual: bool = True) -> str:
    return display_name(arch, residual)
