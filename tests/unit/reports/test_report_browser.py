"""The HTML page in headless Chromium: the charts draw (not a blank page) and are in the DOM."""

from __future__ import annotations

from pathlib import Path

from backend.config import Settings
from backend.reports.render import to_html
from tests.unit.reports.cases import report_of
from tests.unit.reports.support import browse, chromium, coloured_pixels, insert_runs


def test_charts_render_in_chromium(settings: Settings, tmp_path: Path) -> None:
    chromium()
    runs = [{"load": 0.4, "fit": 1.0 + (i % 5) * 0.1, "store": 0.2} for i in range(40)]
    insert_runs(settings, "train", runs)
    page = tmp_path / "report.html"
    page.write_text(to_html(report_of(settings, kind="train")), encoding="utf-8")
    png, dom = browse(page.as_uri(), tmp_path)
    assert dom.count('data-chart="stacked"') == 1 and dom.count('data-chart="box"') == 1
    assert dom.count('class="seg"') == 120
    # The stacked bars alone fill thousands of coloured pixels; a blank page has none.
    assert coloured_pixels(png) > 20_000
