"""Training race: plain against residual nets trained in lockstep on the same batches, live."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from typing import Any

import streamlit as st
from explorer_ui.budget import offer_fit
from explorer_ui.figures import for_session
from explorer_ui.notebook_button import notebook_button
from explorer_ui.page_state import setting_widget
from explorer_ui.predict import ask
from explorer_ui.url_params import take_settings, write_settings

from resnet_core.costs import estimate_race, require_within_budget
from resnet_core.data import DATASETS, DataError
from resnet_core.models import display_name
from resnet_core.page_specs import TR_CUSTOM, TR_MAX_RACERS, TR_RACE_ARCHS, TRAINING
from resnet_core.plots.training import grad_norm_figure, race_figure
from resnet_core.questions import race_question
from resnet_core.runs import (
    FolderRace,
    Job,
    JobSnapshot,
    RaceBusy,
    list_runs,
    load_run,
    past_run_titles,
    past_runs_table,
    registry_for,
)
from resnet_core.settings import BudgetError
from resnet_core.train import PRESET_NOTES, PRESETS, RaceConfig, RacerSpec, degradation_note

CUSTOM_NOTE = ("Pick 2 to 4 nets. To look for degradation (a deeper plain net ending with a higher training loss "
               "than a shallower plain one), race two plain depths.")
# Two pages chart gradients, measured differently: each says what it measures and how the other relates.
GRAD_NOTE = ("This chart measures the gradients of each stage's weights while the nets train (mean of the last 20 "
             "steps); Gradient flow and the lesson measure the gradient reaching each block's input in a freshly "
             "initialised net, so the two can disagree about where a plain net's gradients are largest.")
# While a race trains the live view polls in three parts: the progress bar every PROGRESS_EVERY_S, the curves
# every CURVES_EVERY_S, the gradient chart and summary table (means of the last 20 steps) every DETAILS_EVERY_S.
# Each Plotly redraw costs the browser about 0.25 CPU s whatever the data (Streamlit mounts a changed figure
# anew), on the cores the racers fill: one 2-s view of everything took 20% of a core in Chromium and held the
# app at 0.85 of the CLI's steps/s; these take 11.5% (benchmarks/bench_race_app.py).
PROGRESS_EVERY_S = 2.0
CURVES_EVERY_S = 4.0
DETAILS_EVERY_S = 12.0
RACE_ARCHS = list(TR_RACE_ARCHS)
RACER_CHOICES = {display_name(a, r): RacerSpec(a, r) for a in RACE_ARCHS for r in (False, True)}


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _settings(preset: str) -> RaceConfig:
    """The race settings widgets, their defaults from the preset (keys per preset: each keeps its own values)."""
    base = PRESETS.get(preset, PRESETS["Plain-20 vs ResNet-20"])
    # Each preset starts from its own numbers (a link, or the budget's "fit" button, may have set them already).
    defaults = {"racers": ["Plain-20", "ResNet-20"], "data": base.dataset, "steps": base.steps,
                "batch": base.batch_size, "lr": base.lr, "warmup": base.warmup_steps, "width": base.width or 16,
                "size": base.image_size, "schedule": base.schedule}
    for setting in TRAINING:
        if setting.per is not None:
            st.session_state.setdefault(setting.state_key(preset), defaults[setting.field])

    def field(name: str, label: str, column: Any = None, **kwargs: Any) -> Any:
        return setting_widget(TRAINING[name], label, owner=preset, container=column, **kwargs)

    if preset == TR_CUSTOM:
        labels = field("tr_racers", f"Racers (2 to {TR_MAX_RACERS})")
        racers = tuple(RACER_CHOICES[label] for label in labels)
    else:
        racers = base.racers
        st.caption("Racers: " + ", ".join(r.label for r in racers))
    cols = st.columns(4)
    dataset = field("tr_data", "Data set", cols[0], format_func=DATASETS.get)
    steps = field("tr_steps", "Steps", cols[1])
    batch = field("tr_batch", "Batch size", cols[2])
    lr = field("tr_lr", "Learning rate", cols[3], format="%.4f")
    cols = st.columns(4)
    warmup = field("tr_warmup", "Warm-up steps", cols[0],
                   help="Linear warm-up of the learning rate: without it ResNet-56 starts unstably.")
    width = field("tr_width", "Width (channels of the first stage)", cols[1],
                  help="The paper uses 16; fewer channels train much faster on a CPU.")
    size = field("tr_size", "Image size (px)", cols[2])
    schedule = field("tr_schedule", "Schedule after warm-up", cols[3],
                     help="step: x0.1 at 50% and 75% of the steps, as in the paper.")
    shown = {"tr_preset": preset, "tr_data": dataset, "tr_steps": int(steps), "tr_batch": int(batch),
             "tr_lr": float(lr), "tr_warmup": int(warmup), "tr_width": int(width), "tr_size": int(size),
             "tr_schedule": schedule}
    if preset == TR_CUSTOM:
        shown["tr_racers"] = labels
    write_settings(shown, drop=[] if preset == TR_CUSTOM else ["tr_racers"])
    notebook_button("training", shown)
    if len(racers) < 2:
        raise ValueError("Pick at least two racers for a race.")
    name = base.name if preset != TR_CUSTOM else " vs ".join(r.label for r in racers)
    config = replace(base, racers=racers, dataset=dataset, steps=int(steps), batch_size=int(batch), lr=float(lr),
                     warmup_steps=int(warmup), width=int(width), image_size=int(size), schedule=schedule, name=name)
    if config != base:
        config = replace(config, name=name if preset == TR_CUSTOM else f"{base.name} (custom settings)")
    return config


def _watch(run_id: str | None) -> None:
    """Show race ``run_id`` live on this page (the session's watched race)."""
    st.session_state["tr_run"] = run_id
    st.session_state.pop("tr_seen_status", None)
    st.session_state.pop("tr_error", None)


def _controls(job: Job | FolderRace | None, busy: RaceBusy | None) -> None:
    """Start (refused while any race of the runs folder trains), then Pause, Resume, Step, Stop of the watched
    race: a job of this process, or another process's race through its run folder."""
    status = job.status if job else None
    cols = st.columns(5)
    invalid = st.session_state.get("tr_config") is None
    if cols[0].button("Start", type="primary", key="tr_start", disabled=invalid or busy is not None,
                      icon=":material/play_arrow:", help=str(busy) if busy is not None else None):
        try:
            with st.spinner("Preparing the data and the nets..."):
                new = registry_for().start(st.session_state["tr_config"])
        except RaceBusy:
            pass  # another tab or process took the slot meanwhile: the rerun names its race and offers to watch it
        except (ValueError, DataError) as error:
            st.session_state["tr_error"] = str(error)
        else:
            _watch(new.run_id)
            st.session_state.setdefault("tr_started", []).append(new.run_id)
        st.rerun()
    if cols[1].button("Pause", key="tr_pause", disabled=status != "running", icon=":material/pause:"):
        job.pause(timeout=30)  # returns once the step in flight is published: the page shows where it holds
        st.rerun()
    if cols[2].button("Resume", key="tr_resume", disabled=status != "paused", icon=":material/resume:"):
        job.resume()
        st.rerun()
    if cols[3].button("Step", key="tr_step", disabled=status != "paused", icon=":material/skip_next:",
                      help="Train exactly one more step, then stay paused."):
        job.wait_for_step(job.step_once(), timeout=30)  # the job says which step it will hold at
        st.rerun()
    # A race left ready (created paused, never started) holds the slot too: Stop frees it.
    if cols[4].button("Stop", key="tr_stop", disabled=status not in ("running", "paused", "ready"),
                      icon=":material/stop:"):
        job.stop()
        job.wait(timeout=30)
        st.rerun()
    if busy is not None and busy.run_id not in st.session_state.get("tr_started", []):
        # Not this session's own race: say whose race holds the slot (Start is refused meanwhile).
        st.info(str(busy), icon=":material/sprint:")
        if busy.run_id is not None and busy.run_id != st.session_state.get("tr_run") and st.button(
                "Watch it", key="tr_watch", icon=":material/visibility:"):
            _watch(busy.run_id)
            st.rerun()


def _draw_progress(snap: JobSnapshot) -> None:
    """The progress bar (step, status, time, device) and the race's messages."""
    eta = f" · about {_fmt_seconds(snap.eta_s)} left" if snap.eta_s is not None else ""
    st.progress(snap.progress, text=f"{snap.name}: step {snap.step} of {snap.steps} · {snap.status} · "
                                    f"{_fmt_seconds(snap.elapsed_s)} elapsed{eta} · {snap.device}")
    for message in snap.messages:
        st.warning(message)
    if snap.history.empty:
        st.info("No step trained yet: press Start (or Step to train one step at a time).")


def _draw_curves(snap: JobSnapshot, key: str) -> None:
    if not snap.history.empty:
        st.plotly_chart(for_session(race_figure(snap.history, snap.evals, total_steps=snap.steps)),
                        key=f"{key}_curves")


def _draw_details(snap: JobSnapshot, key: str, config: RaceConfig) -> None:
    """Gradient norms per stage, the summary table and the degradation note of one snapshot."""
    if snap.history.empty:
        return
    st.plotly_chart(for_session(grad_norm_figure(snap.history)), key=f"{key}_grads")
    st.caption(GRAD_NOTE)
    table = snap.summary.rename(columns={"racer": "Racer", "status": "Status", "steps": "Steps",
                                         "final_loss": "Final loss", "final_acc": "Training accuracy",
                                         "test_acc": "Held-out accuracy", "seconds": "Compute (s)",
                                         "params": "Parameters"})
    st.dataframe(table, hide_index=True, key=f"{key}_summary",
                 column_config={"Training accuracy": st.column_config.NumberColumn(format="percent"),
                                "Held-out accuracy": st.column_config.NumberColumn(format="percent"),
                                "Final loss": st.column_config.NumberColumn(format="%.3f"),
                                "Compute (s)": st.column_config.NumberColumn(format="%.1f")})
    st.caption("Final loss and training accuracy: mean of the last 20 steps. Held-out: the latest evaluation "
               "on test images the nets never trained on."
               + (f" While the race trains these update every {DETAILS_EVERY_S:.0f} s." if snap.status == "running"
                  else ""))
    note = degradation_note(config, snap.summary)  # claimed only when this race's numbers show it
    if note:
        st.info(note, icon=":material/trending_down:")


def _draw(snap: JobSnapshot, key: str, config: RaceConfig) -> None:
    """Everything of one snapshot at once (a past run, read back)."""
    _draw_progress(snap)
    _draw_curves(snap, key)
    _draw_details(snap, key, config)


def _inspect(checkpoints: list[tuple[str, str]], key: str) -> None:
    """One click from a trained racer to the other pages (through the sidebar's weights picker)."""
    if not checkpoints:
        return
    labels = dict(checkpoints)
    cols = st.columns([2, 1])
    label = cols[0].selectbox("Trained model", list(labels), key=f"{key}_inspect_pick")
    available = importlib.util.find_spec("explorer_ui.weights_picker") is not None
    if cols[1].button("Inspect this model", key=f"{key}_inspect", disabled=not available,
                      icon=":material/search:",
                      help=None if available else "Needs the sidebar's weights picker, not in this build."):
        from explorer_ui.weights_picker import use_checkpoint

        use_checkpoint(labels[label])
        st.switch_page("../pages/architecture.py")


def _live_progress() -> None:
    """Progress of the page's race; reruns the whole page when the race changes state."""
    job = registry_for().get(st.session_state.get("tr_run"))
    if job is None:
        return
    snap = job.snapshot()
    _draw_progress(snap)
    if snap.status != st.session_state.get("tr_seen_status"):
        # The job changed state (finished, stopped, failed): rerun the page so buttons and polling follow.
        st.session_state["tr_seen_status"] = snap.status
        st.rerun()


def _live_curves() -> None:
    job = registry_for().get(st.session_state.get("tr_run"))
    if job is not None:
        _draw_curves(job.snapshot(), "live")


def _live_details() -> None:
    job = registry_for().get(st.session_state.get("tr_run"))
    if job is not None:
        _draw_details(job.snapshot(), "live", job.config)


def _after_live(job: Job | FolderRace) -> None:
    """Save (a run kept in memory) and one click to inspect a trained racer; drawn by whole-page runs only,
    which every change of the race's state triggers."""
    snap = job.snapshot()
    if isinstance(job, Job) and job.storage_error and st.button("Save run", key="tr_save", icon=":material/save:", disabled=snap.status == "running",
                                      help="Write this run (kept in memory) to the runs folder; pause it first."):
        try:
            folder = registry_for().runs_dir  # where the runs folder is now
            job.export(folder)
            st.success(f"Saved {load_run(job.run_id, folder).title} in the runs folder.")
        except ValueError as error:  # RunStorageError included: one sentence
            st.error(str(error))
    if snap.status in ("finished", "stopped") and snap.checkpoints:
        _inspect([(label, path) for label, path in zip(snap.racers, snap.checkpoints, strict=False)], "live")


st.title("Training race")
take_settings(TRAINING)  # a shared link's race, on the session's first run only (its settings below)
st.caption("Nets trained in lockstep on identical batches (same seed, same order), so their curves compare step "
           "by step, live. Degradation (He et al. 2015, Fig. 6) is a deeper plain net training worse than a "
           "shallower one; the page says so when a race measures it.")

registry = registry_for()  # the runs folder's races: this process's jobs, and the one slot every process shares
current = registry.current()
if "tr_run" not in st.session_state and current is not None:
    st.session_state["tr_run"] = current.run_id  # a refreshed tab finds the race that is still going
job = registry.get(st.session_state.get("tr_run"))
busy = registry.busy()

if job is not None and job.status == "running" and st.session_state.get("tr_folded_for") != job.run_id:
    # A race just started: fold the settings once, so the live curves are on the first screen (1280x720);
    # the user can open them again (written before the expander is drawn, as Streamlit requires).
    st.session_state["tr_settings_open"] = False
    st.session_state["tr_folded_for"] = job.run_id

with st.expander("Race settings", expanded=True, key="tr_settings_open", on_change="rerun",
                 icon=":material/tune:"):
    preset = setting_widget(TRAINING["tr_preset"], "Race")
    # The rest of a link's race settings go to this preset's widgets (its keys), on the first run only.
    take_settings(TRAINING, owners={"tr_preset": preset})
    st.caption(PRESET_NOTES.get(preset, CUSTOM_NOTE))
    try:
        st.session_state["tr_config"] = _settings(preset)
        # Costed before Start: the sliders' extremes together (width, batch, image size) can need gigabytes.
        require_within_budget(estimate_race(st.session_state["tr_config"]))
    except BudgetError as error:
        st.session_state["tr_config"] = None
        fields = {"batch_size": "batch", "image_size": "size", "width": "width"}
        offer_fit(error, lambda setting, value: ({TRAINING[f"tr_{fields[setting]}"].state_key(preset): value}
                                                 if setting in fields else None), key="tr_fit")
    except ValueError as error:
        st.session_state["tr_config"] = None
        st.warning(str(error))
_controls(job, busy)  # outside the settings: Pause, Step and Stop stay on screen while they are folded
if st.session_state.get("tr_error"):
    st.error(st.session_state["tr_error"])

if job is not None:
    st.session_state.setdefault("tr_seen_status", job.status)
    # Poll only while the race trains; the background thread never calls st.* itself.
    running = job.status == "running"
    st.fragment(_live_progress, run_every=PROGRESS_EVERY_S if running else None)()
    # Predict, then reveal: which net ends lower, asked before the curves; answered once the race has ended.
    ended = job.snapshot()
    question = race_question(ended.racers)
    measured = question.answer(ended.summary) if ended.status in ("finished", "stopped") and not \
        ended.summary.empty else None
    if ask(question, measured):
        st.fragment(_live_curves, run_every=CURVES_EVERY_S if running else None)()
        st.fragment(_live_details, run_every=DETAILS_EVERY_S if running else None)()
    _after_live(job)

with st.expander("Past runs (this app and `resnet-train`)"):
    past = list_runs()
    if past.empty:
        st.caption("No finished runs yet.")
    else:
        st.dataframe(past_runs_table(past), hide_index=True, key="tr_past_table")
        titles = past_run_titles(past)
        run_id = st.selectbox("Reopen a run", [None, *past["run_id"]], key="tr_past_pick",
                              format_func=lambda r: "-" if r is None else titles[r])
        if run_id is not None:
            try:
                record = load_run(run_id)
            except ValueError as error:
                st.error(str(error))
            else:
                _draw(record.snapshot(), "past", record.config)
                _inspect([(c["label"], c["path"]) for c in record.checkpoints], "past")
                if record.resumable and st.button(f"Resume from step {record.checkpoint_step}", key="tr_past_resume",
                                                  icon=":material/resume:"):
                    try:
                        resumed = registry_for().resume(run_id)
                    except ValueError as error:  # RaceBusy included: which race trains, in one sentence
                        st.error(str(error))
                    else:
                        _watch(resumed.run_id)
                        st.session_state.setdefault("tr_started", []).append(resumed.run_id)
                        st.rerun()
