"""The engine: racers trained in lockstep on identical batches; it reports through callbacks and
writes nothing (run folders are ``runs``'s)."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DistributedSampler

from ..costs import estimate_race, require_within_budget
from ..data import ImageData, ShapesSet, load_splits
from ..job_queue import one_thread_each
from ..models import build, conv_layout, count_params, stage_of
from ..weights.checkpoints.format import make_checkpoint
from .config import (
    FINAL_WINDOW,
    RaceConfig,
    RacerSpec,
    lr_at,
)
from .devices import (
    _init_distributed,
    amp_dtype,
    dist_info,
    pick_device,
)

# ------------------------------------------------------------------------------------------------ engine
# With a gradient scaler (fp16), this many skipped steps in a row (non-finite gradients although the loss is
# finite) mark the racer "diverged": the scaler halves its scale at each skip, so by then it is not overflow.
MAX_SKIPPED_STEPS = 20


def step_action(loss_finite: bool, grads_finite: bool, scaled: bool, skipped: int) -> tuple[str, int]:
    """What to do with one racer after its backward pass: ``("step" | "diverge", consecutive skipped steps)``.

    * A non-finite loss: "diverge".
    * No gradient scaler (fp32, bf16): "step" if the gradients are finite, else "diverge".
    * With a scaler (fp16) and a finite loss: always "step" (``scaler.step`` skips the update by itself when
      a gradient is inf/nan, and ``scaler.update`` lowers the scale: normal in the first steps). Each such
      step adds one to ``skipped`` (a finite one resets it); ``MAX_SKIPPED_STEPS`` in a row: "diverge".
    """
    if not loss_finite:
        return "diverge", skipped
    if not scaled:
        return ("step", 0) if grads_finite else ("diverge", skipped)
    skipped = 0 if grads_finite else skipped + 1
    return ("diverge" if skipped >= MAX_SKIPPED_STEPS else "step"), skipped


def stage_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Parameters by stage: "stem" (first conv/BN), "layer1".."layerN", "head" (final BN, fc)."""
    groups: dict[str, list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        groups.setdefault(stage_of(name), []).append(param)
    order = ["stem", *sorted(k for k in groups if k.startswith("layer")), "head"]
    return {k: groups[k] for k in order if k in groups}


@dataclass
class Racer:
    """One model in a race, with its optimizer and status."""

    spec: RacerSpec
    model: nn.Module  # the bare model (checkpoints, evaluation)
    train_model: nn.Module  # the model as trained: DDP-wrapped under torchrun, else the same object
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    groups: dict[str, list[nn.Parameter]]
    options: dict[str, Any]
    status: str = "running"
    message: str = ""
    params: int = 0
    seconds: float = 0.0
    skipped: int = 0  # consecutive steps the gradient scaler skipped (non-finite fp16 gradients)

    @property
    def label(self) -> str:
        return self.spec.label


class Race:
    """Several nets trained in lockstep on identical batches.

    ``step()`` trains every running racer on the next batch (on a CPU with several threads, side by side: one
    worker thread per racer, see :meth:`_racer_pool`; :meth:`close` ends them) and returns one metrics row per racer;
    ``evaluate()`` measures held-out accuracy; ``train()`` runs to the end. Rows accumulate in
    ``rows``/``eval_rows`` (see :meth:`history`, :meth:`evals`, :meth:`summary`).
    """

    def __init__(self, config: RaceConfig, train_data: ShapesSet | ImageData | None = None,
                 test_data: ShapesSet | ImageData | None = None) -> None:
        require_within_budget(estimate_race(config))  # BudgetError before any data or net is made
        self.config = config
        self.dist = dist_info()
        self.device = pick_device(config.device)
        if self.device.type == "cuda" and self.dist.enabled:
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        _init_distributed(self.dist, self.device)
        self.amp = amp_dtype(self.device)
        self.channels_last = self.device.type in ("cpu", "cuda")  # models.conv_layout; MPS keeps the default
        if train_data is None or test_data is None:
            train_data, test_data = load_splits(config.dataset, config.image_size, config.n_train, config.n_test,
                                                seed=config.seed)
        self.train_data, self.test_data = train_data, test_data
        self.classes = tuple(train_data.classes)
        n = len(train_data)
        self.local_batch = config.batch_size // self.dist.world_size
        if self.local_batch < 2 or n < config.batch_size:
            raise ValueError(f"The batch size {config.batch_size} needs at least that many training images "
                             f"({n} here) and 2 per process.")
        # Data on the host for the sampler's gathers; pinned on CUDA so the copies can be non-blocking.
        images = train_data.images
        self._pin = self.device.type == "cuda"
        self._train_images = images
        self._mean = torch.tensor(train_data.mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self._std = torch.tensor(train_data.std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        # DistributedSampler with one replica is a seeded shuffle: the same code path with or without torchrun.
        self.sampler = DistributedSampler(range(n), num_replicas=self.dist.world_size, rank=self.dist.rank,
                                          shuffle=True, seed=config.seed, drop_last=True)
        self._epoch = 0
        self._order: list[int] = []
        self._cursor = 0
        self.racers = [self._make_racer(spec) for spec in config.racers]
        self.step_index = 0
        self.rows: list[dict[str, Any]] = []
        self.eval_rows: list[dict[str, Any]] = []
        self.started = time.perf_counter()
        self.wall = 0.0
        self.last_batch_indices: torch.Tensor | None = None
        self._pool: ThreadPoolExecutor | None = None  # racers stepped side by side on the CPU (_racer_pool)

    # -- setup
    def _make_racer(self, spec: RacerSpec) -> Racer:
        options = spec.build_options(self.config.width, len(self.classes))
        model = build(spec.arch, seed=self.config.seed, **options).to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        train_model: nn.Module = model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            train_model = DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        optimizer = self._optimizer(model, scaled=self.amp == torch.float16)
        scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        return Racer(spec, model, train_model, optimizer, scaler, stage_groups(model), options,
                     params=count_params(model))

    def _optimizer(self, model: nn.Module, *, scaled: bool) -> torch.optim.SGD:
        """The paper's optimiser (section 4.2): SGD, momentum 0.9, weight decay 1e-4 on every parameter.

        One fused kernel for the whole update where torch has one (CPU, CUDA): a 56-layer net's ~170 tensors are
        otherwise updated one by one (measured on the CPU: 3.1 -> 1.0 ms a step). Not beside fp16's gradient
        scaler (``scaled``), which unscales the gradients itself before the step."""
        fused = self.device.type in ("cpu", "cuda") and not scaled
        return torch.optim.SGD(model.parameters(), lr=lr_at(0, self.config), momentum=self.config.momentum,
                               weight_decay=self.config.weight_decay, fused=fused)

    # -- data
    def _next_indices(self) -> torch.Tensor:
        if self._cursor + self.local_batch > len(self._order):
            self.sampler.set_epoch(self._epoch)
            self._order = list(iter(self.sampler))
            self._epoch += 1
            self._cursor = 0
        idx = torch.tensor(self._order[self._cursor:self._cursor + self.local_batch], dtype=torch.int64)
        self._cursor += self.local_batch
        return idx

    def _to_input(self, images: torch.Tensor) -> torch.Tensor:
        """Host images (B, C, H, W) uint8 or float in [0, 1] -> normalised float32 on the device."""
        if self._pin:
            images = images.pin_memory()
        x = images.to(self.device, non_blocking=self._pin)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        x = (x - self._mean) / self._std
        if self.channels_last:
            x = conv_layout(x)
        return x

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next (inputs, labels) on the device; every racer trains on this same pair."""
        idx = self._next_indices()
        self.last_batch_indices = idx
        x = self._to_input(self._train_images[idx])
        y = self.train_data.labels[idx]
        y = (y.pin_memory() if self._pin else y).to(self.device, non_blocking=self._pin)
        return x, y

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp)

    # -- training
    @property
    def done(self) -> bool:
        return self.step_index >= self.config.steps or not any(r.status == "running" for r in self.racers)

    def _train_one(self, racer: Racer, x: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
        """Forward and backward for one racer; returns [loss, correct, norm per stage...] on the device."""
        for group in racer.optimizer.param_groups:
            group["lr"] = lr
        if not racer.train_model.training:  # after an evaluation; a walk of every module otherwise (1 ms)
            racer.train_model.train()
        racer.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            logits = racer.train_model(x)
            loss = F.cross_entropy(logits.float(), y)
        if racer.scaler is not None:
            racer.scaler.scale(loss).backward()
            racer.scaler.unscale_(racer.optimizer)  # norms and the finiteness check see true gradients
        else:
            loss.backward()
        correct = (logits.detach().argmax(1) == y).sum().to(torch.float32)
        norms = []
        for params in racer.groups.values():
            grads = [p.grad for p in params if p.grad is not None]
            if grads:
                norms.append(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))
            else:
                norms.append(torch.zeros((), device=self.device))
        return torch.stack([loss.detach().float(), correct, *(n.float() for n in norms)])

    def _timed_train(self, racer: Racer, x: torch.Tensor, y: torch.Tensor, lr: float) -> tuple[torch.Tensor, float]:
        t = time.perf_counter()
        stat = self._train_one(racer, x, y, lr)
        return stat, time.perf_counter() - t

    @staticmethod
    def _update(racer: Racer) -> float:
        """The optimizer step of one racer; returns its seconds."""
        t = time.perf_counter()
        if racer.scaler is not None:
            racer.scaler.step(racer.optimizer)  # skips the update itself when a gradient is inf/nan
            racer.scaler.update()  # and lowers the loss scale
        else:
            racer.optimizer.step()
        return time.perf_counter() - t

    def _racer_pool(self, racers: int) -> ThreadPoolExecutor | None:
        """On a CPU with several threads, worker threads that train the racers side by side, each on one thread
        (:meth:`_side_by_side`).

        The nets of a race are small: split over threads op by op, every convolution waits on a team of
        threads (woken again for each of thousands of ops a step, and put to sleep between them where the
        app sets OMP_WAIT_POLICY=PASSIVE); one racer per thread needs no team. None (racers one after the
        other, on every thread) on CUDA/MPS, under torchrun, with one racer or one thread."""
        if racers < 2:
            return None  # the last racer still training: every thread on it
        if self._pool is not None:
            return self._pool
        threads = torch.get_num_threads()
        if self.device.type != "cpu" or self.dist.enabled or threads < 2:
            return None
        self._pool = ThreadPoolExecutor(min(racers, threads), thread_name_prefix="racer")
        return self._pool

    @staticmethod
    def _side_by_side(pool: ThreadPoolExecutor | None) -> contextlib.AbstractContextManager[None]:
        """One thread per op while the pool's workers run (``job_queue.one_thread_each``: torch's count is one
        setting of the whole process, so a worker's own ``set_num_threads(1)`` would be undone by the next call
        anywhere; measured with torch 2.14, the workers then ran two threads each, 230 ms a step of the
        56-layer pair instead of 95)."""
        return one_thread_each() if pool is not None else contextlib.nullcontext()

    def close(self) -> None:
        """End the racer worker threads (a later step starts them again)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def step(self) -> list[dict[str, Any]]:
        """One lockstep step for every running racer; returns one metrics row per racer (this step only).

        Metrics of all racers are stacked on the device and copied to the host once. A racer whose loss is
        not finite is marked "diverged" and not updated; the others take their optimizer step (see
        :func:`step_action` for non-finite gradients, with and without a gradient scaler).
        """
        if self.done:
            return []
        step = self.step_index
        lr = lr_at(step, self.config)
        t0 = time.perf_counter()
        x, y = self.next_batch()
        active = [r for r in self.racers if r.status == "running"]
        stats, times = [], []
        timing_cuda = self.device.type == "cuda"
        pool = self._racer_pool(len(active))
        if pool is not None:  # side by side: each racer timed in its own worker
            with self._side_by_side(pool):
                for stat, seconds in pool.map(lambda racer: self._timed_train(racer, x, y, lr), active):
                    stats.append(stat)
                    times.append(seconds)
        elif timing_cuda:
            for racer in active:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                stats.append(self._train_one(racer, x, y, lr))
                end.record()
                times.append((start, end))
        else:
            for racer in active:
                stat, seconds = self._timed_train(racer, x, y, lr)
                stats.append(stat)
                times.append(seconds)
        metrics = torch.stack(stats)  # (racers, 2 + stages)
        if self.dist.enabled:
            import torch.distributed as dist

            dist.all_reduce(metrics)  # sum over ranks: loss and norms averaged below, correct summed
            metrics[:, 0] /= self.dist.world_size
            metrics[:, 2:] /= self.dist.world_size
        host = metrics.cpu().tolist()  # the one device->host copy of the step (it also synchronises CUDA)
        global_batch = self.local_batch * self.dist.world_size
        seconds = [timing[0].elapsed_time(timing[1]) / 1000 if timing_cuda else timing for timing in times]
        updates = []
        for racer, values in zip(active, host, strict=True):
            loss, correct, *norms = values
            loss_finite = math.isfinite(loss)
            action, racer.skipped = step_action(loss_finite, all(math.isfinite(v) for v in norms),
                                                racer.scaler is not None, racer.skipped)
            if action == "step":
                updates.append(racer)
            else:
                racer.status = "diverged"
                if not loss_finite:
                    what = f"its loss became {loss}"
                elif racer.scaler is not None:
                    what = (f"its gradients were not finite for {racer.skipped} steps in a row, even as the "
                            f"fp16 loss scale fell to {racer.scaler.get_scale():.3g}")
                else:
                    what = "its gradient became non-finite"
                racer.message = (f"{racer.label} diverged at step {step + 1}: {what}; it was stopped, the others go "
                                 f"on (try a lower learning rate or a longer warm-up).")
        # The optimizer steps where the racers trained (their workers): the same threads as a racer alone.
        with self._side_by_side(pool):
            update_s = dict(zip(map(id, updates), pool.map(self._update, updates) if pool is not None
                                else map(self._update, updates), strict=True))
        rows = []
        for racer, values, racer_s in zip(active, host, seconds, strict=True):
            loss, correct, *norms = values
            racer_s += 0.0 if timing_cuda else update_s.get(id(racer), 0.0)
            racer.seconds += racer_s
            if racer.status == "running" and step + 1 >= self.config.steps:
                racer.status = "finished"
            row = {"step": step + 1, "racer": racer.label, "loss": loss, "acc": correct / global_batch, "lr": lr,
                   "images_per_s": global_batch / max(racer_s, 1e-9), "status": racer.status}
            row.update({f"grad_{name}": v for name, v in zip(racer.groups, norms, strict=True)})
            rows.append(row)
        self.step_index += 1
        self.wall += time.perf_counter() - t0
        self.rows.extend(rows)
        return rows

    def eval_due(self) -> bool:
        """True after a step that should be followed by a held-out evaluation (every k steps and at the end)."""
        return self.step_index > 0 and (self.step_index % self.config.eval_every == 0 or self.done)

    def checkpoint_due(self) -> bool:
        """True after a step that should be followed by a periodic checkpoint (every ``checkpoint_every``
        steps; the final checkpoint at the end is the caller's, with the run's summary)."""
        every = self.config.checkpoint_every
        return every > 0 and self.step_index > 0 and self.step_index % every == 0 and not self.done

    @torch.no_grad()
    def evaluate(self) -> list[dict[str, Any]]:
        """Held-out loss and accuracy of every racer (not diverged) on up to ``eval_samples`` test images
        (side by side like :meth:`step`; the evaluation after the last step ends the racers' workers)."""
        n = min(self.config.eval_samples, len(self.test_data))
        scored = [r for r in self.racers if r.status != "diverged"]
        pool = self._racer_pool(len(scored))
        with self._side_by_side(pool):
            rows = (list(pool.map(lambda racer: self._evaluate_one(racer, n), scored)) if pool is not None
                    else [self._evaluate_one(racer, n) for racer in scored])
        self.eval_rows.extend(rows)
        if self.done:
            self.close()
        return rows

    @torch.no_grad()  # here too: grad mode is per thread, and a worker may run this
    def _evaluate_one(self, racer: Racer, n: int) -> dict[str, Any]:
        model = racer.model
        was_training = model.training
        model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        for start in range(0, n, 256):
            x = self._to_input(self.test_data.images[start:min(n, start + 256)])
            y = self.test_data.labels[start:min(n, start + 256)].to(self.device)
            with self._autocast():
                logits = model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
        model.train(was_training)
        loss, acc = (torch.stack([loss_sum, correct]) / n).cpu().tolist()
        return {"step": self.step_index, "racer": racer.label, "test_loss": loss, "test_acc": acc}

    def train(self, on_step: Callable[[Race, list[dict[str, Any]]], None] | None = None) -> Race:
        """Run to the end (or until every racer diverged), evaluating every ``eval_every`` steps."""
        while not self.done:
            rows = self.step()
            if self.eval_due():
                self.evaluate()
            if on_step is not None:
                on_step(self, rows)
        return self

    # -- results
    def history(self) -> pd.DataFrame:
        """One row per (step, racer): step, racer, loss, acc, lr, images_per_s, status, grad_<stage>..."""
        return pd.DataFrame(self.rows)

    def evals(self) -> pd.DataFrame:
        """One row per (evaluation step, racer): step, racer, test_loss, test_acc."""
        return pd.DataFrame(self.eval_rows, columns=["step", "racer", "test_loss", "test_acc"])

    def stop(self) -> None:
        """Mark racers still training as "stopped" (the race was ended early)."""
        for racer in self.racers:
            if racer.status == "running":
                racer.status = "stopped"
        self.close()

    def summary(self) -> pd.DataFrame:
        return summarize(self.history(), self.evals(), {r.label: r.params for r in self.racers},
                         {r.label: r.seconds for r in self.racers}, {r.label: r.status for r in self.racers})

    @property
    def messages(self) -> list[str]:
        return [r.message for r in self.racers if r.message]

    def checkpoint(self, racer: Racer) -> dict[str, Any]:
        """The project's checkpoint dict (``checkpoints.make_checkpoint``; loadable with
        ``torch.load(weights_only=True)``), with the state :meth:`restore` needs to continue."""
        summary = self.summary().set_index("racer")
        metrics = {}
        if racer.label in summary.index:
            row = summary.loc[racer.label]
            metrics = {k: (None if pd.isna(v) else float(v)) for k, v in row.items()
                       if k in ("final_loss", "final_acc", "test_acc", "seconds")}
        metrics.update({"steps": int(self.step_index), "status": racer.status})
        size = self.config.image_size
        prep = {"resize": size, "crop": size, "mean": [float(m) for m in self.train_data.mean],
                "std": [float(s) for s in self.train_data.std]}
        return make_checkpoint(arch=racer.spec.arch, label=racer.label, options=racer.options,
                               state_dict=racer.model.state_dict(), classes=self.classes, preprocessing=prep,
                               dataset=self.config.dataset, metrics=metrics, resume=self._resume_state(racer))

    def _resume_state(self, racer: Racer) -> dict[str, Any]:
        """What :meth:`restore` needs to continue this racer exactly: optimizer (momentum buffers), gradient
        scaler, step, data order and status. The learning rate is a pure function of the step (:func:`lr_at`),
        so the step is the schedule's whole state. Only tensors and plain values (``weights_only`` loads it)."""
        return {
            "step": int(self.step_index),
            "optimizer": _to_cpu(racer.optimizer.state_dict()),
            "scaler": racer.scaler.state_dict() if racer.scaler is not None else None,
            "schedule": {"name": self.config.schedule, "next_lr": lr_at(self.step_index, self.config)},
            # The sampler's order for an epoch is a function of (seed, epoch): epoch and cursor rebuild it.
            "data": {"epoch": int(self._epoch), "cursor": int(self._cursor), "seed": int(self.config.seed),
                     "world_size": int(self.dist.world_size)},
            "status": racer.status, "message": racer.message, "skipped": int(racer.skipped),
            "seconds": float(racer.seconds), "wall": float(self.wall),
        }

    def restore(self, checkpoints: dict[str, dict[str, Any]], rows: Sequence[dict[str, Any]] = (),
                eval_rows: Sequence[dict[str, Any]] = ()) -> None:
        """Continue from checkpoints written by :meth:`checkpoint`, one per racer label, all of one step.

        Weights, optimizer and scaler state, step, data order and statuses are restored ("stopped" racers
        train again), so the next :meth:`step` is the one an uninterrupted race would take. ``rows`` and
        ``eval_rows`` (the run's log) are kept up to that step. Raises ValueError (one sentence) when the
        checkpoints do not belong to this race."""
        missing = [r.label for r in self.racers if r.label not in checkpoints]
        if missing:
            raise ValueError(f"No checkpoint for {', '.join(missing)}; a race resumes only with every racer.")
        states = {label: ckpt.get("resume") for label, ckpt in checkpoints.items()}
        if not all(isinstance(state, dict) for state in states.values()):
            raise ValueError("These checkpoints hold weights only (no optimizer state or data position), "
                             "so the race cannot continue exactly from them.")
        steps = {int(states[r.label]["step"]) for r in self.racers}
        data = {tuple(sorted(states[r.label]["data"].items())) for r in self.racers}
        if len(steps) != 1 or len(data) != 1:
            raise ValueError(f"The checkpoints are from different steps ({', '.join(map(str, sorted(steps)))}); "
                             "a race resumes from one step for every racer.")
        step, position = steps.pop(), dict(data.pop())
        if position["world_size"] != self.dist.world_size or position["seed"] != self.config.seed:
            raise ValueError(f"The checkpoints were written by {position['world_size']} process(es) with seed "
                             f"{position['seed']}; resume with the same number of processes and seed.")
        for racer in self.racers:
            ckpt, state = checkpoints[racer.label], states[racer.label]
            racer.model.load_state_dict(ckpt["state_dict"], strict=True)
            racer.optimizer.load_state_dict(state["optimizer"])
            if racer.scaler is not None and state.get("scaler"):
                racer.scaler.load_state_dict(state["scaler"])
            racer.status = "running" if state["status"] in ("running", "stopped") else str(state["status"])
            racer.message, racer.skipped = str(state.get("message", "")), int(state.get("skipped", 0))
            racer.seconds = float(state.get("seconds", 0.0))
        self._epoch, self._cursor = int(position["epoch"]), int(position["cursor"])
        self._order = []
        if self._epoch > 0:  # the epoch in progress: the same seeded shuffle the interrupted run drew
            self.sampler.set_epoch(self._epoch - 1)
            self._order = list(iter(self.sampler))
        self.step_index = step
        self.wall = float(states[self.racers[0].label].get("wall", 0.0))
        self.rows = [dict(r) for r in rows if int(r["step"]) <= step]
        self.eval_rows = [dict(r) for r in eval_rows if int(r["step"]) <= step]


def _to_cpu(value: Any) -> Any:
    """Tensors anywhere in nested dicts/lists moved to the CPU (a checkpoint reads back on any machine)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu")
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value




def summarize(history: pd.DataFrame, evals: pd.DataFrame, params: dict[str, int] | None = None,
              seconds: dict[str, float] | None = None, statuses: dict[str, str] | None = None) -> pd.DataFrame:
    """Per racer: status (``statuses`` if given, else the last logged), steps, final_loss/final_acc (mean of
    the last 20 steps), test_acc (last held-out evaluation), seconds (its own compute time), params."""
    if history.empty:
        return pd.DataFrame(columns=["racer", "status", "steps", "final_loss", "final_acc", "test_acc", "seconds",
                                     "params"])
    rows = []
    for racer, group in history.groupby("racer", sort=False):
        tail = group.tail(FINAL_WINDOW)
        ev = evals[evals["racer"] == racer] if not evals.empty else evals
        rows.append({
            "racer": racer,
            "status": (statuses or {}).get(racer, group["status"].iloc[-1]),
            "steps": int(group["step"].iloc[-1]),
            "final_loss": float(tail["loss"].mean()),
            "final_acc": float(tail["acc"].mean()),
            "test_acc": float(ev["test_acc"].iloc[-1]) if len(ev) else float("nan"),
            "seconds": (seconds or {}).get(racer, float("nan")),
            "params": (params or {}).get(racer, 0),
        })
    return pd.DataFrame(rows)
