"""The Grad-CAM page's trust table (AppTest): the plan said before the work, the table's cells from the library's
rows, each metric coloured on its own scale, the verdict, and localisation only where the image has a mask."""

from __future__ import annotations

import numpy as np

from resnet_core import cam
from resnet_core.plots.cam_trust import trust_goodness
from tests.app.test_grad_cam import _array, _figures, _fresh


def _trust_chart(app) -> dict:
    (chart,) = [f for f in _figures(app) if f["data"] and f["data"][0].get("type") == "heatmap"
                and any("robustness" in str(x) for x in f["data"][0].get("x", []))]
    return chart["data"][0]


def test_the_shapes_demo_scores_trust_in_six_categories_with_its_mask():
    at = _fresh({"arch": "resnet20", "weights": "demo:resnet20", "gc_source": "shapes", "gc_trust_samples": "2",
                 "gc_trust_methods": "gradcam,eigencam,lrp"})
    assert at.multiselect(key="gc_trust_methods").value == ["gradcam", "eigencam", "lrp"]
    plan = [c.value for c in at.caption if "Trust scores take about" in c.value]
    assert len(plan) == 1 and "forward passes" in plan[0]  # said before anything runs
    at.button(key="gc_trust").click().run()
    assert not at.exception, at.exception
    request, table = at.session_state["gc_trust_table"]
    assert request[4] == ("gradcam", "eigencam", "lrp") and request[5] == 2
    # Localisation measured: a held-out Shapes image has its object's mask.
    localised = table[table["category"] == "localisation"]
    assert localised["value"].notna().all()
    assert table.attrs["notes"] == []
    trace = _trust_chart(at)
    labels = [cam.METHODS[m] for m in ("gradcam", "eigencam", "lrp")]
    assert list(trace["y"]) == labels
    assert len(trace["x"]) == len(cam.TRUST_METRICS)
    assert all(("\u2191" in h) or ("\u2193" in h) for h in trace["x"])  # the better direction, marked
    z = _array(trace["z"]).reshape(3, len(cam.TRUST_METRICS))
    expected = trust_goodness(table).to_numpy(dtype=float)
    assert np.allclose(np.nan_to_num(z, nan=-1), np.nan_to_num(expected, nan=-1))
    # Each cell's text is the library's value for that method and metric.
    values = table.pivot(index="method", columns="metric", values="value")
    for row, method in enumerate(("gradcam", "eigencam", "lrp")):
        for column, (_, metric, _) in enumerate(cam.TRUST_METRICS):
            value = values.loc[method, metric]
            text = trace["text"][row][column]
            assert text == "-" if not np.isfinite(value) else float(text) == float(f"{value:.3g}")
    verdicts = [m.value for m in at.markdown if " leads in " in m.value]
    assert verdicts == [cam.trust_verdict(table)]


def test_a_photo_says_localisation_needs_a_mask():
    at = _fresh({"weights": "random", "gc_source": "photo", "gc_trust_samples": "1", "gc_trust_methods": "gradcam"})
    at.button(key="gc_trust").click().run()
    assert not at.exception, at.exception
    _, table = at.session_state["gc_trust_table"]
    assert table[table["category"] == "localisation"]["value"].isna().all()
    assert any("Localisation needs object masks" in c.value for c in at.caption)
    # Another method picked: the scored table is from the old request and says so instead of showing.
    at.multiselect(key="gc_trust_methods").set_value(["gradcam", "layercam"]).run()
    assert any("press the button to score again" in c.value for c in at.caption)
