"""Links and the network in a real browser: a server started the plain way (no --server.address) from a
directory other than the repository binds to loopback only; every page opens from its own URL; a crafted link
puts no link or image on the page; the browser fetches nothing from any host but the server."""

from __future__ import annotations

import re
import socket
import urllib.parse
from pathlib import Path

import pytest
from explorer_ui.warm_start import navigation_pages

from tests.browser.conftest import new_tab, screenshot, wait_idle
from tests.conftest import APP_SCRIPT

pytestmark = pytest.mark.browser

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
HOSTILE = "[x](http://evil.example)![i](http://evil.example/i.png)<img src=http://evil.example/h.png>"


def _pages() -> list[tuple[str, str]]:
    """(title, url_path) of every page app/navigation.py navigates to (warm_start's one reader of that list)."""
    pages = navigation_pages(APP_SCRIPT)
    assert len(pages) >= 6, pages
    return pages


@pytest.fixture
def recorded(profile, server_url):
    """A fresh tab on the browser tests' server and the list of every URL it requests."""
    tab = new_tab(profile)
    requests: list[str] = []
    tab.on("request", lambda request: requests.append(request.url))
    yield tab, requests
    tab.close()


def _listening_addresses(port: int) -> list[str]:
    """Local addresses of the sockets listening on ``port`` (from /proc/net/tcp and tcp6, state 0A = LISTEN)."""
    found = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] != "0A" or int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.append(socket.inet_ntop(family, raw))
    return found


def _foreign_hosts(requests: list[str]) -> set[str]:
    hosts = set()
    for url in requests:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme in ("data", "blob"):
            continue
        if parts.hostname not in LOCAL_HOSTS:
            hosts.add(f"{parts.scheme}://{parts.hostname}")
    return hosts


def _open(tab, url: str, title: str) -> None:
    tab.goto(url)
    tab.locator('[data-testid="stMain"] h1').filter(has_text=re.compile("^" + re.escape(title))).first.wait_for()
    wait_idle(tab)


def test_server_binds_to_loopback_only_from_any_directory(server_url) -> None:
    """conftest.server_url is started without an address flag from an empty folder."""
    port = urllib.parse.urlsplit(server_url).port
    addresses = _listening_addresses(port)
    assert addresses, f"nothing listens on port {port}"
    assert set(addresses) <= {"127.0.0.1", "::1"}, addresses


def test_every_page_opens_from_its_own_link_and_nothing_leaves_loopback(recorded, server_url) -> None:
    tab, requests = recorded
    url = server_url
    for title, path in _pages():
        _open(tab, f"{url}/{path}", title)
        assert urllib.parse.urlsplit(tab.url).path == f"/{path}"
        assert tab.get_by_text("Page not found").count() == 0, path
        assert tab.locator('[data-testid="stException"]').count() == 0, path
        # The sidebar's link for this page is the current one.
        current = tab.locator('[data-testid="stSidebarNav"] a[aria-current="page"]')
        assert title in current.inner_text(), path
    # The root forwards to the first page and keeps the link's settings.
    _open(tab, f"{url}/?arch=resnet56&plain=1", "Architecture")
    assert urllib.parse.urlsplit(tab.url).path == "/architecture"
    assert tab.locator('[data-testid="stMain"] h1').first.inner_text().startswith("Architecture of Plain-56")
    assert "arch=resnet56" in tab.url
    hosts = {urllib.parse.urlsplit(u).hostname for u in requests if u.startswith("http")}
    assert hosts and not _foreign_hosts(requests), _foreign_hosts(requests)


def test_crafted_link_puts_no_link_or_image_on_the_page(recorded, server_url) -> None:
    tab, requests = recorded
    url = server_url
    query = urllib.parse.urlencode({"arch": HOSTILE, "weights": "ckpt:/etc/passwd", "x" * 300: "1"})
    _open(tab, f"{url}/architecture?{query}", "Architecture")
    main = tab.locator('[data-testid="stMain"]')
    sidebar = tab.locator('[data-testid="stSidebar"]')
    # The notices are at the top of the main area, above the page's title.
    main.locator('[data-testid="stCode"]').filter(has_text="ckpt:/etc/passwd").first.wait_for()
    wait_idle(tab)
    assert tab.locator('a[href*="evil"]').count() == 0
    assert tab.locator('img[src*="evil"]').count() == 0
    # The refused text is repeated verbatim, in a code box, and the view actually shown is named.
    assert main.locator('[data-testid="stCode"]').filter(has_text="evil.example").count() == 1
    text = main.inner_text()
    assert "not an architecture ResNet Explorer knows; ResNet-20 is shown instead." in text
    assert "ckpt:/etc/passwd" in main.locator('[data-testid="stCode"]').all_inner_texts()
    assert "is not a checkpoint in the runs or uploads folders" in text
    assert text.index("not an architecture") < text.index("Architecture of ResNet-20")  # above the title
    assert "not an architecture" not in sidebar.inner_text()
    assert tab.locator('[data-testid="stMain"] h1').first.inner_text() == "Architecture of ResNet-20"
    # app/.streamlit/config.toml applied although the server started elsewhere: Streamlit's dropzone states its
    # 256 MB upload limit (200 MB without it).
    sidebar.get_by_text("Upload a checkpoint", exact=True).click()
    assert "256MB per file" in sidebar.locator('[data-testid="stFileUploaderDropzoneInstructions"]').inner_text()
    assert not _foreign_hosts(requests), _foreign_hosts(requests)
    screenshot(tab, "hostile-link")


def test_a_refused_checkpoint_names_the_weights_actually_shown(recorded, server_url) -> None:
    """Grad-CAM starts with the embedded demo: a refused ``weights=`` says so, not "random weights"."""
    tab, _ = recorded
    url = server_url
    _open(tab, f"{url}/grad-cam?weights=ckpt:/etc/passwd", "Grad-CAM")
    main = tab.locator('[data-testid="stMain"]')
    main.locator('[data-testid="stCode"]').filter(has_text="ckpt:/etc/passwd").first.wait_for()
    wait_idle(tab)
    text = main.inner_text()
    assert ("is not a checkpoint in the runs or uploads folders (upload the file or pick a run's checkpoint in "
            "the Weights box); ResNet-20 trained on Shapes (embedded demo) is shown instead.") in text
    assert "with ResNet-20 trained on Shapes (embedded demo) weights" in text  # the page's own caption agrees
    screenshot(tab, "refused-checkpoint-grad-cam")
