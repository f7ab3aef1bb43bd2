"""Mutation sampling: curated bugs in the scientific core, each run against the tests that should catch it.

    .venv/bin/python tools/mutants.py            # every mutation; `make mutants` runs this
    .venv/bin/python tools/mutants.py -k pad     # only mutations whose name contains "pad"
    .venv/bin/python tools/mutants.py --list     # names, files and tests, without running anything

The working tree is never modified: the repository (tracked files plus untracked, not-ignored ones, as they
are on disk now) is copied to a temporary folder once, each mutation is applied there, the named tests run
there with this interpreter and ``PYTHONPATH`` set to the copy (checked: ``resnet_core`` must import from the
copy, not from the editable install), and the file is put back before the next mutation. A mutation whose
original snippet is not found exactly once is reported as stale, never skipped: the table is then out of date.

A mutation is *caught* when its tests fail (or time out); it *survives* when they pass. Before any mutation,
the same tests run once unmutated: if they fail there, nothing below would mean anything. Exit status 0
only when every mutation was caught.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # relative to the repository root
    original: str  # must occur exactly once in the file
    mutated: str
    tests: tuple[str, ...]  # pytest node ids (or files), relative to the repository root


M = Mutation
MUTATIONS: tuple[Mutation, ...] = (
    # ------------------------------------------------------------------------------------------- blocks
    M("option-A padding all on one channel side", "resnet_core/blocks.py",
      "x = F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))",
      "x = F.pad(x, (0, 0, 0, 0, 0, extra))",
      ("tests/core/test_models.py::test_option_a_shortcut_pads_zero_channels_on_both_sides_of_the_strided_identity",)),
    M("option-A subsampling at odd positions", "resnet_core/blocks.py",
      "x = x[:, :, :: self.stride, :: self.stride]",
      "x = x[:, :, 1 :: self.stride, 1 :: self.stride]",
      ("tests/core/test_models.py::test_option_a_shortcut_pads_zero_channels_on_both_sides_of_the_strided_identity",)),
    M("residual add subtracts the shortcut (fast path)", "resnet_core/blocks.py",
      "return self.tap_sum(branch.add_(shortcut))",
      "return self.tap_sum(branch.sub_(shortcut))",
      ("tests/core/test_models.py::test_torchvision_exact",)),
    M("residual add subtracts the shortcut (hooked path)", "resnet_core/blocks.py",
      "return self.tap_sum(branch + shortcut)",
      "return self.tap_sum(branch - shortcut)",
      ("tests/core/test_blocks.py::test_fast_and_safe_paths_are_bit_identical",)),
    M("the stem's ReLU in place though a hook on its batch norm keeps the output", "resnet_core/blocks.py",
      "_hooked(relu) or any(_hooked(m) for m in watchers)",
      "_hooked(relu)",
      ("tests/core/test_blocks.py::test_the_stems_relu_is_in_place_unless_a_hook_could_see_the_batch_norm_output",)),
    M("bottleneck stride on the wrong convolution", "resnet_core/blocks.py",
      'return (width, stride, 1) if stride_on == "1x1" else (width, 1, stride)',
      'return (width, 1, stride) if stride_on == "1x1" else (width, stride, 1)',
      ("tests/core/test_describe.py::test_describe_rows_for_resnet50",)),
    # ------------------------------------------------------------------------------------------- probes
    M("negative share counts zeros too", "resnet_core/probes/activations.py",
      "count = torch.count_nonzero(flat) if post_relu else (flat < 0).sum()",
      "count = torch.count_nonzero(flat) if post_relu else (flat <= 0).sum()",
      ("tests/core/test_probes_fused.py::test_exact_zeros_are_not_negative_on_either_path",)),
    M("negative share counts zeros too (the one-pass loop)", "resnet_core/probes/fused_kernels.py",
      "count += v < 0",
      "count += v <= 0",
      ("tests/core/test_probes_fused.py::test_exact_zeros_are_not_negative_on_either_path",
       "tests/core/test_probes.py::test_negative_share_before_a_relu_does_not_count_exact_zeros")),
    M("one-pass histogram bins a value one bin short", "resnet_core/probes/fused_kernels.py",
      "pos = int((v - low) * np.float32(bins) / (high - low))",
      "pos = int((v - low) * np.float32(bins - 1) / (high - low))",
      ("tests/core/test_probes_fused.py::test_one_pass_matches_exact_statistics_and_torch_histc",)),
    M("a ReLU's -0.0 kept on the integer path", "resnet_core/probes/fused.py",
      "if post_relu and lowest < 0:  # a sign bit",
      "if post_relu and lowest < -2**31:  # a sign bit",
      ("tests/core/test_probes.py::test_zero_share_counts_negative_zeros_after_relu",)),
    M("feature maps keep the weakest channels", "resnet_core/probes/activations.py",
      "top = torch.topk(means, k)",
      "top = torch.topk(-means, k)",
      ("tests/core/test_probes.py::test_maps_keep_the_top_channels_downsampled",)),
    M("shortcut share projected on itself", "resnet_core/probes/gradients.py",
      "shortcut_share=float(torch.dot(short.reshape(-1), total.reshape(-1))) / denom,",
      "shortcut_share=float(torch.dot(short.reshape(-1), short.reshape(-1))) / denom,",
      ("tests/core/test_probes.py::test_path_split_is_exact",)),
    M("depth sweep ratio inverted", "resnet_core/probes/sweeps.py",
      '"ratio": norms[0] / norms[-1] if norms[-1]',
      '"ratio": norms[-1] / norms[0] if norms[-1]',
      ("tests/core/test_probes.py::test_depth_sweep_direction_at_depth_56",)),
    # ---------------------------------------------------------------------------------------------- cam
    M("direct Grad-CAM weights by the max gradient", "resnet_core/cam/checks.py",
      "weights = grads.mean(dim=(2, 3), keepdim=True)",
      "weights = grads.amax(dim=(2, 3), keepdim=True)",
      ("tests/core/test_cam.py::test_direct_gradcam_weights_channels_by_the_mean_gradient_as_pytorch_grad_cam_does",)),
    M("Grad-CAM without its ReLU", "resnet_core/cam/methods.py",
      "layer_maps = F.relu(torch.nan_to_num(layer_maps.float()))",
      "layer_maps = torch.nan_to_num(layer_maps.float())",
      ("tests/core/test_cam.py::test_gradcam_equals_the_direct_computation",)),
    M("Grad-CAM weights channels by the largest gradient", "resnet_core/cam/methods.py",
      "return (grads.mean(dim=(2, 3), keepdim=True) * activations).sum(dim=1)",
      "return (grads.amax(dim=(2, 3), keepdim=True) * activations).sum(dim=1)",
      ("tests/core/test_cam.py::test_gradcam_equals_captums_layer_gradcam",)),
    M("the tapped pass records a graph from the input on", "resnet_core/cam/methods.py",
      "            with torch.no_grad():\n                scores = wrapped(images)",
      "            with torch.enable_grad():\n                scores = wrapped(images)",
      ("tests/core/test_cam_methods.py::test_methods_without_gradients_run_under_no_grad",)),
    # -------------------------------------------------------------------------------------------- train
    M("work side by side leaves the process on one thread", "resnet_core/job_queue.py",
      "            if _threads_holders == 0:\n                torch.set_num_threads(_threads_before)",
      "            if _threads_holders == 0:\n                pass",
      ("tests/core/test_train.py::test_racers_train_side_by_side_on_one_thread_each_and_the_count_is_given_back",
       "tests/core/test_job_queue.py::test_side_by_side_runs_each_piece_on_one_thread_and_gives_the_count_back")),
    M("work side by side on a team of threads each", "resnet_core/job_queue.py",
      "            _threads_before = torch.get_num_threads()\n            torch.set_num_threads(1)",
      "            _threads_before = torch.get_num_threads()",
      ("tests/core/test_train.py::test_racers_train_side_by_side_on_one_thread_each_and_the_count_is_given_back",
       "tests/core/test_job_queue.py::test_side_by_side_runs_each_piece_on_one_thread_and_gives_the_count_back")),
    M("warm-up starts one step late", "resnet_core/train/config.py",
      "return base * (step + 1) / config.warmup_steps",
      "return base * step / config.warmup_steps",
      ("tests/core/test_train.py::test_learning_rate_warmup_and_schedules",)),
    M("step schedule's second drop at 90%", "resnet_core/train/config.py",
      "(progress >= 0.5) + (progress >= 0.75)",
      "(progress >= 0.5) + (progress >= 0.9)",
      ("tests/core/test_train.py::test_learning_rate_warmup_and_schedules",)),
    # ----------------------------------------------------------------------------------------- describe
    M("block table matches names without the trailing dot", "resnet_core/describe.py",
      'mine = layers[layers["module"].str.startswith(name + ".")]',
      'mine = layers[layers["module"].str.startswith(name)]',
      ("tests/core/test_describe.py::test_block_table_rows_are_each_blocks_own_counts_with_ten_or_more_blocks_per_stage",)),
    # (A cache key without the input shape was tried here: an equivalent mutant, since a block's repr already
    # differs wherever its input shape does in every registered net.)
    M("MAC count leaves out the classifier", "resnet_core/describe.py",
      "return total + _counted(model.forward_head, x, tally)[1]",
      "return total",
      ("tests/core/test_describe.py::test_describe_totals_equal_counts",)),
    M("convolution counted at its input's size (stride ignored)", "resnet_core/describe.py",
      "conv_flop_count(list(args[0].shape), list(module.weight.shape), list(output.shape))",
      "conv_flop_count(list(args[0].shape), list(module.weight.shape), list(args[0].shape))",
      ("tests/core/test_describe.py::test_the_hook_formulas_count_what_flop_counter_mode_counts_on_every_architecture",)),
    M("fc layer counted once per batch, not per image", "resnet_core/describe.py",
      "rows = args[0].numel() // module.in_features",
      "rows = 1",
      ("tests/core/test_describe.py::test_a_batch_counts_each_image_on_the_cpu_copy_and_on_meta",)),
    M("any module counted by the hooks", "resnet_core/describe.py",
      "return ours and all(",
      "return True or all(",
      ("tests/core/test_describe.py::test_a_module_of_unknown_make_is_counted_by_flop_counter_mode",)),
    # ------------------------------------------------------------------------------------- checkpoints
    M("wrapper prefix stripped one character too far", "resnet_core/weights/checkpoints/conventions.py",
      "lambda key: key[len(prefix):]",
      "lambda key: key[len(prefix) + 1:]",
      ("tests/core/test_weights.py::test_checkpoint_wrappings_all_load",)),
    # ------------------------------------------------------------------------------------------- images
    M("pixels scaled by 256", "resnet_core/images.py",
      "tensor = TF.pil_to_tensor(view).float().div(255.0)",
      "tensor = TF.pil_to_tensor(view).float().div(256.0)",
      ("tests/core/test_images.py::test_preprocess_matches_torchvision_transform",)),
    M("32-bit integer images scaled to 0..256", "resnet_core/images.py",
      "array = (np.clip(array, 0, top) * (255.0 / top)).round().astype(np.uint8)",
      "array = (np.clip(array, 0, top) * (256.0 / top)).round().astype(np.uint8)",
      ("tests/core/test_images.py::test_sixteen_bit_grayscale_is_scaled_to_eight_bits",
       "tests/core/test_images.py::test_thirty_two_bit_integer_tiff_is_scaled_by_its_range")),
    # --------------------------------------------------------------------------------------------- data
    M("Shapes normalised by multiplying with the std", "resnet_core/data.py",
      "self._norm = (self.images - self._mean_t()) / self._std_t()",
      "self._norm = (self.images - self._mean_t()) * self._std_t()",
      ("tests/core/test_data.py::test_normalized_images_and_dataset_protocol",)),
    # ------------------------------------------------------------------------------- lesion and landscape
    M("lesion feeds the raw input to a pre-activated projection", "resnet_core/lesion.py",
      "return block.downsample(source) if block.downsample is not None else source",
      "return block.downsample(x) if block.downsample is not None else source",
      ("tests/core/test_lesion.py::test_residual_lesion_keeps_the_shortcut_and_every_shape",)),
    M("a lesioned plain block outputs zeros, not its input", "resnet_core/lesion.py",
      "return x  # a plain block of equal shapes: the identity",
      "return torch.zeros_like(x)",
      ("tests/core/test_lesion.py::test_plain_blocks_become_the_identity_where_shapes_agree_and_are_not_removable_elsewhere",)),
    M("the lesion's memory estimate ignores the batch size", "resnet_core/lesion.py",
      "forward = estimate_forward(model, batch=batch, image_size=image_size, builds=False)",
      "forward = estimate_forward(model, batch=1, image_size=image_size, builds=False)",
      ("tests/core/test_lesion.py::test_the_estimate_grows_with_the_batch_and_carries_its_own_recipe",)),
    M("the landscape moves the shared model, not a private copy", "resnet_core/landscape.py",
      "self.copy = copy.deepcopy(model)",
      "self.copy = model",
      ("tests/core/test_landscape.py::test_weights_buffers_and_mode_exactly_restored_also_after_an_exception",)),
    M("directions not rescaled to the weights' filter norms", "resnet_core/landscape.py",
      "scale = (w_norm / (d_norm + FILTER_EPS))",
      "scale = (1.0 / (d_norm + FILTER_EPS))",
      ("tests/core/test_landscape.py::test_filter_normalisation_and_zero_bn_bias_directions",)),
    # ----------------------------------------------------------------------------- CAM methods and scores
    M("Grad-CAM++ alpha without the factor 2", "resnet_core/cam/methods.py",
      "alpha = g2 / (2 * g2 + ",
      "alpha = g2 / (g2 + ",
      ("tests/core/test_cam_methods.py::test_gradcampp_is_the_papers_weighting_by_hand",)),
    M("AUC counts both ends in full (not a trapezoid)", "resnet_core/cam/faithfulness.py",
      "return float((curve.sum() - (curve[0] + curve[-1]) / 2) / steps)",
      "return float(curve.sum() / steps)",
      ("tests/core/test_cam_faithfulness.py::test_deletion_and_insertion_auc_match_the_closed_form",)),
    M("average drop counts a rise as a drop", "resnet_core/cam/faithfulness.py",
      "max(0.0, plain - multiplied)",
      "max(0.0, multiplied - plain)",
      ("tests/core/test_cam_faithfulness.py::test_the_wrong_quadrant_scores_worse_on_every_metric",)),
    # --------------------------------------------------------------------------- estimates against peaks
    M("a forward's live activations counted for one image, not the batch", "resnet_core/costs.py",
      'return {"live activations": self.bytes(LIVE_FORWARD * self.profile.largest)}',
      'return {"live activations": LIVE_FORWARD * self.profile.largest * FLOAT_BYTES}',
      ("tests/core/test_budget.py::test_estimate_within_a_factor_of_two_of_the_measured_peak",)),
    M("the backward's activations left out of the estimate", "resnet_core/costs.py",
      '"activations kept for backward": self.bytes(self.profile.kept) * copies,',
      '"activations kept for backward": 0,',
      ("tests/core/test_budget.py::test_estimate_within_a_factor_of_two_of_the_measured_peak",)),
    # ------------------------------------------------------------------------ the lesson's kept measurements
    M("a kept measurement found without the nets' weights", "resnet_core/lesson/steps.py",
      "fetch_or_measure((self._weights_digest(), *key), compute)",
      "fetch_or_measure(key, compute)",
      ("tests/core/test_lesson_store.py::test_the_next_process_reads_the_numbers_instead_of_measuring",)),
    M("a process that waited measures again instead of reading", "resnet_core/lesson/store.py",
      "found = read_entry(path)  # another process may have measured it while this one waited",
      "found = None",
      ("tests/core/test_lesson_store.py::test_two_measuring_at_once_measure_once",)),
    M("one lock for the whole measurement folder", "resnet_core/lesson/store.py",
      "lock = FileLock(str(path.with_suffix(LOCK_SUFFIX)), timeout=LOCK_TIMEOUT_S)",
      'lock = FileLock(str(folder / ".measuring.lock"), timeout=LOCK_TIMEOUT_S)',
      ("tests/core/test_lesson_store.py::test_other_measurements_go_on_while_one_is_measured",)),
    M("the measurement folder keeps one entry too many", "resnet_core/lesson/store.py",
      "for old in [*entries[MAX_ENTRIES:], *stale]:",
      "for old in [*entries[MAX_ENTRIES + 1:], *stale]:",
      ("tests/core/test_lesson_store.py::test_the_folder_keeps_the_most_recently_used_entries",)),
)

def repository_files(repo: Path) -> list[str]:
    """Tracked files and untracked, not-ignored ones (work in progress imports them), as on disk now."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                         check=True, capture_output=True).stdout.decode()
    return sorted({name for name in out.split("\0") if name and (repo / name).is_file()})


def copy_repository(repo: Path, dest: Path) -> None:
    for name in repository_files(repo):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, target)


def _env(copy: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(copy), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    return env


def check_imports_the_copy(copy: Path) -> None:
    """The editable install must not win over the copy, or every mutation would survive unseen."""
    out = subprocess.run([sys.executable, "-c", "import resnet_core; print(resnet_core.__file__)"], cwd=copy,
                         env=_env(copy), check=True, capture_output=True, text=True).stdout.strip()
    if not Path(out).resolve().is_relative_to(copy.resolve()):
        raise SystemExit(f"resnet_core imports from {out}, not from the copy in {copy}: mutations would not apply.")


def run_tests(copy: Path, tests: tuple[str, ...], timeout: float) -> tuple[str, float, str]:
    """('passed' | 'failed' | 'timeout', seconds, last lines of output) for ``tests`` run in ``copy``."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:randomly", "-p", "no:cacheprovider", *tests]
    start = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=copy, env=_env(copy), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - start, ""
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
    if done.returncode in (4, 5):  # a node id not found / nothing collected
        return "no tests", time.monotonic() - start, tail
    return ("passed" if done.returncode == 0 else "failed"), time.monotonic() - start, tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="keywords", action="append", default=[],
                        help="only mutations whose name contains this (repeat for several)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per test run (a hang counts as caught)")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.keywords or any(k.lower() in m.name.lower() for k in args.keywords)]
    if args.list:
        for m in chosen:
            print(f"{m.name}\n    {m.file}\n    " + "\n    ".join(m.tests))
        return 0
    if not chosen:
        print(f"No mutation name contains any of {args.keywords}.", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        copy = Path(tmp) / "repo"
        copy_repository(REPO, copy)
        check_imports_the_copy(copy)
        print(f"Copied the working tree to {copy}; resnet_core imports from the copy.", flush=True)

        tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        outcome, seconds, tail = run_tests(copy, tests, args.timeout)
        if outcome != "passed":
            print(f"The named tests do not pass unmutated ({outcome}, {seconds:.0f} s): fix them first.\n{tail}")
            return 1
        print(f"Baseline: the {len(tests)} named tests pass unmutated ({seconds:.0f} s).\n", flush=True)

        rows: list[tuple[str, str, str, float]] = []
        width = max(len(m.name) for m in chosen)
        print(f"{'mutation':<{width}}  {'file':<28}  {'result':<8}  seconds", flush=True)
        for m in chosen:
            path = copy / m.file
            source = path.read_text() if path.is_file() else ""
            if source.count(m.original) != 1:
                result, seconds = "STALE", 0.0
            else:
                path.write_text(source.replace(m.original, m.mutated))
                try:
                    outcome, seconds, tail = run_tests(copy, m.tests, args.timeout)
                finally:
                    path.write_text(source)
                result = {"failed": "caught", "timeout": "caught"}.get(outcome, "SURVIVED")
                if outcome == "no tests":
                    result = "STALE"  # a named test no longer exists
            rows.append((m.name, m.file, result, seconds))
            print(f"{m.name:<{width}}  {m.file.removeprefix('resnet_core/'):<28}  {result:<8}  {seconds:7.1f}",
                  flush=True)

    caught = sum(r[2] == "caught" for r in rows)
    stale = [r[0] for r in rows if r[2] == "STALE"]
    survived = [r[0] for r in rows if r[2] == "SURVIVED"]
    print(f"\ncaught {caught}/{len(rows)} ({100 * caught / len(rows):.0f}%); survived {len(survived)}; "
          f"stale {len(stale)}")
    if stale:
        print("Stale (snippet not found exactly once, or a named test is gone): update tools/mutants.py: "
              + "; ".join(stale))
    if survived:
        print("Survived (no test caught the bug): " + "; ".join(survived))
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
