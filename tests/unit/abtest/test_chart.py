"""The CTR chart is a real PNG."""

from __future__ import annotations

import io

from matplotlib.image import imread

from backend.abtest.analysis import analyze
from backend.abtest.chart import render_ctr_chart
from backend.abtest.counts import VariantCounts


def test_chart_is_a_png_of_plausible_size() -> None:
    result = analyze(
        [
            VariantCounts("A", 10_000, 10_000, 500),
            VariantCounts("B", 10_000, 10_000, 580),
            VariantCounts("C", 40, 0, 0),
        ],
        control="A",
    )
    png = render_ctr_chart(result)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert 5_000 < len(png) < 500_000
    height, width, _ = imread(io.BytesIO(png), format="png").shape
    assert width >= 400 and height >= 300
