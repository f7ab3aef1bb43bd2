"""Seconds from navigation to each page's main chart or metric on screen: cold (a fresh server) and warm.

For every page of app/main.py (its url paths): a fresh ``streamlit run app/main.py`` on a new, empty runs folder
and TORCH_HOME, offline; a new Chromium tab (Debian's, 1280x720) goes to the page's URL and the clock runs until
the page's main element is visible ("visible"), then until the script run has finished ("done"). That is the cold
visit (first visit of that page on a freshly started server: imports, model builds, caches all cold). Then a
second tab (a new session, as a second student) visits the same page on the same server: the warm visit. Also
printed: the seconds until the fresh server answered its health check, and the load average (1/5/15 min)
before and after, since the machine is shared.

    python benchmarks/bench_cold_start.py [--pages architecture,grad-cam]

Measured on the shared 2-core machine, 2026-11-30, other sessions' tests running (load average 6.6 / 7.6 / 6.1
before, 7.0 / 7.4 / 6.3 after; 6.0-7.8 during), the embedded demo models installed, no torchvision weights:

    page            server up  cold visible  cold done  warm visible  warm done
    architecture         1.6s          9.9s      15.3s          2.2s       2.6s
    why-residuals        1.9s         16.9s      53.9s         11.5s      11.8s
    activations          1.6s         18.5s      18.8s          6.8s       7.1s
    gradient-flow        1.4s         17.5s      17.8s          4.4s       4.8s
    training             1.2s         10.8s      11.1s          2.7s       3.0s
    grad-cam             1.5s         15.2s      15.5s          5.3s       5.6s

Main elements: Architecture's metrics, the lesson's step-2 chart (its cold "done" includes steps 6-8 on the
demo pair), Activations' depth chart, Gradient flow's norms, Training's Start button, Grad-CAM's map.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from app_server import chromium, fresh_env, idle, load, page_paths, server

# The element that means "the page is up" for each url path: its main chart, its headline metrics, or (Training,
# where nothing is drawn before a race starts) its Start button.
MAIN = {
    "architecture": '[data-testid="stMetricValue"]',
    "why-residuals": ".st-key-lesson_identity .main-svg",
    "activations": ".st-key-act_depth .main-svg",
    "gradient-flow": ".st-key-gf_norms .main-svg",
    "training": '[data-testid="stMain"] button:has-text("Start")',
    "grad-cam": ".st-key-gc_map .main-svg",
}
FALLBACK = '[data-testid="stPlotlyChart"] .main-svg, [data-testid="stMetricValue"]'


def visit(browser, url: str, path: str) -> tuple[float, float]:
    """(seconds until the main element is visible, seconds until the script run finished) for one new session."""
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    tab = context.new_page()
    tab.set_default_timeout(600_000)
    try:
        start = time.perf_counter()
        tab.goto(f"{url}/{path}", wait_until="commit")
        tab.locator(MAIN.get(path, FALLBACK)).first.wait_for(state="visible")
        shown = time.perf_counter() - start
        idle(tab)
        done = time.perf_counter() - start
        if tab.locator('[data-testid="stException"]').count():
            raise RuntimeError(f"the {path} page raised an exception")
        return shown, done
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", help="comma-separated url paths (default: every page of app/main.py)")
    args = parser.parse_args()
    paths = args.pages.split(",") if args.pages else page_paths()
    print(f"load average before: {load()}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp, chromium() as browser:
        for path in paths:
            folder = Path(tmp) / path
            with server(fresh_env(folder), folder.with_suffix(".log")) as (url, started, _):
                cold = visit(browser, url, path)
                warm = visit(browser, url, path)
            rows.append((path, started, *cold, *warm))
            print(f"{path}: server {started:.1f} s, cold {cold[0]:.1f} s visible / {cold[1]:.1f} s done, warm "
                  f"{warm[0]:.1f} s / {warm[1]:.1f} s; load {load()}", flush=True)
    print()
    print(f"{'page':<15}{'server up':>10}{'cold visible':>14}{'cold done':>11}{'warm visible':>14}{'warm done':>11}")
    for path, started, cold_shown, cold_done, warm_shown, warm_done in rows:
        print(f"{path:<15}{started:>9.1f}s{cold_shown:>13.1f}s{cold_done:>10.1f}s{warm_shown:>13.1f}s"
              f"{warm_done:>10.1f}s")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
