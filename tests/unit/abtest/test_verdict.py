"""The plain-words verdict."""

from __future__ import annotations

import pytest

from backend.abtest.analysis import analyze
from backend.abtest.counts import VariantCounts
from backend.abtest.verdict import format_p, format_pp


@pytest.mark.parametrize(
    ("p", "text"),
    [(0.0004, "p < 0.001"), (0.00234, "p = 0.00234"), (0.0499, "p = 0.0499"), (0.41, "p = 0.41")],
)
def test_format_p(p: float, text: str) -> None:
    assert format_p(p) == text


def test_format_pp() -> None:
    assert format_pp(0.008, 1, sign=True) == "+0.8"
    assert format_pp(-0.0123, 2, sign=True) == "-1.23"
    assert format_pp(-0.0001, 1, sign=True) == "0.0"
    assert format_pp(0.003, 1, sign=False) == "0.3"


def test_verdicts_in_each_direction() -> None:
    a = VariantCounts("A", 10_000, 10_000, 500)
    worse = analyze([a, VariantCounts("B", 10_000, 10_000, 420)], control="A").verdict
    assert worse.startswith(
        "B is worse than A on users who clicked: -0.8 pp (95% CI -1.4 to -0.2), p = "
    )
    flat = analyze([a, VariantCounts("B", 10_000, 10_000, 510)], control="A").verdict
    assert flat.startswith(
        "No significant difference between B and A on users who clicked: +0.1 pp"
    )
    assert flat.endswith("; no SRM")


def test_not_enough_data_verdict() -> None:
    result = analyze(
        [VariantCounts("A", 100, 100, 0), VariantCounts("B", 100, 100, 0)], control="A"
    )
    assert result.verdict == "Not enough data: no clicks in any variant."
