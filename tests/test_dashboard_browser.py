"""The web dashboard in a real browser: Debian's chromium, headless, driven by selenium through
chromium-driver, against `a3s-gateway run` with a backend process that the test kills.

One browser session visits every page, checks that the configured names render, that the
backend that served the traffic shows its latency, that the killed backend shows as down
(polled: no timing assertion), and that the live chart advances.
It saves a screenshot of each page: into a temporary directory, or into docs/img/ with
`make screenshots` (A3S_SCREENSHOTS=docs/img). The browser side does not depend on the
gateway's event loop, so this runs once (the live feed's own tests run on all three).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from .stubs import free_ports

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import WebDriverException  # noqa: E402

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="chromium and chromium-driver (scripts/install-test-deps.sh)"
)
GATEWAY = str(Path(sys.executable).with_name("a3s-gateway"))
PAGES = ("overview", "routers", "services", "scalers", "rollouts", "graph", "live")


def config(web: int, admin: int, backend: str) -> str:
    return f"""
entrypoints "web" {{ address = "127.0.0.1:{web}" }}

middlewares "office-only" {{
  type  = "ip-allow"
  allowed_ips = ["127.0.0.1/32"]
}}

middlewares "tag" {{
  type             = "headers"
  response_headers = {{ "x-served-by" = "a3s" }}
}}

routers "chat" {{
  rule        = "PathPrefix(`/v1`)"
  service     = "llm"
  middlewares = ["tag"]
}}

routers "embeddings" {{
  rule    = "PathPrefix(`/embed`)"
  service = "embedder"
}}

routers "canary" {{
  rule    = "PathPrefix(`/canary`)"
  service = "canary"
}}

services "llm" {{
  load_balancer {{
    servers = [{{ url = "{backend}" }}]
    health_check {{
      path                = "/health"
      interval            = "200ms"
      timeout             = "1s"
      unhealthy_threshold = 1
    }}
  }}
}}

services "embedder" {{
  load_balancer {{ servers = [{{ url = "demo://embedder" }}] }}
  scaling {{
    min_replicas = 1
    executor     = "static"
  }}
}}

services "canary" {{
  revisions = [
    {{ name = "v1", traffic_percent = 100, servers = [{{ url = "demo://v1" }}] }},
    {{ name = "v2", traffic_percent = 0, servers = [{{ url = "demo://v2" }}] }},
  ]
  rollout {{
    from               = "v1"
    to                 = "v2"
    step_percent       = 20
    step_interval_secs = 3600
  }}
}}

api {{
  address     = "127.0.0.1:{admin}"
  dashboard   = true
  middlewares = ["office-only"]
}}
"""


@contextmanager
def process(args: list[str], ready: Callable[[], bool], **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
    try:
        try:
            poll(lambda: proc.poll() is not None or ready(), what=f"{args[0]} to serve", timeout=30)
        finally:
            if proc.poll() is not None:
                assert proc.stderr is not None
                raise AssertionError(f"{args} exited: {proc.stderr.read().decode()}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def poll(cond: Callable[[], Any], *, what: str, timeout: float = 20.0) -> Any:
    """Poll until `cond()` is truthy (a generous bound, never a measurement)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = cond()
        except WebDriverException:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextmanager
def traffic(url: str) -> Iterator[None]:
    """Steady requests (about 20 a second) so the live charts have something to draw."""
    stop = threading.Event()

    def run() -> None:
        with httpx.Client(timeout=2) as client:
            while not stop.is_set():
                try:
                    client.get(url)
                except httpx.HTTPError:
                    pass
                stop.wait(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


@contextmanager
def chromium() -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def screenshots_dir(tmp_path: Path) -> Path:
    target = os.environ.get("A3S_SCREENSHOTS")
    out = Path(target) if target else tmp_path / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


def texts(driver: Any, css: str) -> list[str]:
    """The text of every element matching `css`, read in one script: the pages redraw every
    second, so an element found by one WebDriver call may be gone by the next."""
    script = "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent);"
    return list(driver.execute_script(script, css))


def attribute(driver: Any, css: str, name: str) -> str | None:
    script = "const e = document.querySelector(arguments[0]); return e && e.getAttribute(arguments[1]);"
    value = driver.execute_script(script, css, name)
    return None if value is None else str(value)


def test_every_page_renders_a_killed_backend_shows_down_and_the_chart_advances(tmp_path: Path) -> None:
    shots = screenshots_dir(tmp_path)
    files = tmp_path / "backend"
    files.mkdir()
    (files / "health").write_text("ok")
    (files / "models").write_text('{"data": []}')
    port, web, admin = free_ports(3)
    backend_url = f"http://127.0.0.1:{port}"
    (tmp_path / "gw.hcl").write_text(config(web, admin, backend_url))
    base = f"http://127.0.0.1:{admin}/dashboard/"
    server = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    gateway = [GATEWAY, "run", "--config", str(tmp_path / "gw.hcl")]
    with (
        process(server, lambda: answers(f"{backend_url}/health"), cwd=files) as backend,
        process(gateway, lambda: answers(f"http://127.0.0.1:{admin}/ping")),
        traffic(f"http://127.0.0.1:{web}/v1/models"),
        chromium() as driver,
    ):

        def visit(page: str, ready_css: str) -> None:
            # One page load, then hash changes, as a user clicking the menu: the charts keep
            # their history and the state changes seen so far stay listed.
            driver.get(f"{base}#/{page}")
            poll(lambda: texts(driver, f"#page-{page} {ready_css}"), what=page)

        def points() -> int:
            return int(attribute(driver, "#chart-rate", "data-points") or 0)

        visit("overview", 'tr[data-name="chat"]')
        names = set(texts(driver, "#page-overview tr[data-name] td:first-child"))
        assert {"chat", "embeddings", "canary", "api@internal built in"} <= names
        assert {"tag", "office-only"} <= set(
            texts(driver, "#page-overview table:last-of-type td:first-child")
        )
        # The live chart advances and shows the traffic: its point count grows, the rate is > 0.
        start = poll(points, what="the first sample")
        poll(lambda: points() >= start + 3, what="the chart to advance")
        rate = lambda: float((attribute(driver, "#chart-rate", "data-last") or "0").split(",")[0] or 0)  # noqa: E731
        poll(lambda: rate() > 0, what="a rate > 0")
        driver.save_screenshot(str(shots / "dashboard-overview.png"))

        visit("routers", 'tr[data-name="chat"]')
        [chat] = texts(driver, 'tr[data-name="chat"]')
        assert "PathPrefix(`/v1`)" in chat and "tag" in chat and "llm" in chat
        [dashboard] = texts(driver, 'tr[data-name="dashboard@internal"]')
        assert "office-only" in dashboard
        driver.save_screenshot(str(shots / "dashboard-routers.png"))

        visit("scalers", 'tr[data-name="embedder"]')
        driver.save_screenshot(str(shots / "dashboard-scalers.png"))
        visit("rollouts", 'tr[data-name="canary"]')
        assert "v1 → v2" in texts(driver, 'tr[data-name="canary"]')[0]
        driver.save_screenshot(str(shots / "dashboard-rollouts.png"))
        visit("graph", 'g[data-id="router:chat"]')
        assert texts(driver, '#graph-svg g[data-id="service:dashboard@internal"]')
        driver.save_screenshot(str(shots / "dashboard-graph.png"))

        backend_row = f'tr[data-backend="{backend_url}"]'
        visit("services", f'{backend_row}[data-health="up"]')
        # The backend served the traffic: its row shows its p50 and p99 to the response head.
        p99 = poll(lambda: attribute(driver, backend_row, "data-p99"), what="the backend's latency")
        assert float(p99) > 0
        p50_cell, p99_cell = texts(driver, f"{backend_row} td.num")[-2:]
        assert float(p50_cell) <= float(p99_cell), (p50_cell, p99_cell)
        # The backend dies: the page shows it down once the health check has seen it (the
        # live feed's health event redraws it), without a reload of the page.
        backend.kill()
        backend.wait()
        poll(lambda: texts(driver, f'{backend_row}[data-health="down"]'), what="the backend shown down")
        driver.save_screenshot(str(shots / "dashboard-services.png"))

        visit("live", "#chart-latency")
        # The health flip came through the live feed while the services page was shown.
        flips = poll(lambda: texts(driver, '#events li[data-event="health"]'), what="the health flip listed")
        assert f"{backend_url} is down" in flips[0]
        poll(lambda: points() >= start + 8, what="the live page's chart")
        driver.save_screenshot(str(shots / "dashboard-live.png"))
        errors = [
            e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]
        ]
        assert not errors, errors
    assert sorted(p.name for p in shots.glob("dashboard-*.png")) == sorted(
        f"dashboard-{p}.png" for p in PAGES
    )
