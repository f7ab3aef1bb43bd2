"""A real `streamlit run` in Debian's Chromium: open the app, change the architecture, visit every page."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import screenshot, wait_idle

pytestmark = pytest.mark.browser


def _no_exception(tab) -> None:
    assert tab.locator('[data-testid="stException"]').count() == 0, "a traceback is on the page"


def _pick_architecture(tab, label_start: str) -> None:
    """Open the sidebar's Architecture selectbox and click the option whose label starts with ``label_start``."""
    sidebar = tab.locator('[data-testid="stSidebar"]')
    sidebar.locator('[data-testid="stSelectbox"]').first.click()
    tab.get_by_role("option", name=re.compile("^" + re.escape(label_start))).first.click()
    wait_idle(tab)


def _picker_label_is_whole(tab, label: str) -> None:
    """The sidebar's Architecture box shows ``label`` in full at 1280x720: no element of it cuts its text."""
    box = tab.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
    shown = box.evaluate("""(box, label) => [...box.querySelectorAll('*')].filter(e =>
        [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.includes(label)) ||
        (e.value || '').includes(label)).map(e => ({text: e.textContent || e.value, cut: e.scrollWidth > e.clientWidth + 1}))""",
                         label)
    assert shown, f"{label!r} is not shown in the Architecture box"
    assert not [s["text"] for s in shown if s["cut"]], shown


def test_architecture_page_and_model_picker(page, server_url: str) -> None:
    tab = page
    tab.goto(server_url)
    main = tab.locator('[data-testid="stMain"]')
    main.get_by_text("Architecture of ResNet-20").wait_for()
    tab.locator('[data-testid="stPlotlyChart"] .main-svg').nth(5).wait_for()  # the last chart is drawn
    wait_idle(tab)
    _no_exception(tab)
    main.get_by_text("269,722", exact=True).first.wait_for()  # the Parameters metric
    main.get_by_text("Stage table (the paper's CIFAR-10 table, section 4.2)").wait_for()  # a CIFAR net's own table
    main.get_by_text("BasicBlock vs Bottleneck at 256 channels").wait_for()
    _picker_label_is_whole(tab, "ResNet-20")
    assert tab.locator('[data-testid="stPlotlyChart"]').count() == 6
    screenshot(tab, "architecture-resnet20")

    _pick_architecture(tab, "ResNet-50")
    main.get_by_text("Architecture of ResNet-50").wait_for()
    tab.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for()
    wait_idle(tab)
    _no_exception(tab)
    # The title can be drawn before the metrics of the same rerun: wait for the number, do not count once.
    main.get_by_text("25,557,032", exact=True).first.wait_for()
    main.get_by_text(re.compile(r"4 projections \(dashed")).wait_for()
    main.get_by_text("Stage table (the paper's Table 1, ImageNet)").wait_for()
    _pick_architecture(tab, "ResNet-101 (CIFAR stem)")  # the longest name the picker shows
    main.get_by_text("Architecture of ResNet-101 (CIFAR stem)").wait_for()
    wait_idle(tab)
    _picker_label_is_whole(tab, "ResNet-101 (CIFAR stem)")
    _pick_architecture(tab, "ResNet-50")
    main.get_by_text("Architecture of ResNet-50").wait_for()
    wait_idle(tab)
    assert "arch=resnet50" in tab.url and "shortcut=B" in tab.url
    screenshot(tab, "architecture-resnet50")


def test_shared_link_reopens_the_same_view(page, server_url: str) -> None:
    tab = page
    tab.goto(f"{server_url}/architecture?arch=resnet56&plain=1")
    main = tab.locator('[data-testid="stMain"]')
    main.get_by_text("Architecture of Plain-56").wait_for()
    wait_idle(tab)
    main.get_by_text("none of its 27 blocks has a shortcut", exact=False).wait_for()
    screenshot(tab, "architecture-plain56-from-link")
    tab.goto(f"{server_url}/architecture?arch=resnet9000")
    tab.get_by_text("is not an architecture ResNet Explorer knows").wait_for()
    wait_idle(tab)
    _no_exception(tab)
    main.get_by_text("Architecture of ResNet-20").wait_for()
    screenshot(tab, "architecture-bad-link")


def test_every_sidebar_page(page, server_url: str) -> None:
    tab = page
    tab.goto(f"{server_url}/?reveal=1")  # the answers without their questions first, on every page of the session
    nav = tab.locator('[data-testid="stSidebarNav"]')
    nav.wait_for()
    wait_idle(tab)
    # A link's text is its material icon's name, then the title: keep the title.
    names = [text.strip().splitlines()[-1].strip() for text in nav.get_by_role("link").all_inner_texts()]
    assert "Architecture" in names and "Why residuals work" in names
    for index, name in enumerate(names):
        nav.get_by_role("link").nth(index).click()
        tab.wait_for_timeout(1000)  # let the rerun start before waiting for it to finish
        wait_idle(tab)
        heading = tab.locator('[data-testid="stMain"] h1').first
        heading.wait_for()
        assert heading.inner_text().strip(), name
        main = tab.locator('[data-testid="stMain"]')
        if name == "Why residuals work":
            # The last step's sentence: everything above it has been measured and drawn by then.
            main.get_by_text(re.compile(r"2\^54 = 18,014,398,509,481,984 paths")).wait_for()
            wait_idle(tab)
            assert main.get_by_text(re.compile(r"max \|y - x\| = 0$")).count() >= 1
            assert main.get_by_text(re.compile(r"explode toward the input")).count() >= 1
            headers = main.locator("h2").all_inner_texts()
            assert [h.split(".")[0].strip() for h in headers if h[:1].isdigit()] == [str(i) for i in range(1, 9)]
            # steps 1-5 draw one figure each; the landscape, lesion and Grad-CAM steps at least one more each
            assert tab.locator('[data-testid="stPlotlyChart"]').count() >= 8
        _no_exception(tab)
        screenshot(tab, "page-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"))
