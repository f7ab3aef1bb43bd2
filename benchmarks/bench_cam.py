"""Every CAM method against the `grad-cam` package (pytorch-grad-cam), same model and input, one process, CPU.

For each method the package has (Grad-CAM, Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM, Eigen-CAM, Score-CAM):

* ours: ``resnet_core.cam.explain(model, x, class, layer, method)`` (the tapped layer pass or Captum, upsampled,
  normalised, under the model's lock with its state restored);
* the package: ``Method(model, [layer])(x, [ClassifierOutputTarget(class)])``;
* for the gradient methods also a bare forward and backward of the class logit (``model(x)[0, c].backward()``),
  the least any gradient method must do.

Timed interleaved (round-robin, rotating order) after a warm-up. Gradient methods and Eigen-CAM run on ResNet-50
at 224 px, layer4.2 (``--rounds``); Score-CAM on ResNet-18 at ``--scorecam-size`` px, layer4.1 (512 channels),
both sides at the same batch size (``--scorecam-batch``, ``--scorecam-rounds``). Prints medians, the Pearson
correlation of the two maps, and the ratios with their targets (ours / package <= 1.0 each; gradient methods
<= 1.2 x the bare pass), and exits non-zero when a target is missed. ``--quick`` shrinks everything for a smoke
run (ResNet-18 at 112 px).

Measured here (2 cores shared with other jobs, load average 7-14, so medians are noisy; default arguments):
ResNet-50 at 224, layer4.2, ours / package: Grad-CAM 0.28, Grad-CAM++ 0.25, XGrad-CAM 0.35, HiResCAM 0.43,
LayerCAM 0.31, Eigen-CAM 0.38; ours / bare forward+backward 0.25-0.41 (our backward stops at the layer and
computes no parameter gradients; the bare pass does both). Score-CAM (ResNet-18, layer4.1, batch 32): 1.05 at
112 px in that run, 0.87 at 96 px (5 rounds) and 0.96 at 64 px (quarter width, 12 rounds) in quieter ones: at
parity, since both run the same 512 masked forward passes. Pearson correlation with the package: 1.0000 for
every method (Eigen-CAM's sign happened to agree on this input; see cam.methods.EigenCam).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

import resnet_core
from resnet_core import cam

GRADIENT_METHODS = ("gradcam", "gradcampp", "xgradcam", "hirescam", "layercam")
TARGET_PACKAGE, TARGET_BARE = 1.0, 1.2


def _reference(method: str):
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM

    return {"gradcam": GradCAM, "gradcampp": GradCAMPlusPlus, "xgradcam": XGradCAM, "hirescam": HiResCAM,
            "layercam": LayerCAM, "eigencam": EigenCAM, "scorecam": ScoreCAM}[method]


def _interleaved(runs: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for fn in runs.values():  # warm-up: allocator, imports, oneDNN kernels
        fn()
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return times


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 1.0 if a.max() == b.max() == 0 else float("nan")
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def bench(model: torch.nn.Module, x: torch.Tensor, layer: str, methods: list[str], rounds: int,
          batch: int | None = None) -> list[dict[str, object]]:
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    with torch.no_grad():
        target = int(model(x).argmax())
    module = model.get_submodule(layer)
    rows = []
    for method in methods:
        ref = _reference(method)(model=model, target_layers=[module])
        if batch is not None:
            ref.batch_size = batch
        options = {"batch_size": batch} if batch is not None else {}

        def ours(method: str = method, options: dict = options) -> np.ndarray:
            return cam.explain(model, x, target, layer, method, **options).heatmap

        def theirs(ref=ref) -> np.ndarray:
            return ref(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]

        runs: dict[str, Callable[[], object]] = {"ours": ours, "package": theirs}
        if method in GRADIENT_METHODS:
            def bare() -> None:
                model.zero_grad(set_to_none=True)
                model(x)[0, target].backward()
                model.zero_grad(set_to_none=True)

            runs["bare"] = bare
        times = _interleaved(runs, rounds)
        corr = _pearson(ours(), theirs())
        ref.activations_and_grads.release()
        model.zero_grad(set_to_none=True)
        assert resnet_core.count_hooks(model) == 0
        medians = {name: statistics.median(values) for name, values in times.items()}
        rows.append({"method": method, "corr": corr, **medians})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--scorecam-rounds", type=int, default=3)
    parser.add_argument("--scorecam-size", type=int, default=112)
    parser.add_argument("--scorecam-batch", type=int, default=32)
    parser.add_argument("--methods", default="gradcam,gradcampp,xgradcam,hirescam,layercam,eigencam,scorecam")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    parser.add_argument("--quick", action="store_true", help="ResNet-18 at 112 px, 64-px Score-CAM, 3 rounds")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    arch, size, layer = ("resnet18", 112, "layer4.1") if args.quick else ("resnet50", 224, "layer4.2")
    rounds = 3 if args.quick else args.rounds
    score_size = 64 if args.quick else args.scorecam_size
    generator = torch.Generator().manual_seed(0)

    rows = []
    main_methods = [m for m in methods if m != "scorecam"]
    if main_methods:
        model = resnet_core.build(arch, seed=0).eval()
        x = torch.randn(1, 3, size, size, generator=generator)
        print(f"{arch}, one {size}x{size} image, {layer}, CPU, {torch.get_num_threads()} threads, {rounds} rounds")
        rows += bench(model, x, layer, main_methods, rounds)
    if "scorecam" in methods:
        model = resnet_core.build("resnet18", seed=0).eval()
        x = torch.randn(1, 3, score_size, score_size, generator=generator)
        print(f"Score-CAM: resnet18, one {score_size}x{score_size} image, layer4.1 (512 channels), batch "
              f"{args.scorecam_batch} on both sides, {args.scorecam_rounds if not args.quick else 1} rounds")
        rows += bench(model, x, "layer4.1", ["scorecam"], args.scorecam_rounds if not args.quick else 1,
                      batch=args.scorecam_batch)

    ok = True
    print(f"  {'method':<10} {'ours ms':>9} {'package ms':>11} {'ours/package':>13} {'ours/bare':>10} {'Pearson':>8}")
    for row in rows:
        ratio = row["ours"] / row["package"]
        bare = row["ours"] / row["bare"] if "bare" in row else None
        good = ratio <= TARGET_PACKAGE and (bare is None or bare <= TARGET_BARE) and row["corr"] >= 0.99
        ok &= good
        bare_words = f"{bare:10.2f}" if bare is not None else f"{'-':>10}"
        print(f"  {row['method']:<10} {row['ours'] * 1000:9.1f} {row['package'] * 1000:11.1f} {ratio:13.2f} "
              f"{bare_words} {row['corr']:8.4f}  {'ok' if good else 'MISSED'}")
    print(f"  targets: ours/package <= {TARGET_PACKAGE}, ours/bare <= {TARGET_BARE} (gradient methods), "
          "Pearson >= 0.99")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
