"""Why residuals work: a step-by-step lesson; every number on it is computed by resnet_core.lesson."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from explorer_ui.figures import shared_figure, shared_result
from explorer_ui.heavy_notice import queue_notice
from streamlit.errors import StreamlitAPIException

from resnet_core import lesson
from resnet_core.heavy import heavy_slot
from resnet_core.plots.lesson import (
    depth_figure,
    identity_figure,
    paper_table2_figure,
    paths_figure,
    split_figure,
)

ARCH, BLOCK, WIDTH = "resnet20", "layer2.1", 16
DEPTHS, SWEEP_WIDTH, SWEEP_BATCH = (20, 32, 56), 8, 16


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


st.title("Why residuals work")
st.caption(f"A lesson in five steps. It uses its own small CIFAR nets ({lesson.label(ARCH)} and friends, "
           "seeded), whatever the sidebar says; every number below is measured when the page loads.")

st.header("1. The degradation problem")
table2 = lesson.PAPER_TABLE2_TOP1.set_index("depth")
plain_gap = table2.loc[34, "plain"] - table2.loc[18, "plain"]
residual_gain = table2.loc[18, "resnet"] - table2.loc[34, "resnet"]
st.markdown(
    "He et al. trained plain nets (stacks of conv-BN-ReLU) of 18 and 34 layers on ImageNet. The deeper one was "
    f"**worse**: {plain_gap:.2f} points more top-1 error, and its *training* error was higher too, so this is "
    "not overfitting: the solver fails to find a solution the deeper net can represent (copy the 18 layers, "
    "make the rest identities). Adding shortcuts, with no extra parameters, turned that around: ResNet-34 is "
    f"{residual_gain:.2f} points *better* than ResNet-18.")
st.plotly_chart(shared_figure(paper_table2_figure, lesson.PAPER_TABLE2_TOP1), key="lesson_paper")
st.caption(f"Quoted from {lesson.PAPER_CITATION}; not measured here.")
_training_link()

st.header("2. A residual block can be the identity")
with st.spinner("Running four versions of one block..."), queue_notice():
    identity = _identity()
rows = identity.set_index(["residual", "zero_init"])
res_zero, plain_zero = rows.loc[(True, True)], rows.loc[(False, True)]
st.markdown(
    f"Take block `{BLOCK}` of {lesson.label(ARCH)} and feed it the input x it really receives in the net "
    "(a seeded batch). A residual block computes y = ReLU(x + F(x)). With the last batch-norm scale of F at "
    f"zero (`zero_init_residual=True`), F(x) = 0 and y = x: measured **max |y - x| = "
    f"{res_zero['max_abs_diff']:.3g}**. The plain block with the same zeroed layer outputs zeros: max |y - x| = "
    f"{plain_zero['max_abs_diff']:.3g}, which is max |x| ({plain_zero['max_abs_input']:.3g}). To be the "
    "identity, a plain block must *learn* it through two convolutions and ReLUs; a residual block only has to "
    "push F towards zero.")
st.plotly_chart(shared_figure(identity_figure, identity), key="lesson_identity")

st.header("3. The gradient of y = x + F(x) is 1 + dF/dx")
st.markdown(
    "Differentiate the sum s = x + F(x): dL/dx = dL/ds (1 + dF/dx). The **1** is the shortcut: whatever "
    "gradient reaches the sum reaches the block input unchanged, plus what the branch adds (in these "
    "post-activation blocks the ReLU after the sum masks dL/ds first; an identity shortcut passes the rest as "
    "is, a zero-pad shortcut drops the padded channels). Below, the gradient "
    "arriving at each block input of a freshly built net is split exactly into the two paths "
    "(`resnet_core.probes.path_gradients`, one backward pass, train-mode BN, cross-entropy on random labels).")
zero_init = st.toggle("Start every branch at zero (zero_init_residual)", key="lesson_zero_init")
with st.spinner("Splitting the gradient..."), queue_notice():
    split = _split(zero_init)
shares = split["shortcut_share"]
st.plotly_chart(shared_figure(split_figure, split), key="lesson_split")
st.markdown(
    f"Measured here: the shortcut's share of the gradient (its component along the total) runs from "
    f"{shares.min():.0%} to {shares.max():.0%} across the {len(split)} blocks; shortcut + branch equals the "
    f"total (largest relative difference {split['sum_error'].max():.1e})."
    + (" With every branch at zero, dF/dx = 0: the branch part is exactly "
       f"{split['branch_norm'].abs().max():.3g} and the gradient crosses every block untouched "
       f"(norm {split['total_norm'].iloc[0]:.4g} at the first block, {split['total_norm'].iloc[-1]:.4g} at the "
       "last)." if zero_init else ""))

st.header("4. Depth: what happens to the gradient on its way down")
with st.spinner("Building and differentiating 6 nets..."), queue_notice():
    ratios = _depth()
plain = ratios[~ratios["residual"]].set_index("depth")["ratio"]
residual = ratios[ratios["residual"]].set_index("depth")["ratio"]
deepest = max(DEPTHS)
st.plotly_chart(shared_figure(depth_figure, ratios), key="lesson_depth")
direction = ("grows toward the input (it explodes)" if plain[deepest] > 1 else "shrinks toward the input")
st.markdown(
    f"Measured here at initialisation (train-mode batch norm, batch {SWEEP_BATCH}, width {SWEEP_WIDTH}, "
    "random labels): the norm of the gradient at the first block divided by the norm at the last block. "
    f"In the plain nets it {direction}: {plain[min(DEPTHS)]:.3g}x at {min(DEPTHS)} layers, "
    f"**{plain[deepest]:.3g}x** at {deepest}. The residual twins: {residual[min(DEPTHS)]:.3g}x and "
    f"**{residual[deepest]:.3g}x**, {plain[deepest] / residual[deepest]:.0f} times less at {deepest} layers."
    + (" So not the folklore \"gradients vanish\": with batch norm, the plain nets' gradients explode toward "
       "the input (as Yang et al. 2019 predict), and the identity paths keep the residual nets' growth gentle."
       if plain[deepest] > 10 * residual[deepest] > 10 else ""))

st.header("5. The unrolled view: many paths, mostly short")
n_blocks = st.slider("Residual blocks", 1, 200, shared_result(lesson.blocks_of, "resnet110"), key="lesson_blocks",
                     help="ResNet-110 has 54 blocks; ResNet-1202 has 600.")
summary = lesson.path_summary(n_blocks)
st.markdown(
    f"Each block offers two ways through: the shortcut or the branch. Unrolled (Veit et al. 2016), "
    f"{n_blocks} blocks are **2^{n_blocks} = {summary['paths']:,} paths**, and the number of branches a path "
    f"takes is Binomial({n_blocks}, 1/2): mean {summary['mean_length']:.1f}, "
    f"{summary['share_within_1std']:.0%} of paths within {summary['std_length']:.1f} of it. The one path "
    f"through every branch, the plain net's only path, is 1 of {summary['paths']:,} "
    f"({summary['longest_share']:.2g} of the total).")
st.plotly_chart(shared_figure(paths_figure, lesson.unrolled_paths(n_blocks)), key="lesson_paths")
