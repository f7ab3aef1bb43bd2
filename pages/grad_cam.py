"""Grad-CAM: upload a photo (or pick one), see the top classes and where the net looks for any class and layer."""

from __future__ import annotations

import pandas as pd
import streamlit as st
import torch
from explorer_ui.budget import offer_fit
from explorer_ui.figures import shared_figure
from explorer_ui.image_source import ImageSourceKeys, domain_notice, pick_image
from explorer_ui.keys import choice_key
from explorer_ui.notebook_button import notebook_button
from explorer_ui.notices import refuse
from explorer_ui.page_state import setting_widget
from explorer_ui.queue_notice import queue_notice
from explorer_ui.sidebar import current_choice, get_model
from explorer_ui.url_params import take_settings, write_settings

from resnet_core import cam
from resnet_core.card import card_of
from resnet_core.data import SHAPES_CLASSES, shapes_split
from resnet_core.errors import WeightsError
from resnet_core.images import model_view, preprocess, preprocess_mask
from resnet_core.job_queue import heavy_slot
from resnet_core.page_specs import GC_SHAPES_COUNT, GRAD_CAM
from resnet_core.plots.cam import cam_figure, cascade_figure, layers_figure, pointing_figure, topk_figure
from resnet_core.plots.cam_methods import checks_figure, methods_grid_figure
from resnet_core.plots.cam_trust import trust_figure
from resnet_core.plots.style import fmt_points
from resnet_core.settings import BudgetError
from resnet_core.weights import class_names_for, preprocessing_for
from resnet_core.weights.demo import DEMO_CHECK_MODEL, default_image_for, load_demo_model

SOURCES = {"photo": "Sample photo", "upload": "Upload", "shapes": "Shapes image"}  # widget value (= kind) -> label
IMAGE_KEYS = ImageSourceKeys(source="gc_source", photo="gc_sample", shape="gc_shape", upload="gc_upload")
ANY_CLASS = "(one of the top 5)"
FAITHFULNESS_STEPS = 20  # deletion / insertion steps per map
METHOD_CHECK_IMAGES, METHOD_CASCADE_IMAGES = 32, 4  # every method is slower than Grad-CAM: fewer images
RANKING_COLUMNS = ["rank", "label", "seconds", "insertion_auc", "deletion_auc", "auc_difference", "average_drop",
                   "increase_in_confidence"]
RANKING_CONFIG = {
    "label": st.column_config.TextColumn("method"),
    "seconds": st.column_config.NumberColumn("time (s)", format="%.3f"),
    "insertion_auc": st.column_config.NumberColumn("insertion AUC", format="%.3f"),
    "deletion_auc": st.column_config.NumberColumn("deletion AUC", format="%.3f"),
    "auc_difference": st.column_config.NumberColumn("insertion - deletion", format="%+.3f"),
    "average_drop": st.column_config.NumberColumn("average drop (%)", format="%.1f"),
    "increase_in_confidence": st.column_config.NumberColumn("increase in confidence", format="%.0f"),
    "road_morf": st.column_config.NumberColumn("ROAD most relevant first", format="%.3f"),
    "road_lerf": st.column_config.NumberColumn("ROAD least relevant first", format="%.3f"),
    "road_combined": st.column_config.NumberColumn("ROAD combined", format="%+.3f"),
}


@st.cache_resource(show_spinner=False, max_entries=1)
def _demo_check_model() -> torch.nn.Module:
    # Shared read-only, like every cached model.
    return load_demo_model(DEMO_CHECK_MODEL)


@st.cache_data(show_spinner=False, max_entries=4)
def _shapes_pool(image_size: int):
    return shapes_split("test", GC_SHAPES_COUNT, image_size=image_size)


# Shared by every session: a class opening the same view computes it once. Keys: the model's choice_key and
# the image's key (sample name, upload digest or Shapes index); the model and tensor themselves are not hashed.
@st.cache_data(show_spinner=False, max_entries=32)
def _predict(key: tuple, image_key: str, _model: torch.nn.Module, _x: torch.Tensor,
             _names: list[str]) -> pd.DataFrame:
    with heavy_slot("Grad-CAM top 5"):
        return cam.predict(_model, _x, _names, k=5)


@st.cache_data(show_spinner=False, max_entries=32)
def _trust_plan(key: tuple, image_key: str, layer: str, methods: tuple[str, ...], samples: int,
                _model: torch.nn.Module, _x: torch.Tensor) -> pd.DataFrame:
    with heavy_slot("Grad-CAM trust plan"):
        return cam.trust_plan(_model, _x, methods, layer, samples)


def _trust_section(model: torch.nn.Module, x: torch.Tensor, names: list[str], target: int, layer: str,
                   image_key: str, on_shapes: bool) -> tuple[list[str], int]:
    """Which map to trust by Quantus's six categories: the plan said first, then the table and the verdict.
    Returns the methods and the noisy copies chosen (the page's link and notebook carry them)."""
    st.subheader("Which map to trust, by six standards")
    st.markdown(
        "Quantus's six categories of evidence, measured on this image: **faithfulness** (deletion, insertion, "
        "average drop), **robustness** (how much the map moves under small input noise), **localisation** "
        "(relevance on the object: needs an object mask, so a held-out Shapes image), **complexity** (how "
        "concentrated the map is), **randomisation** (does the map change when the weights are randomised, or "
        "for another class?) and **axiomatic** (completeness for integrated gradients and LRP; invariance to a "
        "shifted input).")
    methods = setting_widget(GRAD_CAM["gc_trust_methods"], "Methods to score", format_func=cam.METHODS.get)
    samples = setting_widget(GRAD_CAM["gc_trust_samples"], "Noisy copies for robustness")
    if methods:
        plan = _trust_plan(choice_key(current_choice()), image_key, layer, tuple(methods), samples, model, x)
        st.caption(f"For '{names[target]}' at {layer}. {cam.trust_plan_sentence(plan)}")
    request = (choice_key(current_choice()), image_key, target, layer, tuple(methods), samples)
    if st.button("Score trust", key="gc_trust", disabled=not methods):
        bar = st.progress(0.0, text="Starting...")
        prep = preprocessing_for(model)
        mask = preprocess_mask(_shapes_pool(_shapes_size(prep)).masks[st.session_state[IMAGE_KEYS.shape]], prep) \
            if on_shapes else None
        try:
            with queue_notice(), heavy_slot("Grad-CAM trust scores"):
                st.session_state["gc_trust_table"] = (request, cam.trust_scores(
                    model, x, methods, target, layer, masks=mask, samples=samples,
                    progress=lambda done, total: bar.progress(done / total, text=f"Scoring ({done}/{total})")))
        except BudgetError as error:
            offer_fit(error)
        except (cam.CamError, WeightsError) as error:
            st.error(str(error))
        bar.empty()
    scored = st.session_state.get("gc_trust_table")
    if scored is not None and scored[0] == request:
        st.plotly_chart(shared_figure(trust_figure, scored[1]), key="gc_trust_table_figure")
        st.markdown(cam.trust_verdict(scored[1]))
        for note in scored[1].attrs["notes"]:
            st.caption(note)
    elif scored is not None:
        st.caption("The class, layer, image or methods changed: press the button to score again.")
    return methods, samples


def _shapes_size(prep) -> int:
    """The side of the Shapes images offered to a model of this preprocessing (its own crop, up to 64 px)."""
    return prep.crop if prep.crop <= 64 else 32


def _refuse_linked(name: str, sentence: str) -> None:
    """A link's well-formed value that this model or image cannot take: our sentence, the value verbatim."""
    refuse(sentence, linked[name])


@st.cache_data(show_spinner=False, max_entries=32)
def _explain(key: tuple, image_key: str, target: int, layer: str, method: str, _model: torch.nn.Module,
             _x: torch.Tensor, _names: list[str]) -> cam.Explanation:
    with heavy_slot(f"Grad-CAM ({method})"):
        return cam.explain(_model, _x, target, layer, method, class_names=_names)


def _show_comparison(comparison: cam.MethodComparison, view, colormap: str, opacity: float) -> None:
    """Every method's map side by side, which to trust, and the ranking table."""
    for note in comparison.notes:
        st.info(note)
    st.plotly_chart(shared_figure(methods_grid_figure, comparison, view, colormap, opacity), key="gc_grid")
    st.markdown(f"**Which to trust:** {comparison.sentence}")
    columns = RANKING_COLUMNS + [c for c in ("road_morf", "road_lerf", "road_combined") if c in comparison.table]
    st.dataframe(comparison.table[columns], hide_index=True, column_config=RANKING_CONFIG)
    st.caption("Ranked by insertion minus deletion AUC (Petsiuk et al. 2018): put the most salient pixels back "
               "first (insertion, higher is better) or take them away first (deletion, lower is better) and "
               "follow the class probability. Average drop and increase in confidence (Chattopadhyay et al. "
               "2018) multiply the image by the map. ROAD (Rong et al. 2022) removes pixels and fills them from "
               "their neighbours (lower after removing the most relevant, higher after the least). Times are this "
               "server's, for this image.")


def _show_localisation(report: cam.LocalisationReport, checked_label: str) -> None:
    """The pointing game's numbers and chart, example maps, and the randomisation cascade."""
    pointing = report.pointing
    m1, m2, m3 = st.columns(3)
    m1.metric("Pointing game (measured here)", f"{pointing.hit_rate:.1%}",
              f"{fmt_points(pointing.hit_rate - pointing.chance)} vs chance",
              help="Percentage points: the hit rate minus the chance rate.")
    m2.metric("Chance (random point)", f"{pointing.chance:.1%}")
    m3.metric(f"Accuracy on these {len(pointing.table)} images", f"{pointing.accuracy:.1%}")
    st.plotly_chart(shared_figure(pointing_figure, pointing.summary()), key="gc_pointing")
    st.caption(f"{checked_label}, on {report.sample_text()}, Grad-CAM at {pointing.layer}, tolerance "
               f"{pointing.tolerance} px.")
    st.image(report.examples, caption=report.example_labels, width=150)
    st.plotly_chart(shared_figure(cascade_figure, report.cascade), key="gc_cascade")
    st.caption(report.cascade_sentence())


def _show_method_checks(table) -> None:
    """Both checks for every method: the chart, the table, and what to read in it."""
    st.plotly_chart(shared_figure(checks_figure, table), key="gc_checks_methods")
    st.dataframe(table[["label", "pointing", "chance", "cascade_top", "cascade_all"]], hide_index=True,
                 column_config={
                     "label": st.column_config.TextColumn("method"),
                     "pointing": st.column_config.NumberColumn("pointing game", format="percent"),
                     "chance": st.column_config.NumberColumn("chance", format="percent"),
                     "cascade_top": st.column_config.NumberColumn("cascade: head + last stage random", format="%.2f"),
                     "cascade_all": st.column_config.NumberColumn("cascade: all random", format="%.2f")})
    st.caption(f"On the first {METHOD_CHECK_IMAGES} of the localisation check's {cam.SHAPES_CHECK_IMAGES} images "
               f"({METHOD_CASCADE_IMAGES} for the cascade), so Grad-CAM's row can differ from the check's numbers. A "
               "method to trust points at the object far above chance and its map changes (rank correlation towards "
               "0) once the weights are random.")


def _pick_class(table, names: list[str], image_key: str) -> tuple[int, int | str]:
    """The class to explain: one of the image's top 5 (its top class for a new image), or any class pinned below;
    a link's class that this model or image cannot take is refused with a sentence. Returns (target, other)."""
    options = [int(i) for i in table["index"]]
    if st.session_state.get("gc_other", ANY_CLASS) not in (ANY_CLASS, *range(len(names))):
        if "gc_other" in linked:  # else a class pinned on a model with more classes: unpinned quietly
            _refuse_linked("gc_other", f"The link's class is not one of this model's {len(names):,} classes; none "
                                       "is pinned.")
        st.session_state["gc_other"] = ANY_CLASS
    # A new image: explain its own top-1 class, unless a class was pinned in "...or any class" (or a link chose).
    if st.session_state.get("gc_image_seen") != image_key:
        st.session_state["gc_image_seen"] = image_key
        if isinstance(st.session_state.get("gc_other", ANY_CLASS), str) and "gc_class" not in linked:
            st.session_state["gc_class"] = options[0]
    if st.session_state.get("gc_class") not in options:
        if "gc_class" in linked:
            _refuse_linked("gc_class", "The link's class is not among this image's top 5; its top class is "
                                       "explained.")
        st.session_state["gc_class"] = options[0]
    target = setting_widget(GRAD_CAM["gc_class"], "Explain class", options=options,
                            format_func=lambda i: f"{names[i]} ({i})", help="The top-5 classes; pick any other class below.")
    other = setting_widget(GRAD_CAM["gc_other"], "...or any class", options=[ANY_CLASS] + list(range(len(names))),
                           format_func=lambda i: i if isinstance(i, str) else f"{names[i]} ({i})")
    if not isinstance(other, str):
        target = int(other)
    return target, other


st.title("Grad-CAM: where does the net look?")
choice = current_choice()
linked = take_settings(GRAD_CAM)  # a shared link's page settings, on the session's first run only
try:
    model = get_model(choice)
except ValueError as error:  # WeightsError (offline, wrong checkpoint) and impossible options are ValueErrors
    st.error(str(error))
    st.stop()
names = class_names_for(model)
prep = preprocessing_for(model)
st.caption(f"{getattr(model, 'arch_label', choice.label)} with {getattr(model, 'weights_label', 'random init')} "
           f"weights; input: {prep.describe()}.")
if getattr(model, "weights_id", "random") == "random":
    st.info("These are randomly initialised weights: the classes and maps mean nothing yet. Choose torchvision "
            "ImageNet weights or a checkpoint in the sidebar's Weights box.", icon=":material/casino:")

# ------------------------------------------------------------------------------------------------ the image
shapes_size = _shapes_size(prep)
# A net trained on Shapes (the embedded demo) starts on a Shapes image it knows, a photo net on a photo.
picked = pick_image(IMAGE_KEYS, {kind: kind for kind in SOURCES}, labels=SOURCES,
                    shapes=lambda: _shapes_pool(shapes_size), shapes_title="Held-out Shapes image",
                    shapes_key=f"shapes:{prep.crop}", fallback_photo=None, default=default_image_for(model),
                    chosen="gc_source" in linked)
image, image_key = picked.image, picked.key
domain_notice(model, picked, IMAGE_KEYS, {kind: kind for kind in SOURCES})
if picked.shape_class is not None:
    st.caption(f"This image shows a {picked.shape_class}.")

x = preprocess(image, prep)
view = model_view(image, prep)

# ----------------------------------------------------------------------------------------- top-5 and class
with queue_notice():
    table = _predict(choice_key(choice), image_key, model, x, names)
left, right = st.columns([1, 2])
with left:
    st.subheader("Top 5")
    st.plotly_chart(shared_figure(topk_figure, table), key="gc_topk")
    st.dataframe(table[["rank", "class", "probability"]], hide_index=True,
                 column_config={"probability": st.column_config.NumberColumn(format="percent")})
    target, other = _pick_class(table, names, image_key)
    method = setting_widget(GRAD_CAM["gc_method"], "Method", format_func=cam.METHODS.get)
    layers = cam.layer_choices(model)
    if st.session_state.get("gc_layer") not in layers:  # the default (the last block), or a layer of another net
        if "gc_layer" in linked:
            _refuse_linked("gc_layer", f"The link's layer is not a layer of {choice.label}; the last block is "
                                       "explained.")
        st.session_state["gc_layer"] = cam.default_layer(model)
    layer = setting_widget(GRAD_CAM["gc_layer"], "Layer", options=layers, disabled=method not in cam.LAYER_METHODS,
                           help="Every block and tap point; the default is the last block. Integrated gradients "
                              "works on the input pixels, so it has no layer.")
    opacity = setting_widget(GRAD_CAM["gc_opacity"], "Opacity")
    colormap = setting_widget(GRAD_CAM["gc_cmap"], "Colormap")

source = picked.source
shown = {"gc_method": method, "gc_layer": layer, "gc_opacity": opacity, "gc_cmap": colormap}
if source != "upload":  # an upload cannot travel in a link: the link opens on the default image instead
    shown["gc_source"] = source
    shown["gc_sample" if source == "photo" else "gc_shape"] = st.session_state[IMAGE_KEYS.photo if source == "photo"
                                                                                else IMAGE_KEYS.shape]
if not isinstance(other, str):
    shown["gc_other"] = int(other)
elif source != "upload":  # a top-5 choice belongs to its image
    shown["gc_class"] = target
write_settings(shown, drop=[n for n in ("gc_source", "gc_sample", "gc_shape", "gc_class", "gc_other")
                            if n not in shown])

try:
    with st.spinner(f"Computing {cam.METHODS[method]}..."), queue_notice():
        explanation = _explain(choice_key(choice), image_key, target, layer, method, model, x, names)
except BudgetError as error:  # over the memory budget: the sentence and a button for the nearest fit
    offer_fit(error)
    st.stop()
except (cam.CamError, WeightsError) as error:
    st.error(str(error))
    st.stop()
with right:
    for note in explanation.notes:  # e.g. integrated gradients scaled to the memory budget
        st.info(note)
    st.plotly_chart(shared_figure(cam_figure, explanation, view, colormap, opacity), key="gc_map")
    if explanation.no_positive_evidence:
        st.warning(explanation.message)
    st.caption(f"Score of '{explanation.class_name}': logit {explanation.score:.3f}. The map is normalised by its "
               f"maximum; its raw values (before normalising) are in the .npy download.")
    d1, d2, d3 = st.columns(3)
    stem = f"{method}-{(explanation.layer or 'input').replace('.', '_')}-class{explanation.class_index}"
    d1.download_button("Map (PNG, 16-bit)", cam.heatmap_png(explanation), f"{stem}.png", "image/png",
                       key="gc_dl_png")
    d2.download_button("Raw map (.npy)", cam.heatmap_npy(explanation), f"{stem}.npy", "application/octet-stream",
                       key="gc_dl_npy")
    d3.download_button("Overlay (PNG)", cam.image_png(cam.overlay(view, explanation.heatmap, colormap, opacity)),
                       f"{stem}-overlay.png", "image/png", key="gc_dl_overlay")

# ------------------------------------------------------------------------------------------ every method
st.subheader("Every method side by side")
chosen = setting_widget(GRAD_CAM["gc_methods"], "Methods", format_func=cam.METHODS.get)
try:
    channels = cam.layer_channels(model, layer, tuple(x.shape[1:]))
except cam.CamError:
    channels = 0
road = setting_widget(GRAD_CAM["gc_road"], "Also ROAD (Rong et al. 2022)",
                 help="Removes the most / least relevant pixels and fills them from their neighbours, so the shape "
                      "of the removal tells the model nothing. One sparse linear solve per method, percentile and "
                      "order: seconds per method at 224 px.")
cost_words = cam.methods_cost_sentence(chosen, steps=FAITHFULNESS_STEPS, road=road, layer=layer, channels=channels,
                                      height=x.shape[-2], width=x.shape[-1])
st.caption(f"For '{names[target]}' at {layer}, the class and layer chosen above. {cost_words}")
request = (choice_key(choice), image_key, target, layer, tuple(chosen), road)
if st.button("Compare the methods", key="gc_compare_methods", disabled=not chosen):
    bar = st.progress(0.0, text="Starting...")

    def report(stage: str, done: int, total: int) -> None:
        words = "Scoring faithfulness" if stage == "faithfulness" else f"Computing {cam.METHODS[stage]}"
        bar.progress(min(1.0, done / max(total, 1)), text=f"{words} ({done}/{total})")

    try:
        with queue_notice(), heavy_slot("Grad-CAM every method"):
            st.session_state["gc_comparison"] = (request, cam.compare_methods(
                model, x, target, layer, chosen, class_names=names, steps=FAITHFULNESS_STEPS, road=road,
                progress=report))
    except BudgetError as error:
        offer_fit(error)
    except (cam.CamError, WeightsError) as error:
        st.error(str(error))
    bar.empty()
stored = st.session_state.get("gc_comparison")
if stored is not None and stored[0] == request:
    _show_comparison(stored[1], view, colormap, opacity)
elif stored is not None:
    st.caption("The class, layer, image or methods changed: press the button to compare again.")

# ------------------------------------------------------------------------------------------ trust scores
trust_methods, samples = _trust_section(model, x, names, target, layer, image_key, picked.source == "shapes")

# --------------------------------------------------------------------------------------------- side by side
st.subheader("Layer by layer")
compare_layers = setting_widget(GRAD_CAM["gc_compare"], "Compare the last block of each stage")
if compare_layers:
    with st.spinner("Explaining every stage..."), queue_notice(), heavy_slot("Grad-CAM layer by layer"):
        stack = cam.explain_layers(model, x, target, method="gradcam", class_names=names)
    st.plotly_chart(shared_figure(layers_figure, stack, view, colormap, opacity), key="gc_layers")
    st.caption("Grad-CAM at the end of each stage, shallow to deep, for the same class; each title gives the map's "
               "own resolution before it is upsampled to the image.")

# ----------------------------------------------------------------------------------------- is the map right?
st.subheader("Is the map right?")
st.markdown(
    "Two checks on the built-in **Shapes** set, whose images come with object masks. **Pointing game** (Grad-CAM "
    "paper, section 6.1): for each held-out image, does the peak of the true class's map fall on the object "
    "(within the paper's 15 px at 224, scaled)? Compared with a random point's chance. **Randomisation "
    "cascade** (Adebayo et al. 2018): randomise the weights from the top layer down; a map that explains the "
    "model must change (its rank correlation with the trained map must fall).")
shapes_model = names == list(SHAPES_CLASSES)
# On by default for a Shapes model, impossible otherwise; a new kind of model resets it, a link's choice wins.
if st.session_state.get("_gc_check_for") != shapes_model:
    st.session_state["_gc_check_for"] = shapes_model
    if "gc_check_own" not in linked or not shapes_model:
        st.session_state["gc_check_own"] = shapes_model
use_own = setting_widget(GRAD_CAM["gc_check_own"], "Use the sidebar's model (a Shapes checkpoint)",
                         disabled=not shapes_model,
                    help="Otherwise the embedded demo ResNet-20, trained on Shapes by the training engine.")
write_settings({"gc_methods": chosen, "gc_road": road, "gc_trust_methods": trust_methods,
                "gc_trust_samples": samples, "gc_compare": compare_layers, "gc_check_own": use_own})
notebook_button("grad-cam", {**shown, "gc_source": source, "gc_methods": chosen, "gc_road": road,  # the upload too
                             "gc_trust_methods": trust_methods, "gc_trust_samples": samples,
                             "gc_compare": compare_layers, "gc_check_own": use_own})


def _checked_model() -> torch.nn.Module:
    return model if use_own else _demo_check_model()


# A check's results belong to the model checked: another sidebar model or the other choice of model hides them.
checked_for = (choice_key(choice), use_own)


check_one, check_all = st.columns(2)
if check_one.button("Run the localisation check", key="gc_check", icon=":material/target:"):
    try:
        checked = _checked_model()
        with st.spinner("Pointing game and randomisation cascade..."), queue_notice(), \
                heavy_slot("localisation check"):
            st.session_state["gc_report"] = (checked_for, card_of(checked).weights_label,
                                             cam.localisation_check(checked, colormap=colormap, opacity=opacity))
    except (cam.CamError, ValueError) as error:
        st.error(str(error))
kept = st.session_state.get("gc_report")
checked_label, report = kept[1:] if kept is not None and kept[0] == checked_for else (None, None)
if report is not None:
    _show_localisation(report, checked_label)

if check_all.button("Run both checks for every method", key="gc_check_methods", icon=":material/table:",
                    help=f"{METHOD_CHECK_IMAGES} held-out Shapes images for the pointing game, "
                         f"{METHOD_CASCADE_IMAGES} for the cascade, at the model's default layer."):
    try:
        bar = st.progress(0.0, text="Checking every method...")
        with queue_notice(), heavy_slot("localisation check, every method"):
            st.session_state["gc_method_checks"] = checked_for, cam.method_checks_on_sample(
                _checked_model(), METHOD_CHECK_IMAGES, METHOD_CASCADE_IMAGES,
                progress=lambda done, total: bar.progress(done / total, text=f"{done}/{total} methods checked"))
        bar.empty()
    except (cam.CamError, ValueError) as error:
        st.error(str(error))
kept = st.session_state.get("gc_method_checks")
method_table = kept[1] if kept is not None and kept[0] == checked_for else None
if method_table is not None:
    _show_method_checks(method_table)
