"""Activations: what every layer of the chosen net computes on one image, and how it compares with its twin."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st
import torch
from explorer_ui.budget import stop_on_refusal
from explorer_ui.figures import shared_figure, shared_result
from explorer_ui.image_source import ImageSourceKeys, domain_notice, pick_image
from explorer_ui.keys import choice_key
from explorer_ui.notebook_button import notebook_button
from explorer_ui.notices import refuse
from explorer_ui.page_state import setting_widget
from explorer_ui.queue_notice import queue_notice
from explorer_ui.sidebar import ModelChoice, current_choice, get_model
from explorer_ui.url_params import take_settings, write_settings
from explorer_ui.weights_picker import effective_weights
from PIL import Image

from resnet_core.data import make_shapes
from resnet_core.images import sample_images, to_pil
from resnet_core.job_queue import heavy_slot
from resnet_core.page_specs import ACT_SHAPES_COUNT, ACTIVATIONS
from resnet_core.plots.instruments import (
    activation_depth_figure,
    depth_strip_figure,
    feature_map_figure,
    histogram_heatmap,
)
from resnet_core.plots.style import fmt_value
from resnet_core.probes import (
    BN_MODE_SENTENCES,
    BN_MODES,
    DEFAULT_BINS,
    DEFAULT_HIST_RANGE,
    MAX_HIST_VALUES,
    FeatureMaps,
    activation_profile,
    bn_train_flag,
    compare_activations,
    default_bn_mode,
    image_batch,
    spread_summary,
)
from resnet_core.weights import preprocessing_for

MAX_CHANNELS = 16
MAX_SIDE = 32
SOURCES = {"photo": "Sample photo", "shapes": "Shapes sample", "upload": "Upload"}
IMAGE_KEYS = ImageSourceKeys(source="act_source", photo="act_photo", shape="act_shape", upload="act_upload")


@st.cache_data(show_spinner=False, max_entries=8)
def _strip(key: tuple, image_key: str, batch: int, bn: str, _choice: ModelChoice, _x: torch.Tensor
           ) -> tuple[pd.DataFrame, dict[str, FeatureMaps]]:
    model = get_model(_choice)
    with heavy_slot("activations"):
        rec = activation_profile(model, _x, "taps", keep="maps", max_channels=MAX_CHANNELS, max_side=MAX_SIDE,
                                 train=bn_train_flag(bn))
    return rec.stats(), rec.maps


@st.cache_data(show_spinner=False, max_entries=8)
def _compare(key: tuple, image_key: str, batch: int, bn: str, labels: tuple[str, str], _choice: ModelChoice,
             _twin: ModelChoice, _x: torch.Tensor) -> tuple[pd.DataFrame, pd.DataFrame]:
    model, twin = get_model(_choice), get_model(_twin)
    with heavy_slot("activations of the twin"):
        return compare_activations(model, twin, _x, "blocks", labels=labels, train=bn_train_flag(bn))


@st.cache_data(show_spinner=False)
def _shapes(size: int):
    return make_shapes(ACT_SHAPES_COUNT, image_size=size, seed=0)


@st.cache_resource(show_spinner=False)
def _companions() -> list[tuple[str, Image.Image]]:
    """The images that keep the chosen one company in a batch: the sample photos, then the Shapes images."""
    pool = _shapes(64)
    return ([(f"photo:{name}", image) for name, image in sample_images().items()]
            + [(f"shapes:{i}", to_pil(pool.images, i)) for i in range(len(pool.labels))])


def _step(offset: int, layers: list[str]) -> None:
    current = st.session_state.get("act_layer", layers[0])
    index = layers.index(current) if current in layers else 0
    st.session_state["act_layer"] = layers[max(0, min(len(layers) - 1, index + offset))]


def _strip_clicked() -> None:
    event = st.session_state.get("act_strip") or {}
    points = (event.get("selection") or {}).get("points") or []
    if points and points[0].get("customdata"):
        st.session_state["act_layer"] = points[0]["customdata"]


choice = current_choice()
linked = take_settings(ACTIVATIONS)  # a shared link's page settings, on the session's first run only
st.title(f"Activations of {choice.label}")
st.markdown("Every tap point of every block, on a batch led by the image you pick: the feature maps of a layer "
            "you pick, and how mean, spread and the share of switched-off units evolve with depth in this net and "
            "its twin.")

# A checkpoint holds one trained net; its twin is compared at initialisation (and labelled so).
twin_choice = replace(choice.twin(), weights="random")
trained = effective_weights(choice.weights, choice.name, choice.options()) != "random"
# Batch norm's default follows the weights: a new kind of weights resets it, a link's choice wins.
if st.session_state.get("_act_bn_trained") != trained:
    st.session_state["_act_bn_trained"] = trained
    if "act_bn" not in linked:
        st.session_state["act_bn"] = default_bn_mode(trained)
if st.session_state.get("act_bn") not in BN_MODES:
    st.session_state["act_bn"] = default_bn_mode(trained)
if st.session_state.get("act_batch") not in ACTIVATIONS["act_batch"].choices:
    st.session_state["act_batch"] = 4 if choice.spec.stem == "imagenet" else 8

source_col, bn_col = st.columns([1, 1])
with source_col:
    picked = pick_image(IMAGE_KEYS, {kind: kind for kind in SOURCES}, label="Input", labels=SOURCES,
                        photo_label="Photo (bundled with scikit-image)", shapes=lambda: _shapes(64),
                        shapes_title="Shapes image", fallback_photo="chelsea")
with bn_col:
    bn = setting_widget(ACTIVATIONS["act_bn"], "Batch norm", format_func=BN_MODES.get) or \
        default_bn_mode(trained)
    batch = setting_widget(ACTIVATIONS["act_batch"], "Batch size",
                             help="The chosen image first, then the sample photos and Shapes images. Statistics "
                                  "are over the whole batch; the feature maps are the chosen image's.")
    why = ("random weights: their running statistics (mean 0, variance 1) would normalise nothing" if not trained
           else "trained weights: their running statistics are the ones they were trained to use")
    st.caption(f"Here {BN_MODE_SENTENCES[bn]}. The default for {why}.")
image, image_key, image_label = picked.image, picked.key, picked.label
net_labels = (choice.label + (" (trained)" if trained else ""),
              twin_choice.label + (" (at initialisation)" if trained else ""))
with stop_on_refusal():
    with st.spinner(f"Loading {choice.label}..."):
        model = get_model(choice)
    domain_notice(model, picked, IMAGE_KEYS, {kind: kind for kind in SOURCES})
    prep = preprocessing_for(model)
    x = image_batch(image, prep, batch, [img for key, img in _companions() if key != image_key])
    with st.spinner(f"Recording the activations of {choice.label}..."), queue_notice():
        strip, maps = _strip(choice_key(choice), image_key, batch, bn, choice, x)
        stats, hists = _compare(choice_key(choice), image_key, batch, bn, net_labels, choice, twin_choice, x)

left, right = st.columns([1, 3])
batch_words = "alone" if batch == 1 else f"first of a batch of {batch}"
left.image(image, caption=f"{image_label} ({batch_words}); the model sees {prep.crop}x{prep.crop} px "
                          f"({prep.describe()})", width="stretch")

layers = list(strip["layer"])
labels = dict(zip(strip["layer"], strip["label"], strict=True))
if st.session_state.get("act_layer") not in layers:
    if "act_layer" in linked:
        refuse(f"The link's layer is not a layer of {choice.label}; the page's default layer is shown.",
               linked["act_layer"])
    st.session_state["act_layer"] = next((n for n in layers if n.endswith("tap_out")), layers[0])

with right:
    st.subheader("Pick a layer")
    prev_col, next_col, _ = st.columns([1, 1, 2])
    prev_col.button("Previous layer", key="act_prev", on_click=_step, args=(-1, layers), width="stretch",
                    disabled=st.session_state["act_layer"] == layers[0])
    next_col.button("Next layer", key="act_next", on_click=_step, args=(1, layers), width="stretch",
                    disabled=st.session_state["act_layer"] == layers[-1])
    layer = setting_widget(ACTIVATIONS["act_layer"], "Depth strip: stem, then every tap point of every block",
                           options=layers, format_func=labels.get)
    st.plotly_chart(shared_figure(depth_strip_figure, strip, layer), key="act_strip", on_select=_strip_clicked,
                    selection_mode="points")

row = strip.set_index("layer").loc[layer]
st.subheader(f"Feature maps at {labels[layer]}  ({row['shape']})")
if layer in maps:
    fm = maps[layer]
    _, channels, height, width = fm.shape
    shown = fm.maps.shape
    st.caption(f"Showing {shown[1]} of {channels} channels: {fm.rule}. Each {height}x{width} map is "
               f"{'average-pooled to ' + str(shown[2]) + 'x' + str(shown[3]) if (shown[2], shown[3]) != (height, width) else 'shown at full size'}; "
               "colours are per tile.")
    st.plotly_chart(shared_figure(feature_map_figure, fm), key="act_maps")
else:
    st.info(f"{labels[layer]} has no spatial maps to show.")

st.subheader("Statistics across depth: this net and its twin")
nets = list(dict.fromkeys(stats["net"]))
TRENDS = {"grows": "grows", "shrinks": "shrinks", "stays": "stays about the same"}
measured = "; ".join(f"{row.net}: the std {TRENDS[row.trend]}, {fmt_value(row.first_std)} after the first block and "
                     f"{fmt_value(row.last_std)} after the last" for row in shared_result(spread_summary, stats).itertuples())
st.markdown(
    "One point per block output. In a residual net each block *adds* F(x) to its input, so a block can keep "
    "its input's signal and add to it; a plain net has to re-create its signal in every block. Whether the "
    "spread grows, shrinks or stays with depth depends on the weights and the image, so it is measured, not "
    "assumed. Dead units (exact zeros after the ReLU) show how much of each layer is switched off. Measured here "
    f"on this batch: {measured}.")
st.plotly_chart(shared_figure(activation_depth_figure, stats), key="act_depth")

st.subheader("Activation histograms over depth (the \"colorful dimension\")")
low, high = -DEFAULT_HIST_RANGE, DEFAULT_HIST_RANGE
st.caption(f"Each column is one block output, each row one of {DEFAULT_BINS} fixed bins from {low:g} to {high:g} "
           "(the outermost bins also hold everything beyond); colour is the log10 share of values in the bin "
           f"(a block output with more than {MAX_HIST_VALUES:,} values is histogrammed on an evenly strided sample "
           "of that many). "
           "A bright band at 0 is the ReLU's switched-off units; mass creeping to the edges is a signal that grows.")
heat_cols = st.columns(len(nets))
for col, net in zip(heat_cols, nets, strict=True):
    with col:
        st.plotly_chart(shared_figure(histogram_heatmap, hists[hists["net"] == net], title=net), key=f"act_heat_{nets.index(net)}")

source = st.session_state.get("act_source") or "photo"
shown = {"act_source": source, "act_batch": batch, "act_bn": bn, "act_layer": layer}
if source == "photo":
    shown["act_photo"] = st.session_state["act_photo"]
elif source == "shapes":
    shown["act_shape"] = int(st.session_state["act_shape"])
write_settings(shown, drop=[name for name in ("act_photo", "act_shape") if name not in shown])
notebook_button("activations", shown)
