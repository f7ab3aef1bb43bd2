"""The "Download as notebook" button in a real browser: the file Chromium saves is the page's view as a notebook,
and run on a fresh kernel it prints the number the page shows (AppTest cannot see download bytes)."""

from __future__ import annotations

import json

import nbformat
import pytest
from nbclient import NotebookClient

from resnet_core.notebooks import set_small
from tests.browser.conftest import wait_idle

pytestmark = pytest.mark.browser


def test_downloaded_notebook_runs_and_prints_the_pages_number(page, server_url: str, tmp_path) -> None:
    tab = page
    tab.goto(f"{server_url}/architecture?arch=resnet32&plain=1")  # not the default net: a link's choice
    main = tab.locator('[data-testid="stMain"]')
    main.get_by_text("Architecture of Plain-32").wait_for()
    wait_idle(tab)
    metric = main.locator('[data-testid="stMetric"]').filter(has_text="Parameters")
    shown = int(metric.locator('[data-testid="stMetricValue"]').inner_text().replace(",", ""))

    button = tab.locator('[data-testid="stSidebar"]').get_by_role("button", name="Download as notebook", exact=True)
    with tab.expect_download() as info:
        button.click()
    download = info.value
    assert download.suggested_filename == "resnet-explorer-architecture-resnet32-plain.ipynb"
    path = tmp_path / download.suggested_filename
    download.save_as(path)

    notebook = set_small(nbformat.read(path, as_version=4))  # reduced size through its parameters cell
    settings = next(c.source for c in notebook.cells if "parameters" in c.metadata.get("tags", ()))
    assert '"arch": "resnet32",' in settings and '"plain": True,' in settings
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    last = "".join(o.get("text", "") for o in notebook.cells[-1].outputs if o.output_type == "stream")
    summary = json.loads(last.strip().splitlines()[-1])
    assert summary["label"] == "Plain-32"
    assert summary["params"] == shown  # the number the page shows, computed again in the notebook
