"""Why residuals work: a step-by-step lesson; every number on it is computed by resnet_core.lesson."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from explorer_ui.figures import for_session, shared_figure
from explorer_ui.notebook_button import notebook_button
from explorer_ui.notices import refuse
from explorer_ui.page_state import setting_widget
from explorer_ui.predict import ask
from explorer_ui.queue_notice import queue_notice
from explorer_ui.url_params import presenting, take_settings, write_settings
from streamlit.errors import StreamlitAPIException
from streamlit.runtime.scriptrunner_utils.script_run_context import in_cached_function

from resnet_core import lesson
from resnet_core.cam import SHAPES_CHECK_IMAGES
from resnet_core.job_queue import heavy_slot
from resnet_core.page_specs import LESSON, LESSON_GRIDS
from resnet_core.plots.cam import pointing_figure
from resnet_core.plots.landscape import line_figure, surface_figure
from resnet_core.plots.lesion import curve_figure, study_figure
from resnet_core.plots.lesson import (
    depth_figure,
    identity_figure,
    paper_table2_figure,
    paths_figure,
    split_figure,
)
from resnet_core.plots.training import race_figure
from resnet_core.questions import QUESTIONS
from resnet_core.runs import LIVE_STATUSES, load_run, registry_for
from resnet_core.settings import runs_dir
from resnet_core.train import degradation_note

ARCH, BLOCK, WIDTH = "resnet20", "layer2.1", 16
DEPTHS, SWEEP_WIDTH, SWEEP_BATCH = (20, 32, 56), 8, 16
# Steps 6-8: fixed batches, seed and span, so a rerun gives the same pictures (said on the page).
LANDSCAPE_BATCH, LANDSCAPE_SPAN, LANDSCAPE_SEED, GRIDS = 64, 1.0, 0, LESSON_GRIDS
LESION_BATCH, MAX_REMOVED, SAMPLES = 128, 4, 6
CAM_SHOWN = 6
STEPS, PRESENT_STEP_KEY = 8, "lesson_present_step"  # presenter view: the step on screen
# A race the lesson trains is drawn live as the Training page draws it: progress every 2 s, curves every 4 s.
PROGRESS_EVERY_S, CURVES_EVERY_S = 2.0, 4.0


@st.cache_data(show_spinner=False)
def _identity():
    with heavy_slot("lesson: identity"):
        return lesson.identity_check(ARCH, BLOCK, width=WIDTH)


@st.cache_data(show_spinner=False)
def _split(zero_init: bool):
    with heavy_slot("lesson: gradient split"):
        return lesson.gradient_split(ARCH, width=WIDTH, zero_init_residual=zero_init)


@st.cache_data(show_spinner=False)
def _depth():
    with heavy_slot("lesson: depth"):
        return lesson.depth_ratios(DEPTHS, width=SWEEP_WIDTH, batch=SWEEP_BATCH)


@st.cache_data(show_spinner=False, ttl=600)
def _race_seconds(which: str) -> float:
    with heavy_slot("lesson: timing a training step"):
        return lesson.estimate_race_seconds(lesson.curves_race() if which == "curves" else lesson.pair_race(),
                                            probe_steps=1)


def _start_race(config) -> None:
    """Start ``config`` as an ordinary run through the runs folder's race registry; the page then draws it live."""
    try:
        with st.spinner("Preparing the data and the nets..."):
            job = lesson.train_race(config)
    except ValueError as error:  # RaceBusy included: which race trains, who started it, its step
        st.session_state["lesson_race_error"] = str(error)
    else:
        st.session_state["lesson_race"] = job.run_id
        st.session_state.pop("lesson_race_error", None)
    st.rerun()


def _live_progress(run_id: str) -> None:
    race = registry_for().get(run_id)
    if race is None:
        return
    snap = race.snapshot()
    if snap.status not in LIVE_STATUSES:  # "ready" too is live: it holds the slot until started or stopped
        st.rerun()  # it ended: the whole page draws what it trained, or says why it stopped
    eta = f", about {lesson.duration(snap.eta_s)} left" if snap.eta_s is not None else ""
    st.progress(snap.progress, text=f"{snap.name}: step {snap.step} of {snap.steps} · {snap.status}{eta}")


def _live_curves(run_id: str) -> None:
    race = registry_for().get(run_id)
    snap = race.snapshot() if race is not None else None
    if snap is not None and not snap.history.empty:
        st.plotly_chart(for_session(race_figure(snap.history, snap.evals, total_steps=snap.steps)),
                        key="lesson_live_curves")


def _race(config, button: str, key: str) -> None:
    """The race ``config`` live while it trains (started here, in another tab or on the Training page), else a
    button that starts it, and why the last one did not finish."""
    race = registry_for().current()
    if race is not None and race.config.name == config.name and race.status in LIVE_STATUSES:
        running = race.status == "running"  # polled while it trains; a paused race waits for the Training page
        st.fragment(_live_progress, run_every=PROGRESS_EVERY_S if running else None)(race.run_id)
        st.fragment(_live_curves, run_every=CURVES_EVERY_S if running else None)(race.run_id)
        st.caption("It trains in the background, in this app's one race slot: the Training page shows it too, "
                   "with Pause and Stop; the lesson goes on here once it finished.")
        return
    if st.button(button, key=key, type="primary"):
        _start_race(config)
    ended = registry_for().get(st.session_state.get("lesson_race"))
    problem = lesson.race_problem(ended) if ended is not None and ended.config.name == config.name else None
    for sentence in (st.session_state.get("lesson_race_error"), problem):
        if sentence:
            st.error(sentence)


def _progress(text: str):
    """A progress bar that a cached computation can move (drawn outside the cache's replay record)."""
    bar = st.progress(0.0, text=text)

    def update(done: int, total: int) -> None:
        token = in_cached_function.set(False)
        try:
            bar.progress(min(1.0, done / max(1, total)), text=f"{text} {done} of {total}")
        finally:
            in_cached_function.reset(token)

    return bar, update


# The cached steps key on the pair's run and the runs folder it is in ("" for the demo pair, the same everywhere).
@st.cache_resource(show_spinner=False, max_entries=2)
def _pair(run_id: str, runs: str) -> lesson.TrainedPair:
    return lesson.load_pair(run_id, runs or None)


@st.cache_data(show_spinner=False, max_entries=4)
def _forward_ms(run_id: str, runs: str, batch: int) -> float:
    pair = _pair(run_id, runs)
    x = lesson.shapes_batch("train", batch, pair.image_size)[0]
    with heavy_slot("lesson: timing a forward pass"):
        return 1000 * max(lesson.forward_seconds(m, x) for m in pair.models.values())


def _landscape_batch(pair: lesson.TrainedPair) -> tuple:
    """Step 6's images and labels: what it measures on, and what asking whether it is kept must name."""
    return lesson.shapes_batch("train", LANDSCAPE_BATCH, pair.image_size)[:2]


@st.cache_data(show_spinner=False, max_entries=6)
def _landscape(run_id: str, runs: str, steps: int, _on_progress=None):
    pair = _pair(run_id, runs)
    x, y = _landscape_batch(pair)
    with heavy_slot("lesson: loss landscapes"):
        return lesson.landscape_pair(pair, x, y, steps=steps, span=LANDSCAPE_SPAN, seed=LANDSCAPE_SEED,
                                     on_progress=_on_progress)


@st.cache_data(show_spinner=False, max_entries=4)
def _lesion(run_id: str, runs: str):
    pair = _pair(run_id, runs)
    x, y = lesson.shapes_batch("test", LESION_BATCH, pair.image_size)[:2]
    with heavy_slot("lesson: lesion study"):
        return lesson.lesion_pair(pair, x, y, max_removed=MAX_REMOVED, samples=SAMPLES)


@st.cache_data(show_spinner=False, max_entries=4)
def _gradcam(run_id: str, runs: str):
    pair = _pair(run_id, runs)
    with heavy_slot("lesson: Grad-CAM"):
        return lesson.gradcam_shapes(pair.models["ResNet-20"], count=CAM_SHOWN)


def _race_title(run_id: str) -> str:
    try:
        return load_run(run_id).title
    except ValueError:  # a folder gone since the pair was loaded: the nets are cached, the run's name is not
        return "a finished race"


def _training_link() -> None:
    """Link to the Training page where it exists (another engineer's page); plain text otherwise."""
    if (Path(__file__).resolve().parent / "training.py").exists():
        try:
            st.page_link("../pages/training.py", label="Race a plain net against its residual twin on the "
                         "Training page", icon=":material/sprint:")
            return
        except StreamlitAPIException:
            pass
    st.caption("The Training page (when installed) races a plain net against its residual twin.")


def _degradation_step():
    """Step 1: the quartet's finished race (its curves and whether it shows degradation), else the button that
    trains it. Returns the race's record (None without one) and its degradation sentence."""
    curves_id = lesson.find_curves_run()
    record = None
    degraded: str | None = None  # step 1's sentence when its race shows degradation
    if curves_id is None:
        st.markdown(
            "He et al. trained plain nets (stacks of conv-BN-ReLU) of 18 and 34 layers and found the deeper one "
            "*worse*, in training error too: the solver fails to find a solution the deeper net can represent. "
            "Measure it here: the preset race *The degradation quartet* trains Plain-20, Plain-56, ResNet-20 and "
            "ResNet-56 on Shapes in lockstep.")
        quartet = lesson.curves_race()
        seconds = _race_seconds("curves")
        _race(quartet, f"Train the quartet here (about {lesson.duration(seconds)} on this machine, {quartet.steps} steps)",
              "lesson_train_curves")
        st.caption("The estimate times training steps of each net on this device. The run is an ordinary run: it "
                   "appears on the Training page, and the lesson uses it whenever it is opened again.")
    else:
        try:
            record = load_run(curves_id)
        except ValueError as error:  # a damaged run: one sentence, and the rest of the lesson goes on
            st.error(str(error))
            record = None
    question = QUESTIONS["lesson.1"]
    try:  # a race with two plain depths (the quartet) asks first; another race has no such question
        measured = question.answer(record.summary) if record is not None else None
    except (ValueError, KeyError):
        measured = None
    if record is not None and (measured is None or ask(question, measured)):
        st.markdown(
            f"Training curves of {record.title} ({record.config.steps} steps on Shapes, the same batches for every "
            "net). A plain net whose training loss stays high while its "
            "residual twin learns is the degradation problem; a deeper plain net ending above a shallower one is "
            "the paper's Fig. 6.")
        st.plotly_chart(for_session(race_figure(record.history, record.evals, total_steps=record.config.steps)),
                        key="lesson_race")
        degraded = degradation_note(record.config, record.summary)
        st.info(degraded if degraded else "This run does not show degradation between two plain depths (the quartet "
                "can).")
    return record, degraded


def _held(name: str):
    """A lesson setting's value when its step is not drawn (presenter view): the session's, else its default."""
    setting = LESSON[name]
    return st.session_state.get(setting.state_key(), setting.default)


def _presenter_step() -> int:
    """Presenter view: which step is on screen, with Previous and Next (one step per screen)."""
    step = int(st.session_state.setdefault(PRESENT_STEP_KEY, 1))
    previous, where, following = st.columns([1, 2, 1])
    if previous.button("Previous", key="lesson_present_previous", icon=":material/arrow_back:", disabled=step <= 1):
        st.session_state[PRESENT_STEP_KEY] = step - 1
        st.rerun()
    if following.button("Next", key="lesson_present_next", icon=":material/arrow_forward:", disabled=step >= STEPS):
        st.session_state[PRESENT_STEP_KEY] = step + 1
        st.rerun()
    where.markdown(f"**Step {step} of {STEPS}**")
    return step


def _step1() -> tuple:
    st.header("1. The degradation problem, measured")
    record, degraded = _degradation_step()
    with st.expander("The paper's reference: ImageNet, Table 2"):
        st.markdown(lesson.paper_table2_sentence(lesson.PAPER_TABLE2_TOP1))
        st.plotly_chart(shared_figure(paper_table2_figure, lesson.PAPER_TABLE2_TOP1), key="lesson_paper")
        st.caption(f"Quoted from {lesson.PAPER_CITATION}; not measured here.")
    _training_link()
    return record, degraded


def _step2() -> None:
    st.header("2. A residual block can be the identity")
    with st.spinner("Running four versions of one block..."), queue_notice():
        identity = _identity()
    if ask(QUESTIONS["lesson.2"], QUESTIONS["lesson.2"].answer(identity)):
        st.markdown(lesson.identity_sentence(identity, block=BLOCK, net=lesson.label(ARCH)))
        st.plotly_chart(shared_figure(identity_figure, identity), key="lesson_identity")


def _step3() -> bool:
    st.header("3. The gradient of y = x + F(x) is 1 + dF/dx")
    st.markdown(
        "Differentiate the sum s = x + F(x): dL/dx = dL/ds (1 + dF/dx). The **1** is the shortcut: whatever "
        "gradient reaches the sum reaches the block input unchanged, plus what the branch adds (in these "
        "post-activation blocks the ReLU after the sum masks dL/ds first; an identity shortcut passes the rest as "
        "is, a zero-pad shortcut drops the padded channels). Below, the gradient "
        "arriving at each block input of a freshly built net is split exactly into the two paths "
        "(`resnet_core.probes.path_gradients`, one backward pass, train-mode BN, cross-entropy on random labels).")
    zero_init = setting_widget(LESSON["lesson_zero_init"], "Start every branch at zero (zero_init_residual)")
    write_settings({"lesson_zero_init": zero_init})
    with st.spinner("Splitting the gradient..."), queue_notice():
        split = _split(zero_init)
    if ask(QUESTIONS["lesson.3"], QUESTIONS["lesson.3"].answer(split)):
        st.plotly_chart(shared_figure(split_figure, split), key="lesson_split")
        st.markdown(lesson.split_sentence(split, zero_init=zero_init))
    return zero_init


def _step4() -> None:
    st.header("4. Depth: what happens to the gradient on its way down")
    with st.spinner("Building and differentiating 6 nets..."), queue_notice():
        ratios = _depth()
    if ask(QUESTIONS["lesson.4"], QUESTIONS["lesson.4"].answer(ratios)):
        st.plotly_chart(shared_figure(depth_figure, ratios), key="lesson_depth")
        st.markdown(lesson.depth_sentence(ratios, batch=SWEEP_BATCH, width=SWEEP_WIDTH))


def _step5() -> int:
    st.header("5. The unrolled view: many paths, mostly short")
    n_blocks = setting_widget(LESSON["lesson_blocks"], "Residual blocks",  # starts at ResNet-110's
                              help="ResNet-110 has 54 blocks; ResNet-1202 has 600.")
    write_settings({"lesson_blocks": n_blocks})
    summary = lesson.path_summary(n_blocks)
    if ask(QUESTIONS["lesson.5"], QUESTIONS["lesson.5"].answer(summary)):
        st.markdown(lesson.paths_sentence(n_blocks, summary))
        st.plotly_chart(shared_figure(paths_figure, lesson.unrolled_paths(n_blocks)), key="lesson_paths")
    return n_blocks


def _trained_pair(header: str) -> tuple[str, str, lesson.TrainedPair]:
    """Steps 6-8's trained pair; without one, the button that trains it, and the page stops there."""
    pair_id = lesson.choose_pair()
    pair_runs = "" if pair_id == lesson.DEMO_PAIR else str(runs_dir())
    if pair_id is None:
        st.header(header)
        pair_config = lesson.pair_race()
        st.markdown(
            "Steps 6-8 need a plain net and its residual twin that have both *learned*: a net still at chance sits "
            "at an untrained point, its landscape says nothing about trained nets and it cannot lose accuracy in a "
            f"lesion. The lesson trains Plain-20 and ResNet-20 on Shapes ({pair_config.steps} steps, peak learning "
            f"rate {pair_config.lr} after {pair_config.warmup_steps} warm-up steps, cosine decay, width "
            f"{pair_config.width}, {pair_config.image_size} px): the presets' constant 0.01 leaves Plain-20 at chance "
            "for hundreds of steps.")
        _race(pair_config, f"Train Plain-20 and ResNet-20 (about {lesson.duration(_race_seconds('pair'))} on this "
                           "machine)", "lesson_train_pair")
        st.info("Steps 6, 7 and 8 are computed once the two nets are trained.")
        st.stop()
    return pair_id, pair_runs, _pair(pair_id, pair_runs)


def _step6(pair_id: str, pair_runs: str, pair: lesson.TrainedPair, record, degraded) -> tuple[int, float]:
    st.header("6. The loss landscape of two trained nets")
    st.caption("The trained nets: " + ("the embedded demo models (trained on Shapes by `make demo-models`)."
                                       if pair_id == lesson.DEMO_PAIR else
                                       f"Plain-20 and ResNet-20 of {_race_title(pair_id)}."))
    cols = st.columns(len(pair.models))
    for col, (label, acc) in zip(cols, pair.accuracy.items(), strict=True):
        col.metric(f"{label}: held-out accuracy", lesson.accuracy_text(acc),
                   help=f"On {pair.accuracy_sample}; chance is {pair.chance:.0%}.")
    if all(acc == acc for acc in pair.accuracy.values()):
        st.markdown(lesson.accuracy_sentence(pair.accuracy, pair.chance, sample=pair.accuracy_sample,
                                             degradation=degraded, step1_measured=record is not None))
    not_learned = [label for label in pair.models if not pair.learned(label)]
    if not_learned:
        st.warning(f"{', '.join(not_learned)} is not clearly above chance ({pair.chance:.0%}): what follows "
                   "describes an untrained point, not a trained net. Train the pair again with more steps on the "
                   "Training page.")
    grid = setting_widget(LESSON["lesson_grid"], "Grid (points per side)",
                          help="21 x 21 is the interactive version of the paper's 51 x 51.")
    write_settings({"lesson_grid": grid})
    forward_ms = _forward_ms(pair_id, pair_runs, LANDSCAPE_BATCH)
    passes = lesson.landscape_passes(grid) * len(pair.models)
    x, y = _landscape_batch(pair)
    kept = lesson.landscape_kept(pair, x, y, steps=grid, span=LANDSCAPE_SPAN, seed=LANDSCAPE_SEED)
    st.caption(lesson.landscape_cost_sentence(passes, forward_ms, batch=LANDSCAPE_BATCH, seed=LANDSCAPE_SEED,
                                              span=LANDSCAPE_SPAN, kept=kept))
    bar, tick = _progress("Evaluating the loss at grid points:")
    with queue_notice():
        surfaces, lines = _landscape(pair_id, pair_runs, grid, tick)
    bar.empty()
    if ask(QUESTIONS["lesson.6"], QUESTIONS["lesson.6"].answer(lines)):
        st.plotly_chart(for_session(surface_figure(surfaces)), key="lesson_surface")
        st.plotly_chart(for_session(line_figure(lines)), key="lesson_line")
        st.markdown(
            lesson.landscape_sentence(lines) + " The weights are moved along two random directions, each filter "
            "rescaled to the norm of the filter it perturbs (Li et al. 2018; batch-norm parameters stay put, running "
            "statistics fixed). What it shows: how the loss changes around these trained weights along two random "
            "directions. What it does not prove: a 2-D slice of a space with tens of thousands of dimensions can "
            "miss any direction that matters, and smoothness here is not by itself why training succeeds.")
    return grid, forward_ms


def _step7(pair_id: str, pair_runs: str, pair: lesson.TrainedPair, forward_ms: float) -> None:
    st.header("7. An ensemble of shallow paths: the lesion study")
    seconds = lesson.lesion_seconds(pair, MAX_REMOVED, SAMPLES, batch=LESION_BATCH, forward_ms=forward_ms,
                                    timed_batch=LANDSCAPE_BATCH)
    with st.spinner(f"Removing blocks (about {lesson.duration(seconds)})..."), queue_notice():
        studies, curves = _lesion(pair_id, pair_runs)
    st.markdown(
        "Veit et al. 2016 deleted single blocks from a trained ResNet at test time: the error barely moved, except "
        "at downsampling blocks; deleting a layer of a plain net gave chance. Here each block is removed in turn (a "
        "residual block keeps its shortcut; a plain block becomes the identity, and is not removable where it "
        "changes the shape).")
    if ask(QUESTIONS["lesson.7"], QUESTIONS["lesson.7"].answer(studies)):
        st.markdown(lesson.lesion_sentence(
            studies, pair.chance, sample=f"{LESION_BATCH} held-out Shapes images (not step 6's "
                                         f"{pair.accuracy_images:,}, so the accuracy with every block can differ)"))
        st.plotly_chart(for_session(study_figure(studies, chance=pair.chance)), key="lesson_lesion")
        st.plotly_chart(for_session(curve_figure(curves, chance=pair.chance)), key="lesson_lesion_curve")
        st.caption(f"The curve removes k random removable blocks together ({SAMPLES} sets per k, seeded), k = 1 "
                   f"to {MAX_REMOVED}; bars show the range over the sets.")


def _step8(pair_id: str, pair_runs: str) -> None:
    st.header("8. What the net looks at")
    with st.spinner(f"Grad-CAM on {SHAPES_CHECK_IMAGES} held-out images..."), queue_notice():
        overlays, pointing, captions = _gradcam(pair_id, pair_runs)
    st.markdown(
        "Grad-CAM of the trained ResNet-20 for each image's true class, on held-out Shapes images (never trained "
        "on); the white outline is the object's mask. The pointing game counts how often the map's peak falls on "
        f"the object, over the first {SHAPES_CHECK_IMAGES} held-out images: the sample of the Grad-CAM page's "
        "localisation check, so both show the same number for the same model.")
    if ask(QUESTIONS["lesson.8"], QUESTIONS["lesson.8"].answer(pointing)):
        st.image(overlays, caption=captions, width=140)
        st.plotly_chart(for_session(pointing_figure(pointing)), key="lesson_pointing")


st.title("Why residuals work")
# A shared link's settings (explorer_ui.url_params), on the session's first run only; defaults via session state.
linked = take_settings(LESSON)
st.caption(f"A lesson in eight steps. Steps 2-5 use their own small CIFAR nets ({lesson.label(ARCH)} and friends, "
           "seeded), whatever the sidebar says; steps 1 and 6-8 use nets trained here on Shapes (ordinary runs, "
           "trained from this page when missing). Every number below is measured.")
on_screen = _presenter_step() if presenting() else None  # presenter view: one step per screen


def _shows(step: int) -> bool:
    return on_screen is None or on_screen == step


record, degraded = _step1() if _shows(1) else (None, None)
if _shows(2):
    _step2()
zero_init = _step3() if _shows(3) else _held("lesson_zero_init")
if _shows(4):
    _step4()
n_blocks = _step5() if _shows(5) else _held("lesson_blocks")
grid = _held("lesson_grid")
if any(_shows(step) for step in (6, 7, 8)):
    pair_id, pair_runs, pair = _trained_pair("6. The loss landscape of two trained nets")
    if _shows(6):
        grid, forward_ms = _step6(pair_id, pair_runs, pair, record, degraded)
    else:
        forward_ms = _forward_ms(pair_id, pair_runs, LANDSCAPE_BATCH)
    if _shows(7):
        _step7(pair_id, pair_runs, pair, forward_ms)
    if _shows(8):
        _step8(pair_id, pair_runs)
if on_screen is not None:  # presenter view: the step alone; the link and notebook keep the lesson's settings
    notebook_button("why-residuals", {"lesson_zero_init": zero_init, "lesson_blocks": n_blocks, "lesson_grid": grid})
    st.stop()

st.divider()
st.subheader("The same instruments on any trained net")


@st.cache_resource(show_spinner=False, max_entries=4)
def _any_plan(weights: str, dataset: str, steps: int) -> lesson.AnyNetPlan:
    with heavy_slot("lesson: costing a trained model"):
        return lesson.plan_any(lesson.open_trained(weights), dataset=None if dataset == "recorded" else dataset,
                               steps=steps, landscape_batch=LANDSCAPE_BATCH, lesion_batch=LESION_BATCH,
                               max_removed=MAX_REMOVED, samples=SAMPLES, seed=LANDSCAPE_SEED)


@st.cache_data(show_spinner=False, max_entries=4)
def _any_measure(weights: str, dataset: str, steps: int, _on_progress=None) -> lesson.AnyNetResult:
    plan = _any_plan(weights, dataset, steps)
    with heavy_slot("lesson: landscape and lesions of a trained model"):
        return lesson.measure_any(plan, on_progress=_on_progress)


labels = {m.weights: m.label for m in lesson.trained_models()}
if "lesson_any_model" in linked and st.session_state.get("lesson_any_model") not in labels:
    refuse("The link's trained model is not among this server's trained models; the first one is offered.",
           linked["lesson_any_model"])
    del st.session_state["lesson_any_model"]
weights = setting_widget(LESSON["lesson_any_model"], "Trained model: a run's checkpoint, an uploaded checkpoint or an "
                         "embedded demo", options=list(labels), format_func=labels.get)
any_cols = st.columns(3)
any_grid = setting_widget(LESSON["lesson_any_grid"], "Grid", container=any_cols[0])
any_data = setting_widget(LESSON["lesson_any_data"], "Images", container=any_cols[1],
                                 format_func=lambda d: "the data set it was trained on" if d == "recorded" else d)
write_settings({"lesson_any_grid": any_grid, "lesson_any_data": any_data,
                **({"lesson_any_model": weights} if weights else {})}, drop=[] if weights else ["lesson_any_model"])
notebook_button("why-residuals", {"lesson_zero_init": zero_init, "lesson_blocks": n_blocks, "lesson_grid": grid,
                                  "lesson_any_grid": any_grid, "lesson_any_data": any_data,
                                  **({"lesson_any_model": weights} if weights else {})})
plan = None
if weights is None:
    st.info("No trained model yet: train a race on the Training page, or upload a checkpoint in the sidebar.")
else:
    try:
        plan = _any_plan(weights, any_data, any_grid)
    except ValueError as error:  # an unreadable checkpoint, an unknown data set, over the memory budget
        st.error(str(error))
    else:
        st.caption(plan.sentence())
request = (weights, any_data, any_grid)
if any_cols[2].button("Measure its landscape and lesions", key="lesson_any_run", disabled=plan is None):
    st.session_state["lesson_any_request"] = request
if plan is not None and st.session_state.get("lesson_any_request") == request:
    try:
        bar, tick = _progress("Forward passes:")
        with queue_notice():
            result = _any_measure(weights, any_data, any_grid, tick)
        bar.empty()
    except ValueError as error:  # the data set is not on this machine, or its classes are not the model's
        st.error(str(error))
    else:
        st.markdown(result.headline())
        st.plotly_chart(for_session(surface_figure(result.surface)), key="lesson_any_surface")
        st.plotly_chart(for_session(line_figure(result.line)), key="lesson_any_line")
        st.plotly_chart(for_session(study_figure(result.study, chance=result.chance)), key="lesson_any_lesion")
        st.plotly_chart(for_session(curve_figure(result.curve, chance=result.chance)), key="lesson_any_curve")
