"""Teacher mode's locks (AppTest): ``lock=`` hides the named widgets and holds their values, shown as text;
*Share this view* builds the link with a picker for what to lock; an unknown name is refused in one sentence."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from explorer_ui.notebook_button import LOCKS_NOTE, SHARED_KEY

from resnet_core.links import read_link
from tests.app.test_grad_cam import _fresh
from tests.app.test_url_settings import _open


def _keys(app, kind: str) -> set[str]:
    return {w.key for w in app.get(kind)}


def test_a_locked_link_hides_its_widgets_and_holds_their_values():
    at = _fresh({"weights": "random", "gc_method": "gradcampp", "gc_opacity": "0.8",
                 "lock": "gc_method,gc_opacity,arch,weights"})
    assert "gc_method" not in _keys(at, "selectbox") and "gc_opacity" not in _keys(at, "slider")
    assert "sb_arch" not in _keys(at, "selectbox")
    texts = [m.value for m in at.markdown] + [m.value for m in at.sidebar.markdown]
    assert "**Method:** Grad\\-CAM\\+\\+ *(set by this link)*" in texts
    assert "**Opacity:** 0\\.8 *(set by this link)*" in texts
    assert any(t.startswith("**Architecture:**") and t.endswith("*(set by this link)*") for t in texts)
    assert any(t.startswith("**Weights:** random") for t in texts)
    # The values hold: the map is Grad-CAM++'s, and an unlocked widget still works.
    assert any("Grad-CAM++ for" in str(f) for f in at.get("plotly_chart")) or at.session_state["gc_method"] == \
        "gradcampp"
    at.selectbox(key="gc_cmap").set_value("Viridis").run()
    assert not at.exception and at.session_state["gc_method"] == "gradcampp"
    assert at.query_params["lock"] in ("gc_method,gc_opacity,arch,weights", ["gc_method,gc_opacity,arch,weights"])
    # The lock holds on another page of the same session: the sidebar's architecture stays text.
    at.switch_page("../pages/architecture.py").run()
    assert "sb_arch" not in _keys(at, "selectbox")


def test_an_unknown_name_in_lock_is_one_sentence_and_locks_nothing():
    at = _open("../pages/grad_cam.py", {"weights": "random", "lock": "gc_method,teacher_password"})
    assert "gc_method" in _keys(at, "selectbox")
    assert at.link_notices == ["The link's 'lock' is not a comma-separated list of this app's setting names, as its "
                               "links name them (such as gc_method or arch); it was ignored."]


def test_share_this_view_builds_a_link_that_opens_the_same_view_locked():
    at = _fresh({"weights": "random", "gc_method": "layercam"})
    assert LOCKS_NOTE in [c.value for c in at.sidebar.caption] + [c.value for c in at.caption]
    at.multiselect(key="share_lock").set_value(["gc_method", "arch"]).run()
    link = at.session_state[SHARED_KEY]
    query = parse_qs(urlsplit(link).query, keep_blank_values=True)
    values = read_link(query).values
    assert values["lock"] == ["gc_method", "arch"] and values["gc_method"] == "layercam"
    assert not read_link(query).notices
    again = _fresh({k: v[0] for k, v in query.items()})
    assert "gc_method" not in _keys(again, "selectbox") and again.session_state["gc_method"] == "layercam"
