"""Grad-CAM latency on ResNet-50, one 224x224 image, CPU: ours against the `grad-cam` package and a bare pass.

Three things timed on the same model and input, interleaved (round-robin, rotating order) in one process:

* ours: ``resnet_core.cam.explain(model, x, class, "layer4.2", "gradcam")`` (Captum LayerGradCam, upsampled,
  normalised, under the model's lock with its state restored);
* pytorch-grad-cam: ``GradCAM(model, [model.layer4[-1]])(x, [ClassifierOutputTarget(class)])``;
* bare: one forward and one backward of the class logit (``model(x)[0, c].backward()``), the least any
  gradient method must do.

Prints medians and the two ratios with their targets (ours / grad-cam <= 1.0, ours / bare <= 1.2), and exits
non-zero when a target is missed. ``--rounds`` and ``--threads`` adjust the run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import resnet_core
from resnet_core import cam

TARGETS = {"grad-cam package": 1.0, "bare forward+backward": 1.2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = resnet_core.build("resnet50", seed=0).eval()
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        target = int(model(x).argmax())
    theirs_cam = GradCAM(model=model, target_layers=[model.layer4[-1]])

    def ours() -> None:
        cam.explain(model, x, target, "layer4.2", "gradcam")

    def theirs() -> None:
        theirs_cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])

    def bare() -> None:
        model.zero_grad(set_to_none=True)
        model(x)[0, target].backward()
        model.zero_grad(set_to_none=True)

    runs = {"ours (resnet_core.cam)": ours, "grad-cam package": theirs, "bare forward+backward": bare}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for fn in runs.values():  # warm-up: allocator, Captum import, oneDNN kernels
        fn()
        fn()
    names = list(runs)
    for round_index in range(args.rounds):
        order = names[round_index % 3:] + names[:round_index % 3]
        for name in order:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    theirs_cam.activations_and_grads.release()
    assert resnet_core.count_hooks(model) == 0

    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"ResNet-50, one 224x224 image, CPU, {torch.get_num_threads()} threads, {args.rounds} interleaved rounds")
    for name, value in medians.items():
        print(f"  {name:<24} median {value * 1000:8.1f} ms   (min {min(times[name]) * 1000:.1f} ms)")
    ok = True
    for baseline, limit in TARGETS.items():
        ratio = medians["ours (resnet_core.cam)"] / medians[baseline]
        verdict = "ok" if ratio <= limit else "MISSED"
        ok &= ratio <= limit
        print(f"  ours / {baseline:<22} = {ratio:.2f}   (target <= {limit}) {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
