"""The shared sidebar: architecture and options, mirrored in the URL so a link reopens the same view."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st
import torch

from explorer_ui.notices import NOTICES_KEY
from explorer_ui.page_state import PERSIST, show_locked
from explorer_ui.url_params import current_link, locked, write_settings
from explorer_ui.weights_picker import KEY as WEIGHTS_KEY
from explorer_ui.weights_picker import (
    MODEL_CHOSEN,
    apply_page_default,
    apply_pending_weights,
    effective_weights,
    seed_weights,
    weights_picker,
)
from resnet_core.links import Notice
from resnet_core.models import ARCHITECTURES, display_name, get_spec
from resnet_core.page_specs import DEFAULT_ARCH, SHORTCUT_HELP, SIDEBAR, STRIDE_HELP
from resnet_core.weights import WIDTH_FACTORS, build_options, load_model, width_for


@dataclass(frozen=True)
class ModelChoice:
    """What the sidebar picked: an architecture name and its build options."""

    name: str
    residual: bool = True
    shortcut: str = "B"
    stride_on: str = "3x3"
    preact: bool = False
    width_factor: str = "full"
    weights: str = "random"
    extra: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def spec(self):
        return get_spec(self.name)

    @property
    def width(self) -> int | None:
        return width_for(self.name, self.width_factor)

    def options(self, **overrides: Any) -> dict[str, Any]:
        opts = build_options(self.name, residual=self.residual, shortcut=self.shortcut, stride_on=self.stride_on,
                             preact=self.preact, width_factor=self.width_factor)
        opts.update(dict(self.extra))
        opts.update(overrides)
        return opts

    @property
    def label(self) -> str:
        return display_name(self.name, self.residual)

    def twin(self) -> ModelChoice:
        """The same net with shortcuts flipped (residual <-> plain)."""
        return ModelChoice(self.name, not self.residual, self.shortcut, self.stride_on, self.preact,
                           self.width_factor, self.weights, self.extra)


# What each page wants from the sidebar's model while the user has chosen none (resnet_core.weights.PURPOSES):
# Grad-CAM explains, so it gets the best trained weights on disk; Activations and Gradient flow study the net at
# initialisation, and Architecture shows shapes only, so random init is right there. Pages not listed (the
# lesson, the training race) build their own nets and leave the sidebar as it is.
PAGE_PURPOSES = {"grad-cam": "explain", "activations": "init", "gradient-flow": "init", "architecture": "init"}

# Pages that build their own nets and ignore the sidebar's model: the picker is hidden there, with this line.
OWN_NETS = {"why-residuals": "The lesson builds and trains its own nets; the model chosen here applies to the other "
                             "pages and is kept for them."}

# Link name -> the widget's session-state key it seeds (the weights go through the weights picker).
_URL_KEYS = {s.link: s.name for s in SIDEBAR if s.kind != "weights"}


def _read_url_once() -> list[Notice]:
    """Seed the widgets from the URL on a session's first run (validated by ``url_params``); return its notices."""
    if st.session_state.get("_sb_seeded"):
        return []
    st.session_state["_sb_seeded"] = True
    link = current_link()
    for name, state_key in _URL_KEYS.items():
        if name in link.values:
            st.session_state[state_key] = link.values[name]
            st.session_state[MODEL_CHOSEN] = True  # a link's model is a choice: page defaults leave it alone
    seed_weights(link.values.get("weights"))
    return link.notices


_LINK_NAMES = {s.name: s.link for s in SIDEBAR}  # a widget's session key -> its name in a link (and in lock=)


def _held(state_key: str, label: str, format_func: Any = None) -> Any:
    """The value of a sidebar setting the link locked, shown as text in place of its widget; None otherwise."""
    if not locked(_LINK_NAMES[state_key]):
        return None
    value = st.session_state.get(state_key)
    show_locked(label, value, format_func)
    return value


def _write_url(choice: ModelChoice) -> None:
    wanted: dict[str, Any] = {"arch": choice.name, "plain": not choice.residual, "shortcut": choice.shortcut,
                              "preact": choice.preact, "width": choice.width_factor}
    bottleneck = choice.spec.block == "bottleneck"
    if bottleneck:
        wanted["stride"] = choice.stride_on
    write_settings(wanted, drop=[] if bottleneck else ["stride"])


def _model_changed() -> None:
    """The user touched a model widget: from now on page defaults change only the weights, not the net."""
    st.session_state[MODEL_CHOSEN] = True


def _arch_changed() -> None:
    """A new architecture starts from its own default shortcut (A for the paper's CIFAR nets, B for ImageNet)."""
    _model_changed()
    st.session_state["sb_shortcut"] = get_spec(st.session_state["sb_arch"]).defaults.get("shortcut", "B")


def _kept_choice() -> ModelChoice:
    """The sidebar's choice without drawing it (a page in ``OWN_NETS``); Streamlit's ``persist_state`` keeps the
    undrawn widgets' values for the next page."""
    state = st.session_state
    return ModelChoice(state.get("sb_arch", DEFAULT_ARCH), not state.get("sb_plain", False),
                       state.get("sb_shortcut", get_spec(state.get("sb_arch", DEFAULT_ARCH)).defaults.get("shortcut", "B")),
                       state.get("sb_stride", "3x3"), bool(state.get("sb_preact", False)), state.get("sb_width") or "full",
                       state.get(WEIGHTS_KEY, "random"))


def model_picker(page: str | None = None) -> ModelChoice:
    """Render the shared sidebar and return the chosen model. Called once per run by app/navigation.py with the
    current page's url_path, which decides the default weights (``PAGE_PURPOSES``) until the user chooses.
    On a page in ``OWN_NETS`` the picker is not drawn: a line says why, a link's notices still show."""
    st.session_state[NOTICES_KEY] = _read_url_once()  # shown at the top of the main area (explorer_ui.notices)
    problems = apply_pending_weights()  # a checkpoint's architecture overrides the widgets below
    if page in OWN_NETS:
        with st.sidebar:
            st.subheader("Model")
            st.caption(OWN_NETS[page])
            for problem in problems:
                st.warning(problem)
        return _kept_choice()
    apply_page_default(PAGE_PURPOSES.get(page or ""), DEFAULT_ARCH)
    names = list(ARCHITECTURES)
    with st.sidebar:
        st.subheader("Model")
        # Defaults go through session state (a link may already have set them): giving a widget both a
        # default and a session-state value makes the browser rerun a first view (measured: the link's notices
        # vanished), besides Streamlit's warning.
        for key, default in (("sb_arch", DEFAULT_ARCH), ("sb_width", "full")):
            if key not in st.session_state:
                st.session_state[key] = default
        for key, default in (("sb_plain", False), ("sb_preact", False), ("sb_stride", "3x3")):
            if locked(_LINK_NAMES[key]) and key not in st.session_state:
                st.session_state[key] = default
        name = _held("sb_arch", "Architecture", display_name) or st.selectbox(
            "Architecture", names, key="sb_arch",
            format_func=display_name,  # unique names ("ResNet-18 (CIFAR stem)"), short enough to show whole
            help="ImageNet nets (224x224 input) and the paper's CIFAR nets (32x32, 6n+2 layers).",
            on_change=_arch_changed, persist_state=PERSIST,
        )
        spec = get_spec(name)
        plain = _held("sb_plain", "Plain twin (no shortcuts)")
        if plain is None:
            plain = st.toggle("Plain twin (no shortcuts)", key="sb_plain", on_change=_model_changed,
                              persist_state=PERSIST,
                              help="The same layers with every shortcut removed: the paper's 'plain' network.")
        default_shortcut = spec.defaults.get("shortcut", "B")
        if "sb_shortcut" not in st.session_state:
            st.session_state["sb_shortcut"] = default_shortcut
        shortcut = _held("sb_shortcut", "Shortcut option") or st.radio(
            "Shortcut option", list(SHORTCUT_HELP), key="sb_shortcut", horizontal=True, disabled=plain,
            on_change=_model_changed, persist_state=PERSIST, help="\n\n".join(SHORTCUT_HELP.values()))
        stride_on = "3x3"
        if spec.block == "bottleneck":
            stride_on = _held("sb_stride", "Stride of the first block of a stage") or st.radio(
                "Stride of the first block of a stage", list(STRIDE_HELP), key="sb_stride", horizontal=True,
                format_func=lambda s: f"{s} conv", on_change=_model_changed, persist_state=PERSIST,
                help="\n\n".join(f"{k}: {v}" for k, v in STRIDE_HELP.items()))
        preact = _held("sb_preact", "Pre-activation blocks")
        if preact is None:
            preact = st.toggle("Pre-activation blocks", key="sb_preact", on_change=_model_changed,
                               persist_state=PERSIST, help="BN-ReLU before each conv (He et al. 2016, Identity "
                                                           "Mappings).")
        width_factor = _held("sb_width", "Width") or st.segmented_control(
            "Width", list(WIDTH_FACTORS), key="sb_width", on_change=_model_changed, persist_state=PERSIST,
            help="Slimmer nets run faster on a laptop CPU.") or "full"
        if locked("weights"):
            weights = st.session_state.get(WEIGHTS_KEY, "random")
            show_locked("Weights", weights)
        else:
            weights = weights_picker(name)
        for problem in problems:
            st.warning(problem)
    choice = ModelChoice(name, not plain, shortcut, stride_on, preact, width_factor, weights)
    _write_url(choice)
    return choice


@st.cache_resource(max_entries=6, show_spinner="Building the model...")
def _cached_model(name: str, options: tuple[tuple[str, Any], ...], weights: str, meta: bool) -> torch.nn.Module:
    return load_model(name, dict(options), weights, meta=meta)  # costed there before anything is allocated


def get_model(choice: ModelChoice, *, meta: bool = False, **overrides: Any) -> torch.nn.Module:
    """The cached model for ``choice`` (shared by every session: treat it as read-only, instrument it under
    ``resnet_core.model_lock``). ``meta=True`` builds it without weights, for shapes and counts only.
    Raises ValueError with a readable sentence for an impossible option combination."""
    options = tuple(sorted(choice.options(**overrides).items()))
    weights = "random" if meta else effective_weights(choice.weights, choice.name, dict(options))
    return _cached_model(choice.name, options, weights, meta)


def current_choice() -> ModelChoice:
    """The choice made in the sidebar on this run (set by app/navigation.py before the page runs)."""
    return st.session_state["model_choice"]
