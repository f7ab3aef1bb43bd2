"""The sidebar's weights choice: random init, torchvision ImageNet weights, the embedded Shapes demos, run
checkpoints, an uploaded file.

The choice lives in ``st.session_state["sb_weights"]`` and the URL (``weights=``). A checkpoint's (or a demo's)
architecture overrides the sidebar's: choosing one sets the architecture widgets to the checkpoint's before they
render (``apply_pending_weights`` runs first in ``model_picker``), and the sidebar says so.

Until the user (or a link) chooses weights, each page starts with the best it can have
(``apply_page_default``, deciding with ``resnet_core.weights.best_model``/``best_weights``, from files on disk).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import streamlit as st

from resnet_core.errors import WeightsError
from resnet_core.models import get_spec
from resnet_core.settings import network_available
from resnet_core.weights import (
    HUB_FOLDER,
    WIDTH_FACTORS,
    best_model,
    best_weights,
    build_options,
    checkpoint_config,
    demo,
    download_torchvision_weights,
    hub_checkpoint_path,
    parse_weights_id,
    weights_choices,
    weights_fit,
    weights_label,
    width_factor,
)
from resnet_core.weights.checkpoints import (
    CheckpointMismatch,
    checkpoint_file,
    checkpoint_id,
    checkpoint_title,
    save_uploaded_checkpoint,
)

KEY = "sb_weights"
_PENDING = "_sbw_pending"
_ERROR = "_sbw_error"
_UPLOAD = "sb_weights_upload"
CHOSEN = "_sbw_chosen"  # the user or a link picked these weights: no page default replaces them
MODEL_CHOSEN = "_sb_model_chosen"  # the same for the architecture widgets (set by the sidebar)
_APPLIED = "_sbw_default"  # (widget values, weights id) the last page default set


@st.cache_data(show_spinner=False, max_entries=32)
def _cached_checkpoint_config(path: str, mtime: float) -> dict[str, Any]:
    """What a checkpoint file holds (``resnet_core.weights.checkpoint_config``), cached per file version."""
    return checkpoint_config(path).as_dict()


def _config_for(weights: str) -> dict[str, Any] | None:
    kind, value = parse_weights_id(weights)
    if kind == "demo":
        return demo.demo_config(value)
    if kind != "ckpt":
        return None
    path = checkpoint_file(value)  # an id relative to the runs folder, confined to it and uploads/, existing
    return _cached_checkpoint_config(str(path), os.path.getmtime(path))


def _sidebar_state_for(arch: str, options: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Sidebar widget values that express ``arch``/``options``, and what they cannot express."""
    spec = get_spec(arch)
    state: dict[str, Any] = {"sb_arch": arch, "sb_plain": not options.get("residual", True),
                             "sb_shortcut": options.get("shortcut", spec.defaults.get("shortcut", "B")),
                             "sb_preact": bool(options.get("preact", False))}
    if spec.block == "bottleneck":
        state["sb_stride"] = options.get("stride_on", "3x3")
    factor = width_factor(arch, options.get("width"))
    unexpressed = []
    state["sb_width"] = factor or "full"
    if factor is None:
        unexpressed.append(f"width {options['width']}")
    if options.get("num_classes", spec.num_classes) != spec.num_classes:
        unexpressed.append(f"{options['num_classes']} classes")
    return state, unexpressed


def _select(weights: str) -> list[str]:
    """Make ``weights`` current; for a checkpoint, set the architecture widgets to its architecture.

    Must run before the sidebar's widgets render (a callback, or ``apply_pending_weights``).
    """
    problems: list[str] = []
    try:
        config = _config_for(weights)
    except (WeightsError, OSError) as error:
        st.session_state[_ERROR] = str(error)
        return [str(error)]
    st.session_state[KEY] = weights
    if config is not None and config["arch"] is not None:
        state, _ = _sidebar_state_for(config["arch"], config["options"])
        st.session_state.update(state)
    return problems


def use_checkpoint(path: str) -> None:
    """Make the checkpoint at ``path`` the current weights (the next run applies it; then switch pages)."""
    st.session_state[_PENDING] = checkpoint_id(path)
    st.session_state[CHOSEN] = True


def seed_weights(weights: str | None) -> None:
    """Take the URL's ``weights=`` (already validated by ``url_params.read_link``) on a session's first run.

    A link's weights, ``random`` included, are a choice: no page default replaces them."""
    if weights is not None:
        st.session_state[CHOSEN] = True
    if weights is not None and weights != "random":
        st.session_state[_PENDING] = weights


def apply_pending_weights() -> list[str]:
    """Apply a weights change requested by ``use_checkpoint`` or the URL (``seed_weights``), before widgets render.

    Returns sentences about values that could not be used.
    """
    pending = st.session_state.pop(_PENDING, None)
    return _select(pending) if pending else []


def fits(weights: str, name: str, options: Mapping[str, Any]) -> str | None:
    """None when ``weights`` can be loaded into the sidebar's ``name``/``options``; else why not (a sentence).

    The decision is ``resnet_core.weights.weights_fit``; here a checkpoint's config comes from the per-file cache.
    """
    try:
        config = _config_for(weights)
    except (WeightsError, OSError) as error:
        return str(error)
    return weights_fit(weights, name, options, config)


def apply_page_default(purpose: str | None, default_arch: str) -> None:
    """Give the page the best weights it can have while nothing is chosen (before the widgets render).

    ``purpose`` is the page's (``resnet_core.weights.PURPOSES``; None: the page ignores the sidebar's model, and
    nothing changes). With no architecture chosen either, the page's whole starting model applies
    (``best_model``: for Grad-CAM cached ImageNet weights, else the embedded Shapes ResNet-20); otherwise the
    best weights for the chosen net (``best_weights``). Files on disk only: instant offline.

    A value that differs from what the last default set was chosen since (a widget, a link, a page's button such
    as the budget's "Use ResNet-110"): from then on it stays.
    """
    applied = st.session_state.get(_APPLIED)
    if applied is not None:
        state, weights = applied
        if any(st.session_state.get(key) != value for key, value in state.items()):
            st.session_state[MODEL_CHOSEN] = True
        if st.session_state.get(KEY, "random") != weights:
            st.session_state[CHOSEN] = True
    if purpose is None or st.session_state.get(CHOSEN):
        return
    if st.session_state.get(MODEL_CHOSEN):
        name = st.session_state.get("sb_arch", default_arch)
        state, weights = {}, best_weights(name, _sidebar_options(name), purpose)
    else:
        best = best_model(purpose, default_arch)
        (state, _), weights = _sidebar_state_for(best.arch, best.options), best.weights
        st.session_state.update(state)
    st.session_state[KEY] = weights
    st.session_state[_APPLIED] = (state, weights)


def effective_weights(weights: str, name: str, options: Mapping[str, Any]) -> str:
    """The weights ``get_model`` loads: the chosen ones when they fit the net, else the seeded random init."""
    return weights if weights == "random" or fits(weights, name, options) is None else "random"


def _on_upload() -> None:
    st.session_state[CHOSEN] = True
    upload = st.session_state.get(_UPLOAD)
    st.session_state.pop(_ERROR, None)
    st.session_state.pop("_sbw_mismatch", None)
    if upload is None:
        return
    try:
        path = save_uploaded_checkpoint(upload.getvalue(), upload.name)
    except CheckpointMismatch as error:
        st.session_state[_ERROR] = str(error)
        st.session_state["_sbw_mismatch"] = error.table()
        return
    except WeightsError as error:
        st.session_state[_ERROR] = str(error)
        return
    _select(checkpoint_id(path))


def _on_select() -> None:
    # The box can be cleared (its "x"): that means back to the seeded random init.
    st.session_state[CHOSEN] = True
    _select(st.session_state.get("_sbw_select") or "random")


def _run_checkpoints() -> list[dict[str, Any]]:
    try:
        from resnet_core.runs import list_checkpoints
    except ImportError:
        return []
    try:
        return list_checkpoints()
    except (OSError, ValueError):
        return []


def weights_picker(name: str) -> str:
    """Render the weights choice inside the sidebar and return the weights id for architecture ``name``."""
    current = st.session_state.get(KEY, "random")
    labels: dict[str, str] = {w: weights_label(w) for w in weights_choices(name)}
    for entry in _run_checkpoints():
        labels[checkpoint_id(entry["path"])] = checkpoint_title(entry["path"])
    if current not in labels:
        labels[current] = weights_label(current)
    st.session_state["_sbw_select"] = current
    st.selectbox("Weights", list(labels), index=None, key="_sbw_select", format_func=lambda w: labels[w],
                 on_change=_on_select,
                 help="Random init (seed 0), torchvision's ImageNet weights (hub cache or download), a net trained "
                      "on Shapes that ships with the app (embedded demo), a checkpoint from a training run, or your "
                      "own file below.")
    with st.expander("Upload a checkpoint", expanded=bool(st.session_state.get(_ERROR))):
        # Any suffix: the file is read by its content (torch.save zip or pickle, or safetensors).
        st.file_uploader("Checkpoint (.pt .pth .th .tar .ckpt .bin .safetensors)", type=None, key=_UPLOAD,
                         on_change=_on_upload,
                         help="Read with torch.load(weights_only=True) or safetensors: files that contain code are "
                              "refused. torchvision, timm, Lightning, Hugging Face and the CIFAR repositories' layouts "
                              f"load. Up to {st.get_option('server.maxUploadSize')} MB per file (the server's upload "
                              "limit, server.maxUploadSize: ResNet-101 and ResNet-152 fit).")
    error = st.session_state.get(_ERROR)
    if error:
        st.error(error)
        table = st.session_state.get("_sbw_mismatch")
        if table is not None:
            st.dataframe(table, hide_index=True, height=200)
    kind, value = parse_weights_id(current)
    if kind == "demo":
        _demo_caption(value)
    if kind == "ckpt":
        try:
            config = _config_for(current)
        except (WeightsError, OSError) as exc:
            st.error(str(exc))
            config = None
        if config is not None:
            st.info(f"Architecture from the checkpoint: **{config['label']}** (it overrides the choices above).",
                    icon=":material/lock:")
            if config["arch"] is not None:
                _, unexpressed = _sidebar_state_for(config["arch"], config["options"])
                if unexpressed:
                    st.caption(f"The checkpoint's {', '.join(unexpressed)} come from the file.")
            for note in config["notes"]:
                st.caption(f"Inferred: {note}.")
    options = _sidebar_options(name)
    problem = fits(current, name, options)
    if problem:
        st.warning(problem)
    elif kind == "tv":
        _download_with_progress(name, current[3:])
    if current == "random" and not st.session_state.get(CHOSEN):
        # Random as the page's default stays out of the link (a recipient's page picks its own best default);
        # random as a choice (the user's, a link's) travels, or Grad-CAM would reopen on a trained demo.
        if "weights" in st.query_params:
            del st.query_params["weights"]
    elif st.query_params.get("weights") != current:
        st.query_params["weights"] = current
    return current


def _demo_caption(key: str) -> None:
    """What the embedded demo is: its recorded held-out accuracy, and how to get weights that know photos."""
    try:
        images = demo.demo_metrics()["models"][demo.demo_model(key).key]["test_images"]
        accuracy = f"{demo.demo_test_accuracy(key):.1%} accuracy on {images:,} held-out Shapes images"
    except (WeightsError, KeyError, ValueError):
        accuracy = "trained on the Shapes set"
    st.caption(f"Ships with the app, trained by `make demo-models`: {accuracy}. {demo.PHOTO_WEIGHTS_HINT}")


def _download_with_progress(name: str, member: str) -> None:
    """Fetch torchvision weights into torch.hub's cache with a progress bar, when missing and online.

    Offline, nothing happens here: loading the model then names the file and the folder to put it in.
    """
    path = hub_checkpoint_path(name, member)
    if path.exists() or not network_available():
        return
    bar = st.progress(0.0, text=f"Downloading {path.name}...")

    def report(done: int, total: int) -> None:
        text = f"Downloading {path.name}: {done / 2**20:.0f}" + (f" of {total / 2**20:.0f} MB" if total else " MB")
        bar.progress(min(done / total, 1.0) if total else 0.0, text=text)

    try:
        download_torchvision_weights(name, member, report)
    except (WeightsError, OSError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error  # no server path
        st.error(f"Downloading {path.name} failed ({reason}); check the connection and reload, or save the file "
                 f"in {HUB_FOLDER} yourself.")
    bar.empty()


def _sidebar_options(name: str) -> dict[str, Any]:
    """The architecture options the sidebar shows right now (read from its widgets' state)."""
    width = st.session_state.get("sb_width") or "full"
    return build_options(name, residual=not st.session_state.get("sb_plain", False),
                         shortcut=st.session_state.get("sb_shortcut", "B"),
                         stride_on=st.session_state.get("sb_stride", "3x3"),
                         preact=bool(st.session_state.get("sb_preact", False)),
                         width_factor=width if width in WIDTH_FACTORS else "full")
