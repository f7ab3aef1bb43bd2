"""Gradient flow: the gradient at every block input, its split between shortcut and branch, and a depth sweep."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st
from explorer_ui.budget import stop_on_refusal
from explorer_ui.figures import shared_figure, shared_result
from explorer_ui.keys import choice_key
from explorer_ui.notebook_button import notebook_button
from explorer_ui.page_state import setting_widget
from explorer_ui.predict import ask
from explorer_ui.queue_notice import queue_notice
from explorer_ui.sidebar import ModelChoice, current_choice, get_model
from explorer_ui.url_params import take_settings, write_settings
from explorer_ui.weights_picker import effective_weights

from resnet_core.job_queue import heavy_slot
from resnet_core.page_specs import GRADIENT_FLOW
from resnet_core.plots.instruments import depth_sweep_figure, gradient_norm_figure, path_split_figure
from resnet_core.plots.style import fmt_value
from resnet_core.probes import (
    BN_MODE_SENTENCES,
    BN_MODES,
    SWEEP_SETTINGS,
    bn_train_flag,
    compare_path_gradients,
    default_bn_mode,
    depth_sweep,
    first_last_ratio,
    shapes_batch,
    split_summary,
    sweep_summary,
)
from resnet_core.questions import QUESTIONS
from resnet_core.targets import LossTarget
from resnet_core.weights import preprocessing_for, weights_label

STATES = {"init": "At initialisation", "trained": "Trained weights"}


@st.cache_data(show_spinner=False, max_entries=8)
def _flow(key: tuple, twin_key: tuple | None, batch: int, bn: str, labels: tuple[str, ...], _choice: ModelChoice,
          _twin: ModelChoice | None) -> tuple[pd.DataFrame, str]:
    model = get_model(_choice)
    inputs, target = shapes_batch(model, n=batch)
    twin = get_model(_twin) if _twin is not None else None
    with heavy_slot("gradient flow"):
        frame = compare_path_gradients(model, twin, inputs, target, labels=labels, train=bn_train_flag(bn))
    objective = ("the cross-entropy against their labels" if isinstance(target, LossTarget)
                 else "each image's top-1 logit")
    prep = preprocessing_for(model)
    return frame, f"{batch} Shapes images at {prep.crop}x{prep.crop} px, differentiating {objective}"


@st.cache_data(show_spinner=False)
def _sweep(family: str) -> pd.DataFrame:
    with heavy_slot("depth sweep"):
        return depth_sweep(family=family, **SWEEP_SETTINGS[family])


choice = current_choice()
linked = take_settings(GRADIENT_FLOW)  # a shared link's page settings, on the session's first run only
st.title("Gradient flow")
st.markdown("The gradient arriving at every block's input, measured exactly, in this net and its plain twin: "
            "through the shortcut and through the residual branch F.")
if choice.preact:
    block_text = ("In these pre-activation blocks the output is the sum itself, y = x + F(x): the gradient at y "
                  "passes straight back to x through an identity shortcut **plus** what comes back through the "
                  "branch F (He et al. 2016, *Identity Mappings*, eq. 5).")
else:
    block_text = ("In these post-activation blocks a ReLU follows the add, y = ReLU(F(x) + x): the gradient at y is "
                  "first zeroed wherever the sum is negative, and it is the gradient at the sum that passes "
                  "straight back to x through an identity shortcut **plus** what comes back through the branch F. "
                  "Only pre-activation blocks pass the gradient at y back unchanged (He et al. 2016, *Identity "
                  "Mappings*, eq. 5).")

weights = effective_weights(choice.weights, choice.name, choice.options())
trained = weights != "random"
is_imagenet = choice.spec.stem == "imagenet"
for key, default in (("gf_state", "init"), ("gf_batch", 4 if is_imagenet else 16)):
    if st.session_state.get(key) not in GRADIENT_FLOW[key].choices:
        st.session_state[key] = default
state_col, bn_col, batch_col = st.columns([1.1, 1.1, 1])
with state_col:
    state = setting_widget(GRADIENT_FLOW["gf_state"], "State", format_func=STATES.get, disabled=not trained) or "init"
    if not trained:
        st.caption("Only the initial state is available: pick trained weights (a checkpoint from a training run) "
                   "in the sidebar to compare.")
        state = "init"
# Batch norm's default follows the measured net: batch statistics at initialisation, running ones when trained.
if st.session_state.get("_gf_bn_state") != state:
    st.session_state["_gf_bn_state"] = state
    if "gf_bn" not in linked:
        st.session_state["gf_bn"] = default_bn_mode(state == "trained")
if st.session_state.get("gf_bn") not in BN_MODES:
    st.session_state["gf_bn"] = default_bn_mode(state == "trained")
with bn_col:
    bn = setting_widget(GRADIENT_FLOW["gf_bn"], "Batch norm", format_func=BN_MODES.get) or \
        default_bn_mode(state == "trained")
with batch_col:
    batch = setting_widget(GRADIENT_FLOW["gf_batch"], "Batch size",
                             help="Gradients are taken on one batch of Shapes images.")
why = ("a net at initialisation: its running statistics (mean 0, variance 1) would normalise nothing"
       if state == "init" else "trained weights: their running statistics are the ones they were trained to use")
st.caption(f"Here {BN_MODE_SENTENCES[bn]}. The default for {why}.")
write_settings({"gf_state": state, "gf_batch": batch, "gf_bn": bn})
notebook_button("gradient-flow", {"gf_state": state, "gf_batch": batch, "gf_bn": bn})

net_choice = replace(choice, weights="random") if state == "init" else choice
# A checkpoint holds one trained net: its twin has no trained weights, so it is shown only at initialisation.
twin_choice = replace(choice.twin(), weights="random") if state == "init" else None
labels = (choice.label, twin_choice.label) if twin_choice else (f"{choice.label} (trained)",)
with stop_on_refusal(), st.spinner(f"Differentiating {net_choice.label}"
                                   + (" and its twin..." if twin_choice else "...")), queue_notice():
    frame, batch_text = _flow(choice_key(net_choice), choice_key(twin_choice) if twin_choice else None, batch,
                              bn, labels, net_choice, twin_choice)

st.subheader("Gradient norm at each block input")
question = QUESTIONS["gradient_flow.largest"]
if ask(question, question.answer(frame)):
    st.plotly_chart(shared_figure(gradient_norm_figure, frame), key="gf_norms")
    ratios = shared_result(first_last_ratio, frame)
    growth = "; ".join(f"{net}: first/last = {fmt_value(ratio)}" for net, ratio in ratios.items())
    st.markdown(
        "Read right to left, the way the gradient travels. A flat line means every block receives a gradient of "
        "the same size; a steep one means the early blocks get a much larger (or smaller) gradient than the late "
        f"ones. Measured here: {growth}.")
bn_words = ("batch norm on the batch's statistics (running statistics restored afterwards)" if bn == "batch"
            else "batch norm on its running statistics")
st.caption(f"Measured on {batch_text}; {bn_words}. "
           + ("Random initialisation (seed 0)." if state == "init" else f"Weights: {weights_label(weights)}.")
           + " What is measured: the gradient of the loss with respect to each block's *input* (an activation), "
             "at one moment. The Training race charts something else, the gradients of each stage's *weights* "
             "during training; a plain net's weight gradients can be smallest at the stem while the input "
             "gradients here grow toward it.")
with st.expander("How the gradient splits at a block"):
    st.markdown(
        f"{block_text} Where the shape changes, the shortcut is a projection (1x1 convolution) or a zero-padded "
        "identity, which transforms the gradient on its way back. A plain block has only the branch. Here both "
        "paths are measured, block by block, with exact gradients.")

st.subheader("Shortcut versus residual branch, block by block")
residual_rows = frame[frame["residual"]]
if residual_rows.empty:
    st.info("The plain net has no shortcut, so there is nothing to split: all of its gradient goes through the "
            "branch. Switch off 'Plain twin' in the sidebar to see the split.")
else:
    summary = shared_result(split_summary, residual_rows)
    st.markdown(
        "Each bar is one block's input gradient, split exactly into the part that came back through the shortcut "
        "and the part through the branch F (each part's component along the total; together 100%). Measured "
        f"here for {residual_rows['net'].iloc[0]}: the shortcut carries {summary['shortcut_share']:.0%} and the "
        f"branch {summary['branch_share']:.0%} on average over {summary['blocks']} blocks (largest deviation of "
        f"shortcut + branch from the total: {summary['max_sum_error']:.1e}). Pre-activation blocks with a "
        "projection shortcut are split at their pre-activated input, where both paths start.")
    st.plotly_chart(shared_figure(path_split_figure, residual_rows), key="gf_split")

st.subheader("Depth sweep: why residuals")
family = "imagenet" if is_imagenet else "cifar"
settings = SWEEP_SETTINGS[family]
with st.spinner("Measuring fresh nets of every depth (once per session of the app)..."), queue_notice():
    sweep = _sweep(family)
deep = shared_result(sweep_summary, sweep)
st.markdown(
    "The gradient norm at the first block input divided by the one at the last block input, for freshly "
    "initialised nets of growing depth. With BatchNorm, plain nets do not make the gradient vanish: they make "
    "it *explode* toward the input (Yang et al. 2019, *A Mean Field Theory of Batch Normalization*), and deeper "
    "is worse; in residual nets it grows far more slowly with depth. Measured here at depth "
    f"{deep['depth']}: plain {fmt_value(deep['plain'])}, residual {fmt_value(deep['residual'])}, "
    f"{fmt_value(deep['factor'])} times apart.")
st.plotly_chart(shared_figure(depth_sweep_figure, sweep), key="gf_sweep")
family_label = {"cifar": "CIFAR", "imagenet": "ImageNet"}[family]
shortcut_option = "A" if family == "cifar" else "B"
st.caption(f"Settings: {family_label} nets with their standard options (shortcut {shortcut_option}, "
           f"post-activation blocks) {settings['width']} channels wide, a batch of {settings['batch']} "
           f"standard-normal images at {settings['image_size']} px with random labels, cross-entropy, BatchNorm in "
           "train mode, seed 0: slimmer and smaller than a full run (batch 128) so that the sweep takes seconds on a "
           "CPU." + (" A test checks the direction with these settings: plain-56 at least 100 times ResNet-56."
                     if family == "cifar" else
                     " No test fixes a margin for the ImageNet family: the numbers above are this run's measurement."))
