"""Holm–Bonferroni against statsmodels."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from backend.abtest.errors import AbTestInputError
from backend.abtest.multiplicity import holm_adjust


@settings(max_examples=15, deadline=None)  # multipletests runs gc.collect() on every call
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12))
def test_holm_matches_statsmodels(p_values: list[float]) -> None:
    expected = multipletests(p_values, method="holm")[1]
    assert holm_adjust(p_values) == pytest.approx(list(expected), abs=1e-12)


def test_holm_known_values() -> None:
    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_undefined_p_values_count_in_m_and_stay_none() -> None:
    adjusted = holm_adjust([0.01, None, 0.02])
    expected = multipletests([0.01, 1.0, 0.02], method="holm")[1]
    assert adjusted[1] is None
    assert adjusted[0] == pytest.approx(expected[0]) and adjusted[2] == pytest.approx(expected[2])


def test_empty_and_out_of_range() -> None:
    assert holm_adjust([]) == []
    with pytest.raises(AbTestInputError, match=r"p-values must lie in \[0, 1\]"):
        holm_adjust([0.5, 1.5])
