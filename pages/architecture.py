"""Architecture: the chosen net as the paper's Table 1, its params and MACs, its plain twin, its shortcuts."""

from __future__ import annotations

from typing import Any

import streamlit as st
from explorer_ui.figures import shared_figure
from explorer_ui.notebook_button import notebook_button
from explorer_ui.queue_notice import queue_notice
from explorer_ui.sidebar import ModelChoice, current_choice, get_model

import resnet_core
from resnet_core.describe import ArchitectureReport, architecture_report, block_comparison, paper_table_name
from resnet_core.job_queue import heavy_slot
from resnet_core.plots.architecture import (
    block_comparison_figure,
    block_diagram_figure,
    layer_figure,
    model_list_figure,
    stage_figure,
    twin_figure,
)

COMPARISON_CHANNELS = 256


@st.cache_data(show_spinner=False, max_entries=32)
def _report(name: str, options: tuple[tuple[str, Any], ...], _choice: ModelChoice) -> ArchitectureReport:
    # Meta-device models: shapes and counts without weights, so even ResNeXt-101 is described at once (describe
    # runs a small one as a zero-filled CPU copy, which spares the cold start torch._dynamo's import).
    model, twin = get_model(_choice, meta=True), get_model(_choice.twin(), meta=True)
    with heavy_slot("architecture"):
        return architecture_report(model, twin, _choice.spec.input_size)


@st.cache_data(show_spinner=False)
def _block_comparison(channels: int):
    return block_comparison(channels)


@st.cache_data(show_spinner=False)
def _models():
    with heavy_slot("every architecture"):
        return resnet_core.list_models()


choice = current_choice()
st.title(f"Architecture of {choice.label}")
notebook_button("architecture", {})  # the page has no settings of its own: the sidebar's model
try:
    with st.spinner(f"Counting the layers of {choice.label}..."), queue_notice():
        report = _report(choice.name, tuple(sorted(choice.options().items())), choice)
except ValueError as error:
    st.error(f"{error} Pick another combination in the sidebar.")
    st.stop()

size = report.input_size
me = report.twin.iloc[0]  # this net's totals from count_params / count_macs (the library, not this page)
total_params, total_macs = int(me["params"]), int(me["macs"])
cols = st.columns(4)
cols[0].metric("Weighted layers", f"{me['depth']}")
cols[1].metric("Parameters", f"{total_params:,}")
cols[2].metric(f"Multiply-accumulates at {size}x{size}", f"{total_macs / 1e9:.3f} G")
cols[3].metric("Residual blocks" if choice.residual else "Plain blocks", f"{me['blocks']}")
st.caption(f"{choice.spec.paper}. Counted without weights: multiply-accumulates come from "
           "torch.utils.flop_counter's formulas (convolutions and the fc layer; the element-wise additions are not counted, "
           "as in the paper).")

st.subheader(f"Stage table ({paper_table_name(choice.spec.stem)})")
stages = report.stages.rename(columns={"paper_stage": "layer name", "stage": "module", "output_size": "output size",
                                       "layer": "recipe", "macs": "MACs"})
st.dataframe(stages, hide_index=True, width="stretch",
             column_config={"params": st.column_config.NumberColumn(format="localized"),
                            "MACs": st.column_config.NumberColumn(format="localized")})

st.subheader("Where the parameters and the computation are")
st.plotly_chart(shared_figure(stage_figure, report.stages), key="arch_stage_chart")
st.plotly_chart(shared_figure(layer_figure, report.layers), key="arch_layer_chart")

st.subheader("Shortcuts, block by block")
kinds = report.blocks["shortcut"].value_counts()
if not choice.residual:
    st.markdown(f"**{choice.label}** is a plain net: none of its {len(report.blocks)} blocks has a shortcut.")
else:
    st.markdown(
        f"**{choice.label}** (shortcut option {choice.shortcut}): "
        f"{kinds.get('identity', 0)} identity shortcuts (solid), {kinds.get('projection', 0)} projections "
        f"(dashed, a 1x1 convolution where the shape changes), {kinds.get('zero-pad', 0)} zero-padded "
        "identities (dotted, option A).")
st.plotly_chart(shared_figure(block_diagram_figure, report.blocks), key="arch_block_diagram")
with st.expander("Every block"):
    st.dataframe(report.blocks, hide_index=True, width="stretch",
                 column_config={"params": st.column_config.NumberColumn(format="localized")})

st.subheader("Residual net and its plain twin")
twin = report.twin
st.markdown(
    f"The plain twin keeps every layer and removes the shortcuts. {twin.loc[0, 'label']}: "
    f"{twin.loc[0, 'params']:,} parameters, {twin.loc[0, 'macs']:,} MACs; {twin.loc[1, 'label']}: "
    f"{twin.loc[1, 'params']:,} parameters, {twin.loc[1, 'macs']:,} MACs; both {twin.loc[0, 'depth']} layers deep.")
st.plotly_chart(shared_figure(twin_figure, twin), key="arch_twin_chart")

st.subheader(f"BasicBlock vs Bottleneck at {COMPARISON_CHANNELS} channels")
comparison = _block_comparison(COMPARISON_CHANNELS).set_index("block")
basic, bottleneck = comparison.loc["BasicBlock"], comparison.loc["Bottleneck"]
st.markdown(
    f"Counted from real modules: a BasicBlock on {COMPARISON_CHANNELS} channels ({basic['recipe']}) holds "
    f"**{basic['conv_weights']:,}** convolution weights; a Bottleneck ({bottleneck['recipe']}) holds "
    f"**{bottleneck['conv_weights']:,}**, {basic['conv_weights'] / bottleneck['conv_weights']:.1f}x fewer. "
    "That is why ResNet-50 and deeper use bottlenecks (the paper's Fig. 5).")
st.plotly_chart(shared_figure(block_comparison_figure, comparison.reset_index()), key="arch_block_comparison")

st.subheader("Every architecture")
with queue_notice():
    models = _models()
st.plotly_chart(shared_figure(model_list_figure, models, highlight=choice.name), key="arch_model_list")
st.dataframe(models[["label", "name", "family", "depth", "block", "stages", "params", "macs", "input_size"]],
             hide_index=True, width="stretch",
             column_config={"params": st.column_config.NumberColumn(format="localized"),
                            "macs": st.column_config.NumberColumn("MACs", format="localized")})
