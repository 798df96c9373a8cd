"""report.html: one self-contained file (no network, no script), every section with data present and none
without, within 2 MB for a conversion with every section; and it renders in a real headless browser
without console errors (Debian's chromium: `apt-get install chromium`; skipped where it is absent)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from qconvert.report.html import report_html, write_html
from tests.report.sample_results import full_result

SECTIONS = ["summary", "pareto", "latency", "int8-parity", "sensitivity", "activations", "training", "bundles"]
BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(name)), None)
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no chromium: apt-get install chromium (see README)")


def _sections(page: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"', page)


def test_every_section_and_nothing_external():
    page = report_html(full_result())
    assert _sections(page) == SECTIONS
    assert not re.search(r'(src|href)\s*=\s*["\']?\s*(https?:)?//', page, re.I)  # no fetched resource
    assert "<script" not in page.lower() and "@import" not in page and "url(" not in page
    assert page.count("<svg") == 6 + 3  # pareto, latency, heatmap, sensitivity, 2 training; 3 histograms
    assert len(page.encode()) <= 2_000_000


def test_sections_without_data_are_left_out():
    result = full_result()
    result.int8_parity, result.sensitivity, result.training, result.metric = [], None, [], None
    result.bundles = []
    for row in result.rows:
        row.latencies_ms = []
    page = report_html(result)
    assert _sections(page) == ["summary", "pareto"]  # SQNR against size without --eval
    assert "SQNR dB against the source against size" in page


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--enable-logging=stderr", "--v=0", *args], capture_output=True, text=True, timeout=120)


def _console_messages(stderr: str) -> list[str]:
    """What the page wrote to its console, and uncaught errors: chromium logs both as CONSOLE lines."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@needs_browser
def test_console_errors_would_be_seen(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><script>console.error("broken chart")</script></body></html>')
    assert any("broken chart" in line for line in _console_messages(_run("--dump-dom", page.as_uri()).stderr))


def check_in_chromium(result, expected: list[str], shot: Path) -> None:
    """Renders report.html for `result` in chromium: no console message, the `expected` sections as the
    browser parsed them, and a screenshot (kept at `shot`) with text and coloured charts on it."""
    from PIL import Image

    path = write_html(result, shot.with_suffix(".html"), "models/vgg.pt2")
    dom = _run("--dump-dom", path.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console_messages(dom.stderr) == []
    assert _sections(dom.stdout) == expected
    _run("--window-size=1280,2000", f"--screenshot={shot}", path.as_uri())
    rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert rgb.shape == (2000, 1280, 3)
    assert (rgb.min(axis=2) < 200).mean() > 0.005  # text, tables and charts: not a blank page
    assert ((rgb.max(axis=2) - rgb.min(axis=2)) > 60).mean() > 0.001  # the charts' colours: the SVG was drawn


@needs_browser
@pytest.mark.parametrize("kind", ["conversion", "sensitivity"])
def test_renders_in_chromium(kind, tmp_path):
    result = full_result()
    if kind == "conversion":
        check_in_chromium(result, SECTIONS, tmp_path / "conversion.png")
    else:
        check_in_chromium(result.sensitivity, ["sensitivity", "activations"], tmp_path / "sensitivity.png")
