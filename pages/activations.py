"""Activations: what every layer of the chosen net computes on one image, and how it compares with its twin."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st
import torch
from explorer_ui.budget import offer_fit
from explorer_ui.figures import shared_figure, shared_result
from explorer_ui.heavy_notice import queue_notice
from explorer_ui.image_source import ImageSourceKeys, pick_image
from explorer_ui.keys import choice_key
from explorer_ui.sidebar import ModelChoice, current_choice, get_model
from explorer_ui.weights_picker import effective_weights

from resnet_core.data import make_shapes
from resnet_core.heavy import heavy_slot
from resnet_core.images import preprocess
from resnet_core.plots.instruments import (
    activation_depth_figure,
    depth_strip_figure,
    feature_map_figure,
    histogram_heatmap,
)
from resnet_core.probes import (
    DEFAULT_BINS,
    DEFAULT_HIST_RANGE,
    MAX_HIST_VALUES,
    FeatureMaps,
    activation_profile,
    compare_activations,
    spread_summary,
)
from resnet_core.settings import BudgetError
from resnet_core.weights import preprocessing_for

MAX_CHANNELS = 16
MAX_SIDE = 32
SHAPES_COUNT = 24
SOURCES = {"photo": "Sample photo", "shapes": "Shapes sample", "upload": "Upload"}
IMAGE_KEYS = ImageSourceKeys(source="act_source", photo="act_photo", shape="act_shape", upload="act_upload")


@st.cache_data(show_spinner=False, max_entries=8)
def _strip(key: tuple, image_key: str, _choice: ModelChoice, _x: torch.Tensor
           ) -> tuple[pd.DataFrame, dict[str, FeatureMaps]]:
    model = get_model(_choice)
    with heavy_slot("activations"):
        rec = activation_profile(model, _x, "taps", keep="maps", max_channels=MAX_CHANNELS, max_side=MAX_SIDE)
    return rec.stats(), rec.maps


@st.cache_data(show_spinner=False, max_entries=8)
def _compare(key: tuple, image_key: str, labels: tuple[str, str], _choice: ModelChoice, _twin: ModelChoice,
             _x: torch.Tensor) -> tuple[pd.DataFrame, pd.DataFrame]:
    model, twin = get_model(_choice), get_model(_twin)
    with heavy_slot("activations of the twin"):
        return compare_activations(model, twin, _x, "blocks", labels=labels)


@st.cache_data(show_spinner=False)
def _shapes(size: int):
    return make_shapes(SHAPES_COUNT, image_size=size, seed=0)


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
st.title(f"Activations of {choice.label}")
st.markdown("Every tap point of every block, on one image: the feature maps of a layer you pick, and how "
            "mean, spread and the share of switched-off units evolve with depth in this net and its twin.")

picked = pick_image(IMAGE_KEYS, {kind: kind for kind in SOURCES}, label="Input", labels=SOURCES,
                    photo_label="Photo (bundled with scikit-image)", shapes=lambda: _shapes(64),
                    shapes_title="Shapes image", fallback_photo="chelsea")
image, image_key, image_label = picked.image, picked.key, picked.label
# A checkpoint holds one trained net; its twin is compared at initialisation (and labelled so).
twin_choice = replace(choice.twin(), weights="random")
trained = effective_weights(choice.weights, choice.name, choice.options()) != "random"
net_labels = (choice.label + (" (trained)" if trained else ""),
              twin_choice.label + (" (at initialisation)" if trained else ""))
try:
    with st.spinner(f"Loading {choice.label}..."):
        model = get_model(choice)
    prep = preprocessing_for(model)
    x = preprocess(image, prep)
    with st.spinner(f"Recording the activations of {choice.label}..."), queue_notice():
        strip, maps = _strip(choice_key(choice), image_key, choice, x)
        stats, hists = _compare(choice_key(choice), image_key, net_labels, choice, twin_choice, x)
except BudgetError as error:  # over the memory budget: the sentence and a button for the nearest fit
    offer_fit(error)
    st.stop()
except ValueError as error:
    st.error(f"{error} Pick another model or weights in the sidebar.")
    st.stop()

left, right = st.columns([1, 3])
left.image(image, caption=f"{image_label}; the model sees {prep.crop}x{prep.crop} px ({prep.describe()})",
           width="stretch")
right.caption("BatchNorm runs in inference mode (running statistics; at initialisation mean 0 and variance 1).")

layers = list(strip["layer"])
labels = dict(zip(strip["layer"], strip["label"], strict=True))
if st.session_state.get("act_layer") not in layers:
    st.session_state["act_layer"] = next((n for n in layers if n.endswith("tap_out")), layers[0])

with right:
    st.subheader("Pick a layer")
    prev_col, next_col, _ = st.columns([1, 1, 2])
    prev_col.button("Previous layer", key="act_prev", on_click=_step, args=(-1, layers), width="stretch",
                    disabled=st.session_state["act_layer"] == layers[0])
    next_col.button("Next layer", key="act_next", on_click=_step, args=(1, layers), width="stretch",
                    disabled=st.session_state["act_layer"] == layers[-1])
    layer = st.select_slider("Depth strip: stem, then every tap point of every block", layers, key="act_layer",
                             format_func=labels.get)
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
measured = "; ".join(f"{row.net}: the std {TRENDS[row.trend]}, {row.first_std:.3g} after the first block and "
                     f"{row.last_std:.3g} after the last" for row in shared_result(spread_summary, stats).itertuples())
st.markdown(
    "One point per block output. In a residual net each block *adds* F(x) to its input, so a block can keep "
    "its input's signal and add to it; a plain net has to re-create its signal in every block. Whether the "
    "spread grows, shrinks or stays with depth depends on the weights and the image, so it is measured, not "
    "assumed. Dead units (exact zeros after the ReLU) show how much of each layer is switched off. Measured here "
    f"on this image: {measured}.")
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
