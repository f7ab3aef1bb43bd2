"""Trust scores for five CAM methods on ResNet-18 at 224 px, against the 30 s target and a baseline run in the same
process (issue 26, point 5).

The work: ``cam.trust_scores(model, photo, ["gradcam", "gradcampp", "layercam", "xgradcam", "eigencam"],
samples=10)``: per method the map, 10 noisy copies (robustness), the six-step randomisation cascade, another class
(random logit) and the shifted input (input invariance), then the faithfulness scores of all five maps.

The baseline: the same explanations the way an evaluation toolkit runs its metrics one by one (Quantus's
``MaxSensitivity`` and ``AvgSensitivity`` each re-explain their own noisy copies, one image at a time, and the
cascade and the other metrics explain again): every explanation through ``cam.explain`` alone, robustness twice.
Where Quantus imports, its own ``MaxSensitivity`` on the same model is timed too.

Prints the seconds, ours / baseline, and ours / the 30 s target; exits non-zero when the target is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

import resnet_core
from resnet_core import cam
from resnet_core.images import Preprocessing, preprocess, sample_images

METHODS = ("gradcam", "gradcampp", "layercam", "xgradcam", "eigencam")
TARGET_SECONDS = 30.0


def _load() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def baseline(model: torch.nn.Module, x: torch.Tensor, target: int, samples: int, noise: float) -> float:
    """Every explanation the trust scores need, one ``cam.explain`` at a time, robustness twice (max and mean
    as two metrics), plus the same faithfulness call: the seconds."""
    start = time.perf_counter()
    rng = np.random.RandomState(0)
    steps = len(cam.cascade_steps(model))
    maps = {}
    for method in METHODS:
        maps[method] = cam.explain(model, x, target, None, method).heatmap
        for _ in range(2):  # MaxSensitivity, then AvgSensitivity, each with its own copies
            for _ in range(samples):
                noisy = x + torch.from_numpy(rng.uniform(-noise, noise, size=tuple(x.shape))).to(x)
                cam.explain(model, noisy, target, None, method)
        for _ in range(steps + 2):  # the cascade's steps (on copies), another class, the shifted input
            cam.explain(model, x, target, None, method)
    cam.faithfulness(model, x, maps, target, steps=10)
    return time.perf_counter() - start


def quantus_max_sensitivity(model: torch.nn.Module, x: torch.Tensor, target: int, samples: int, noise: float
                            ) -> float | None:
    try:
        import quantus
    except ImportError:
        return None

    def explain_fn(model, inputs, targets, **_):
        inputs = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
        return np.stack([cam.explain(model, inputs[i:i + 1], int(targets[i]), None, "gradcam").heatmap[None]
                         for i in range(inputs.shape[0])])

    a = explain_fn(model, x.numpy(), np.array([target]))
    start = time.perf_counter()
    quantus.MaxSensitivity(nr_samples=samples, lower_bound=noise, normalise=False, disable_warnings=True)(
        model=model, x_batch=x.numpy(), y_batch=np.array([target]), a_batch=a, explain_func=explain_fn, device="cpu")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="112 px, 3 samples: a smoke run")
    args = parser.parse_args(argv)
    size, samples = (112, 3) if args.quick else (args.size, args.samples)
    model = resnet_core.build("resnet18", seed=0).eval()
    prep = Preprocessing(resize=size, crop=size, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    x = preprocess(sample_images()["chelsea"], prep)
    with torch.no_grad():
        target = int(model(x).argmax())
    print(f"resnet18, one {size}x{size} photo, {', '.join(METHODS)}, {samples} noisy copies, CPU, "
          f"{torch.get_num_threads()} threads; load average {_load()}")
    plan = cam.trust_plan(model, x, METHODS, None, samples)
    print(f"  plan: {cam.trust_plan_sentence(plan)}")
    cam.explain(model, x, target, None, "gradcam")  # warm: allocator and kernels
    start = time.perf_counter()
    table = cam.trust_scores(model, x, METHODS, target, samples=samples)
    ours = time.perf_counter() - start
    base = baseline(model, x, target, samples, cam.trust.NOISE)
    print(f"  trust_scores: {ours:.1f} s ({len(table)} rows); baseline (one explain at a time): {base:.1f} s; "
          f"ours / baseline {ours / base:.2f}")
    quantus_time = quantus_max_sensitivity(model, x, target, samples, cam.trust.NOISE)
    if quantus_time is not None:
        print(f"  Quantus MaxSensitivity alone (Grad-CAM, {samples} copies): {quantus_time:.1f} s")
    ok = ours <= TARGET_SECONDS
    print(f"  ours / target {ours / TARGET_SECONDS:.2f} (target <= {TARGET_SECONDS:.0f} s)  "
          f"{'ok' if ok else 'MISSED'}; load average {_load()}")
    print(f"  verdict: {cam.trust_verdict(table)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
