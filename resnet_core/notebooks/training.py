"""The Training race page as a notebook: the same race the page starts, drawn live while it trains, with the
page's controls (pause, one step, resume, stop) as cells.

The race trains in a background thread (``resnet_core.runs.Job``, the object behind the page's Start button), so
the kernel stays free: a second thread redraws the figure every couple of seconds through an IPython display
handle, and the control cells can be run at any moment.
"""

from __future__ import annotations

from typing import Any

from nbformat import NotebookNode

from ..page_specs import TR_CUSTOM, TR_DEFAULT_PRESET, TRAINING
from ._cells import code, md, summary_cell

TITLE = "Training race"
SPEC = TRAINING
# SMALL: a race of this many steps on a small slice of the data (the tests); the app's race needs SMALL = False.
SMALL_STEPS = 20


CONFIG = f'''\
# The race the page starts: its preset, with the settings' values over the preset's own (as the page's widgets do).
from dataclasses import replace

from resnet_core.costs import estimate_race, require_within_budget
from resnet_core.models import display_name
from resnet_core.train import PRESETS, RacerSpec

CUSTOM = {TR_CUSTOM!r}
preset = SETTINGS["tr_preset"]
base = PRESETS.get(preset, PRESETS[{TR_DEFAULT_PRESET!r}])
if preset == CUSTOM:
    choices = {{display_name(a, r): RacerSpec(a, r)
               for a in ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110") for r in (False, True)}}
    labels = SETTINGS["tr_racers"].split(",") if isinstance(SETTINGS["tr_racers"], str) else SETTINGS["tr_racers"]
    racers = tuple(choices[label.strip()] for label in labels if label.strip())
    if not 2 <= len(racers) <= 4:
        raise ValueError("Pick 2 to 4 racers for a custom race.")
else:
    racers = base.racers
name = base.name if preset != CUSTOM else " vs ".join(r.label for r in racers)
config = replace(base, racers=racers, dataset=SETTINGS["tr_data"], steps=int(SETTINGS["tr_steps"]),
                 batch_size=int(SETTINGS["tr_batch"]), lr=float(SETTINGS["tr_lr"]),
                 warmup_steps=int(SETTINGS["tr_warmup"]), width=int(SETTINGS["tr_width"]),
                 image_size=int(SETTINGS["tr_size"]), schedule=SETTINGS["tr_schedule"], name=name)
if config != base:
    config = replace(config, name=name if preset == CUSTOM else f"{{base.name}} (custom settings)")
page_config = config  # what the page would race with these settings
if SMALL:  # a few steps on a small slice of the data: seconds instead of minutes
    config = replace(config, steps=min(config.steps, {SMALL_STEPS}), batch_size=min(config.batch_size, 32),
                     eval_every=10, eval_samples=128, n_train=512, n_test=128, checkpoint_every=0)
require_within_budget(estimate_race(config))  # costed before Start, as on the page
print(f"{{config.name}}: {{', '.join(config.labels)}}; {{config.steps}} steps of {{config.batch_size}} images "
      f"({{config.image_size}} px, width {{config.width}}) on {{config.dataset}}, lr {{config.lr}} "
      f"({{config.warmup_steps}} warm-up steps, then {{config.schedule}})")'''

START = '''\
# Start: the race trains in a background thread (the page's Start button makes the same Job); a second thread
# redraws the progress line and the curves every EVERY_S seconds, as the page's live view does.
import threading

from IPython.display import Markdown, display

from resnet_core.plots.training import grad_norm_figure, race_figure
from resnet_core.runs import registry_for

EVERY_S = 2.0


def progress_line(snap):
    eta = f" · about {snap.eta_s:.0f} s left" if snap.eta_s is not None else ""
    return Markdown(f"**{snap.name}**: step {snap.step} of {snap.steps} · {snap.status} · "
                    f"{snap.elapsed_s:.0f} s{eta} · {snap.device}")


def draw(snap):
    """One redraw of the live view from a snapshot (a consistent copy: the race goes on meanwhile)."""
    progress.update(progress_line(snap))
    if not snap.history.empty:
        # The figure's own output (its mime bundle), so that the handle replaces the figure in place.
        figure = race_figure(snap.history, snap.evals, total_steps=snap.steps)
        curves.update(figure._repr_mimebundle_(), raw=True)
    for message in snap.messages:
        print(message)


def watch(job, stop_watching):
    while not stop_watching.wait(EVERY_S):
        draw(job.snapshot())
        if job.status not in ("running", "paused", "ready"):
            break


# The runs folder's one race slot, as the page's Start takes it: the Training page shows and controls it too.
job = registry_for().start(config, paused=True, source="notebook")
progress = display(progress_line(job.snapshot()), display_id=True)
curves = display(Markdown("No step trained yet."), display_id=True)
stop_watching = threading.Event()
watcher = threading.Thread(target=watch, args=(job, stop_watching), daemon=True)
job.start()
watcher.start()'''

WAIT = '''\
# Run All waits here for the end. To use the controls while it trains, interrupt the kernel (the square button):
# the race goes on in its thread and the figure above keeps updating; then run the control cells below.
try:
    job.wait()
except KeyboardInterrupt:
    print(f"Still training in the background (step {job.snapshot().step}): the cells below pause, step, "
          "resume or stop it.")
else:
    stop_watching.set()
    watcher.join()
    draw(job.snapshot())  # the final state, whatever the last redraw showed'''

CONTROLS = [
    ("Pause: hold after the step in flight (returns the step the race holds at).", "job.pause()"),
    ("One step: while paused, train exactly one more step and stay paused.",
     "job.wait_for_step(job.step_once())\ndraw(job.snapshot())"),
    ("Resume: train on from where it holds.", "job.resume()"),
    ("Stop: end the race after the current step; it still gets a held-out score and its checkpoints.",
     "job.stop()\njob.wait()\ndraw(job.snapshot())"),
]

RESULTS = '''\
# The page's table under the curves: final loss and training accuracy (mean of the last 20 steps), held-out
# accuracy (the latest evaluation), compute seconds and parameters per racer.
from resnet_core.train import degradation_note

snap = job.snapshot()
note = degradation_note(config, snap.summary)  # claimed only when this race's numbers show it
print(note or "This race does not show degradation between two plain depths.")
snap.summary'''

GRADS = '''\
# Gradient norm of each stage's weights while the nets train (mean of the last 20 steps).
grad_norm_figure(snap.history)'''


def cells(settings: dict[str, Any]) -> list[NotebookNode]:
    """The Training page's cells: the race config, the live race, its controls, the results."""
    out = [
        md("## The race\n\nNets trained in lockstep on identical batches (same seed, same order), so their curves "
           "compare step by step. Degradation (He et al. 2015, Fig. 6) is a deeper *plain* net training worse "
           "than a shallower one: only a race with two plain depths (the quartet) can show it. The cell below "
           "builds the page's race from `SETTINGS`."),
        code(CONFIG),
        md("## Live\n\nThe next cell starts the race in a background thread and returns at once: the progress line "
           "and the curves below it redraw every two seconds while it trains (training loss on top, accuracy "
           "under it; held-out accuracy as diamonds)."),
        code(START),
        md("## Pause, step, resume, stop\n\nRun All waits for the end in the next cell. While the race trains, "
           "interrupt the kernel to stop waiting (the race goes on), then run any control cell below; each does "
           "nothing once the race has ended."),
        code(WAIT),
    ]
    for text, source in CONTROLS:
        out += [md(f"**{text}**"), code(source)]
    out += [
        md("## Results"),
        code(RESULTS),
        md("This chart measures the gradients of each stage's weights while the nets train; the Gradient flow "
           "notebook measures the gradient reaching each block's input in a freshly initialised net, so the two "
           "can disagree about where a plain net's gradients are largest."),
        code(GRADS),
        summary_cell('{"name": config.name, "labels": config.labels, "status": snap.status, "step": snap.step, '
                     '"steps": [int(s) for s in snap.summary["steps"]], '
                     '"final_loss": [float(v) for v in snap.summary["final_loss"]], '
                     '"test_acc": [float(v) for v in snap.summary["test_acc"]], '
                     '"page_config": page_config.to_dict()}'),
    ]
    return out
