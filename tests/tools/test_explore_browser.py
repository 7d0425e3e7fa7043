"""The explorer in a real browser: Debian's Chromium, headless, driven by Playwright's Python
package with the system browser (no browser download). Skips where either is missing:
`apt-get install chromium` and `pip install -e '.[explore]'`.

The seed example is stepped as the lecture does it (f = 6; x, y, z = 2, 5, 0), edited
(z = 4, x = -1: f = 4 with gradients 4, 4, 1), and every shipped config runs without a console
error. The README's screenshot is the seed example mid-backward; to remake it:
    GATEWORK_EXPLORER_PNG=docs/explorer.png python -m pytest tests/tools/test_explore_browser.py
"""
from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from net import Net
from net.tools.explore import Explorer, make_server
from tests.helpers import CONFIGS

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright "
                                                             "(pip install -e '.[explore]')")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("the browser tests need Chromium (apt-get install chromium)",
                allow_module_level=True)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


class Served:
    """An explorer served on 127.0.0.1 and a browser page on it, collecting console errors."""

    def __init__(self, browser, config: Path):
        self.httpd = make_server(Explorer(Net.from_yaml(config)))
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        host, port = self.httpd.server_address[:2]
        self.page = browser.new_page(viewport={"width": 1280, "height": 720})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))
        self.page.goto(f"http://{host}:{port}/")

    def click(self, button: str, times: int = 1) -> None:
        for _ in range(times):
            self.page.click(f"#{button}")

    def attribute(self, blob: str, what: str):
        text = self.page.get_attribute(f'[data-blob="{blob}"]', f"data-{what}")
        return None if text is None else json.loads(text)

    def status(self) -> str:
        return self.page.inner_text("#status")

    def close(self) -> None:
        self.page.close()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(browser):
    opened = []

    def open_config(config: Path) -> Served:
        opened.append(Served(browser, config))
        return opened[-1]
    yield open_config
    for each in opened:
        each.close()


def test_seed_example_step_by_step(served, tmp_path):
    seed = served(CONFIGS / "seed_example.yaml")
    assert seed.status() == "next: forward add (Add)"
    assert seed.attribute("x", "value") == 1 and seed.attribute("a", "value") is None
    seed.click("forward-step", 3)
    assert seed.attribute("f", "value") == 6
    assert (seed.attribute("a", "value"), seed.attribute("b", "value")) == (3, 2)
    assert seed.attribute("f", "grad") is None
    assert seed.status() == "next: backward mul (Multiply)"
    seed.click("backward-step", 2)
    assert seed.attribute("b", "grad") == 3 and seed.attribute("x", "grad") is None
    assert seed.attribute("y", "grad") is None               # 3 of its 5 has arrived
    panel = seed.page.inner_text("#step-panel")
    assert "df/dy = 3 x 1 = 3" in panel and "df/dz = 3 x 0 = 0" in panel
    seed.page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
    assert (tmp_path / "explorer.png").read_bytes()[:4] == b"\x89PNG"
    if os.environ.get("GATEWORK_EXPLORER_PNG"):
        shutil.copy(tmp_path / "explorer.png", os.environ["GATEWORK_EXPLORER_PNG"])
    seed.click("backward-step")
    assert [seed.attribute(n, "grad") for n in "xyz"] == [2, 5, 0]
    assert "y fans out to add, max: df/dy = 2 + 3 = 5" in seed.page.inner_text("#step-panel")
    assert seed.status() == "done: every value and gradient computed"
    seed.page.fill('input[data-input="z"]', "4")
    seed.page.fill('input[data-input="x"]', "-1")
    seed.click("run-all")
    seed.page.wait_for_function("document.querySelector('[data-blob=\"f\"]').dataset.value === '4'")
    assert seed.attribute("f", "value") == 4
    assert [seed.attribute(n, "grad") for n in "xyz"] == [4, 4, 1]
    seed.click("reset")
    assert seed.attribute("f", "value") is None and seed.attribute("x", "value") == -1
    assert seed.errors == []


def test_a_bad_input_is_reported_on_the_page(served):
    seed = served(CONFIGS / "seed_example.yaml")
    seed.page.fill('input[data-input="x"]', "[1, 2]")
    seed.click("forward-step")
    seed.page.wait_for_selector("#error:not([hidden])")
    assert "input 'x' has shape (2,) but the config declares ()" in seed.status()
    assert seed.attribute("a", "value") is None


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_runs_without_a_console_error(served, config):
    net = served(config)
    net.click("run-all")
    assert net.status() == "done: every value and gradient computed"
    blobs = net.page.eval_on_selector_all("[data-blob]", "els => els.map(e => e.dataset.blob)")
    assert blobs and all(net.attribute(b, "value") is not None for b in blobs)
    assert net.errors == []


def test_lenet_runs_without_a_console_error(served):
    lenet = served(CONFIGS / "lenet_digits.yaml")
    lenet.click("forward-step", 2)
    assert lenet.attribute("conv1", "value")["shape"] == [8, 20, 8, 8]
    lenet.click("run-all")
    assert isinstance(lenet.attribute("loss", "value"), float)
    assert lenet.attribute("conv1.W", "grad")["shape"] == [20, 1, 3, 3]
    assert lenet.attribute("label", "grad") is None             # integers: no gradient
    assert lenet.errors == []
