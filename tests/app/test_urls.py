"""Hand-edited and hostile links through AppTest: every query parameter is validated in one place
(app/explorer_ui/url_params.py); anything refused falls back to the default with a notice whose sentence is ours
and whose repeat of the link's text is verbatim (a code box), never Markdown; ``ckpt:`` reaches only the runs and
uploads folders."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
import torch
from explorer_ui.notebook_button import SHARED_KEY
from streamlit.testing.v1 import AppTest

import resnet_core
from resnet_core.weights.checkpoints import checkpoint_id
from tests.conftest import APP_SCRIPT

HOSTILE = "[x](http://evil.example)![i](http://evil.example/i.png)<img src=http://evil.example/h.png>"
CODE_TYPES = {"code"}  # elements that show text verbatim


def _open(query: dict[str, str | list[str]]) -> AppTest:
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(APP_SCRIPT), default_timeout=120)
    for name, value in query.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception, at.exception
    return at


def _elements(node) -> Iterator:
    children = getattr(node, "children", None)
    if children is None:
        yield node
        return
    for child in children.values():
        yield from _elements(child)


def _rendered_elsewhere(at: AppTest, needle: str) -> list[str]:
    """Every element outside code boxes whose protobuf holds ``needle`` (Markdown bodies, labels, help, options)."""
    return [el.type for el in _elements(at._tree) if el.type not in CODE_TYPES and needle in str(el.proto)]


def _param(at: AppTest, key: str) -> str:
    value = at.query_params[key]
    return value[0] if isinstance(value, list) else value


def _notices(at: AppTest) -> tuple[list[str], list[str]]:
    """The link's notices: first in the main area (above the page's title), none in the sidebar."""
    area = at.main.children[0]
    shared = at.session_state[SHARED_KEY] if SHARED_KEY in at.session_state else None  # Share this view's own link
    assert not at.sidebar.warning and [c.value for c in at.sidebar.code if c.value != shared] == []
    return [w.value for w in area.warning], [c.value for c in area.code]


def test_crafted_link_puts_no_link_or_image_on_the_page() -> None:
    at = _open({"arch": HOSTILE, HOSTILE: "1"})
    warnings, codes = _notices(at)
    assert warnings == ["The link has a setting ResNet Explorer does not read; it was ignored.",
                        "The link's 'arch' is not an architecture ResNet Explorer knows; ResNet-20 is shown instead."]
    # Repeated verbatim (an unknown setting with its value), in code boxes only, cut at 80 characters.
    assert len(HOSTILE) > 80
    assert codes == [f"{HOSTILE}=1"[:80] + f"… ({len(HOSTILE) + 2:,} characters)",
                     HOSTILE[:80] + f"… ({len(HOSTILE):,} characters)"]
    assert _rendered_elsewhere(at, "evil.example") == []
    assert at.title[0].value == "Architecture of ResNet-20"
    assert HOSTILE not in at.query_params and _param(at, "arch") == "resnet20"  # the URL now holds what is shown


def test_over_long_values_are_refused_with_their_length() -> None:
    at = _open({"arch": "resnet" + "0" * 5000, "weights": "ckpt:/" + "a/" * 3000 + "x.pt"})
    warnings, codes = _notices(at)
    assert warnings == ["The link's 'arch' is 5,006 characters long (at most 200); ResNet-20 is shown instead.",
                        "The link's 'weights' is 6,010 characters long (at most 200); ResNet-20 with random init "
                        "(seed 0) weights is shown instead."]
    # At most 80 characters of a refused value are repeated, with its length.
    assert codes == ["resnet" + "0" * 74 + "… (5,006 characters)", "ckpt:/" + "a/" * 37 + "… (6,010 characters)"]
    assert at.title[0].value == "Architecture of ResNet-20"
    assert at.sidebar.selectbox(key="_sbw_select").value == "random"


def test_unknown_repeated_and_mistyped_parameters() -> None:
    at = _open({"utm_source": "mail", "arch": ["resnet56", "resnet110"], "plain": "2", "preact": "yes",
                "stride": "2x2", "width": "1/2", "shortcut": "a"})
    warnings, codes = _notices(at)
    assert warnings[:2] == ["The link has a setting ResNet Explorer does not read; it was ignored.",
                            "The link's 'arch' is given 2 times; ResNet-20 is shown instead."]
    assert any(w.startswith("The link's 'plain' is not 0 or 1") for w in warnings)
    assert any(w.startswith("The link's 'shortcut' is not a shortcut option (A, B, C)") for w in warnings)
    assert len(warnings) == 6  # five notices and a count of the rest
    assert warnings[-1] == "2 more settings in the link were ignored."
    assert codes[:2] == ["utm_source=mail", "resnet56 | resnet110"]  # an unknown setting with its value
    assert "utm_source" not in at.query_params
    assert at.title[0].value == "Architecture of ResNet-20"
    assert (_param(at, "plain"), _param(at, "shortcut"), _param(at, "width")) == ("0", "A", "full")


def test_many_junk_parameters_get_a_handful_of_notices() -> None:
    at = _open({f"p{i}": str(i) for i in range(300)})
    warnings, codes = _notices(at)
    assert len(warnings) == 6 and warnings[-1] == "295 more settings in the link were ignored."
    assert not any(re.fullmatch(r"p\d+", name) for name in at.query_params)


WEIGHTS_IDS = "is not 'random', 'tv:<torchvision weights>', 'demo:resnet20', 'demo:plain20' or 'ckpt:<checkpoint>'"


@pytest.mark.parametrize("value, reason", [
    ("demo:resnet56", WEIGHTS_IDS),  # the embedded demos are named, so a mistyped one is easy to fix
    ("imagenet", WEIGHTS_IDS),
    ("tv:IMAGENET1K_V1", "is not torchvision weights ResNet-20 has"),  # the CIFAR nets have none
    ("tv:[x](http://evil.example)", "is not torchvision weights ResNet-20 has"),
])
def test_weights_values_that_cannot_be_used(value: str, reason: str) -> None:
    at = _open({"weights": value})
    warnings, codes = _notices(at)
    # What is shown instead is named: this page's starting weights (Architecture: a random initialisation).
    assert warnings == [f"The link's 'weights' {reason}; ResNet-20 with random init (seed 0) weights is shown "
                        "instead."]
    assert codes == [value]
    assert at.sidebar.selectbox(key="_sbw_select").value == "random"
    assert _rendered_elsewhere(at, "evil.example") == []


@pytest.fixture
def checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A real ResNet-20 state_dict saved inside the runs folder, the same file outside it, and a symlink from
    inside to outside."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("RESNET_EXPLORER_RUNS", str(runs))
    state = resnet_core.build("resnet20", seed=0).state_dict()
    inside = runs / "uploads" / "mine.pt"
    outside = tmp_path / "elsewhere" / "secret.pt"
    for path in (inside, outside):
        path.parent.mkdir(parents=True)
        torch.save(state, path)
    link = runs / "uploads" / "link.pt"
    link.symlink_to(outside)
    return {"inside": inside, "outside": outside, "link": link, "runs": runs}


def test_ckpt_reaches_only_the_runs_and_uploads_folders(checkpoints: dict[str, Path]) -> None:
    refused = "The link's 'weights' is not a checkpoint in the runs or uploads folders"
    # An existing file elsewhere, a missing one, a way out with "..", a symlink out, a system file: one sentence.
    sentences = set()
    for value in (checkpoints["outside"], checkpoints["outside"].with_name("missing.pt"),
                  checkpoints["runs"] / ".." / "elsewhere" / "secret.pt", checkpoints["link"], "/etc/passwd",
                  checkpoints["runs"] / "uploads" / "[x](http:" / "evil.example" / "i.pt"):
        at = _open({"weights": f"ckpt:{value}"})
        warnings, codes = _notices(at)
        assert len(warnings) == 1 and warnings[0].startswith(refused), warnings
        text = f"ckpt:{value}"  # at most 80 characters repeated, with the length when cut
        assert codes == [text if len(text) <= 80 else f"{text[:80]}… ({len(text):,} characters)"]
        assert at.sidebar.selectbox(key="_sbw_select").value == "random"
        assert not at.error and _rendered_elsewhere(at, "evil.example") == []
        sentences.add(warnings[0])
    assert len(sentences) == 1  # nothing tells an existing file from a missing one
    # The file inside the folder is used: its architecture is shown and the link keeps it.
    at = _open({"arch": "resnet56", "weights": f"ckpt:{checkpoints['inside']}"})
    assert _notices(at) == ([], [])
    assert at.sidebar.selectbox(key="_sbw_select").value == checkpoint_id(checkpoints["inside"])
    assert any(i.value.startswith("Architecture from the checkpoint: **ResNet-20") for i in at.sidebar.info)
    assert at.title[0].value == "Architecture of ResNet-20"
