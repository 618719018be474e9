"""analyze(): wiring, statuses, errors, multiple treatments and JSON safety."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from backend.abtest.analysis import analyze
from backend.abtest.counts import VariantCounts
from backend.abtest.errors import AbTestInputError
from backend.jsonable import to_jsonable

A = VariantCounts("A", units=10_000, impressions=10_000, clicks=500)
B = VariantCounts("B", units=10_000, impressions=10_000, clicks=580)


def assert_json_safe(value: object, path: str = "$") -> None:
    """Raise naming the first NaN/inf or non-JSON type in ``value``: only ``None``, bool, int,
    finite float, str, and lists/dicts of those with string keys pass."""
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        assert math.isfinite(value), f"{path} is {value!r}, which JSON cannot carry"
        return
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{path} has a non-string key {key!r}"
            assert_json_safe(item, f"{path}.{key}")
        return
    assert isinstance(value, list), f"{path} has type {type(value).__name__}, which is not JSON"
    for index, item in enumerate(value):
        assert_json_safe(item, f"{path}[{index}]")


def test_two_variant_analysis_wires_every_statistic() -> None:
    result = analyze([B, A], control="A")
    assert result.status == "ok" and result.reasons == ()
    assert [v.variant for v in result.variants] == ["A", "B"]
    assert result.variants[0].is_control
    (comparison,) = result.comparisons
    z, p = proportions_ztest([580, 500], [10_000, 10_000])
    assert comparison.primary_test == "z"
    assert comparison.tests.z.statistic == pytest.approx(z, abs=1e-9)
    assert comparison.p_value == pytest.approx(p, abs=1e-9)
    assert comparison.p_value_adjusted == comparison.p_value
    assert comparison.difference.estimate == pytest.approx(0.008)
    assert comparison.decision == "treatment_better" and comparison.significant is True
    assert comparison.tests.fisher is None
    assert comparison.bayes.prob_treatment_beats_control > 0.99
    assert result.srm.mismatch is False
    assert result.verdict.startswith("B beats A on users who clicked: +0.8 pp (95% CI ")
    assert result.verdict.endswith("; no SRM")


def test_fisher_decides_when_expected_counts_are_small() -> None:
    result = analyze(
        [VariantCounts("A", 100, 100, 1), VariantCounts("B", 100, 100, 6)], control="A"
    )
    (comparison,) = result.comparisons
    assert comparison.min_expected_count < 5
    assert comparison.primary_test == "fisher" and comparison.tests.fisher is not None
    assert comparison.p_value == comparison.tests.fisher.p_value
    assert "Fisher's exact test" in result.verdict


def test_fisher_and_yates_on_request() -> None:
    result = analyze([A, B], control="A", fisher=True, yates=True)
    (comparison,) = result.comparisons
    assert comparison.tests.fisher is not None and comparison.tests.fisher.p_value is not None
    assert comparison.primary_test == "chi_square"
    assert comparison.tests.chi_square.yates is True
    assert comparison.p_value == comparison.tests.chi_square.p_value


def test_several_treatments_are_holm_adjusted() -> None:
    c = VariantCounts("C", 10_000, 10_000, 520)
    d = VariantCounts("D", 10_000, 10_000, 400)
    result = analyze([A, B, c, d], control="A")
    raw = [cmp.p_value for cmp in result.comparisons]
    assert [cmp.treatment for cmp in result.comparisons] == ["B", "C", "D"]
    expected = multipletests(raw, method="holm")[1]
    assert [cmp.p_value_adjusted for cmp in result.comparisons] == pytest.approx(
        list(expected), abs=1e-12
    )
    decisions = {cmp.treatment: cmp.decision for cmp in result.comparisons}
    assert decisions == {
        "B": "treatment_better",
        "C": "no_significant_difference",
        "D": "treatment_worse",
    }
    assert "Holm-adjusted p" in result.verdict


def test_srm_is_reported_first_in_the_verdict() -> None:
    result = analyze([A, VariantCounts("B", 11_000, 11_000, 640)], control="A")
    assert result.srm.mismatch is True
    assert result.verdict.startswith("Sample ratio mismatch (p < 0.001)")


def test_configured_split_removes_the_mismatch() -> None:
    b = VariantCounts("B", 20_000, 20_000, 1100)
    assert analyze([A, b], control="A").srm.mismatch is True
    assert analyze([A, b], control="A", expected_split={"A": 1, "B": 2}).srm.mismatch is False


@pytest.mark.parametrize(
    ("counts", "reason"),
    [
        ([A], "only one variant (A)"),
        ([A, VariantCounts("B", 0, 0, 0)], "variant B has no units"),
        ([A, VariantCounts("B", 50, 0, 0)], "variant B has no exposed users"),
        ([A, VariantCounts("B", 12, 12, 1)], "variant B has 12 units; at least 30"),
        (
            [VariantCounts("A", 100, 100, 0), VariantCounts("B", 100, 100, 0)],
            "no clicks in any variant",
        ),
    ],
)
def test_thin_data_is_flagged_not_raised(counts: list[VariantCounts], reason: str) -> None:
    result = analyze(counts, control="A")
    assert result.status == "not_enough_data"
    assert any(reason in r for r in result.reasons)
    assert result.verdict.startswith("Not enough data: ")
    assert_json_safe(to_jsonable(result))


def test_single_variant_has_no_comparisons() -> None:
    result = analyze([A], control="A")
    assert result.comparisons == () and result.srm.mismatch is None


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: analyze([A, B], control="Z"), "control variant 'Z' is not among"),
        (lambda: analyze([A, A], control="A"), "variant A appears more than once"),
        (lambda: analyze([], control="A"), "no variants given"),
        (lambda: VariantCounts("B", 100, 100, 120), "B has 120 clicks but only 100 impressions"),
        (lambda: VariantCounts("B", -1, 0, 0), "B has -1 units; counts cannot be negative"),
        (lambda: VariantCounts("B", 10, 5.5, 0), "impressions = 5.5"),  # type: ignore[arg-type]
        (lambda: VariantCounts("", 10, 5, 0), "non-empty string"),
        (
            lambda: analyze([A, VariantCounts("B", 10, 20, 1)], control="A"),
            "20 exposed users but only 10 users assigned",
        ),
        (lambda: analyze([A, B], control="A", alpha=0), "alpha must be between"),
        (lambda: analyze([A, B], control="A", power=0.01), "target power"),
        (lambda: analyze([A, B], control="A", prior=(0, 1)), "prior alpha"),
        (lambda: analyze([A, B], control="A", unit="visit"), "unit must be one of"),  # type: ignore[arg-type]
        (lambda: analyze([A, B], control="A", expected_split={"A": 1}), "missing B"),
        (lambda: analyze([A, B], control="A", mc_samples=-1), "mc_samples"),
        (lambda: analyze([A, B], control="A", min_units=0), "min_units"),
    ],
)
def test_structural_errors_raise(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AbTestInputError, match=message):
        make()


def test_error_is_a_data_error_that_the_doors_show_as_a_422() -> None:
    from backend.errors import AppError, describe

    with pytest.raises(ValueError) as info:
        analyze([A, B], control="Z")
    assert not isinstance(info.value, AppError)  # the core knows nothing of HTTP
    described = describe(info.value)
    assert described is not None and described.status == 422
    assert "control variant 'Z'" in described.message


def test_monte_carlo_and_prior_reach_the_result() -> None:
    result = analyze([A, B], control="A", mc_samples=20_000, seed=11, prior=(2, 40))
    bayes = result.comparisons[0].bayes
    assert bayes.prior.alpha == 2 and bayes.monte_carlo is not None
    assert bayes.monte_carlo.seed == 11
    again = analyze([A, B], control="A", mc_samples=20_000, seed=11, prior=(2, 40))
    assert to_jsonable(again) == to_jsonable(result)


def _has_no_nan(value: object) -> bool:
    text = json.dumps(value, allow_nan=False)
    return "NaN" not in text and "Infinity" not in text


def _raw_floats_are_finite(value: object) -> bool:
    """Every float in the result itself, before any conversion to JSON, is finite.

    The core reports an undefined figure as ``None`` with a reason; a NaN left in a field would be
    hidden by the JSON conversion (which turns it into ``null`` without a reason), so the
    dataclasses are walked as they are.
    """
    if isinstance(value, float):
        return math.isfinite(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(
            _raw_floats_are_finite(getattr(value, f.name)) for f in dataclasses.fields(value)
        )
    if isinstance(value, dict):
        return all(_raw_floats_are_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_raw_floats_are_finite(v) for v in value)
    return True


def test_json_shape() -> None:
    data = to_jsonable(analyze([A, B], control="A"))
    assert set(data) == {
        "status",
        "reasons",
        "verdict",
        "unit",
        "control",
        "settings",
        "variants",
        "comparisons",
        "srm",
        "metric",
        "method",
        "metric_variants",
        "guardrails",
    }
    assert data["metric"] == "click_users" and data["metric_variants"] == []
    assert set(data["comparisons"][0]) >= {
        "treatment",
        "control",
        "difference",
        "relative_lift",
        "tests",
        "primary_test",
        "p_value",
        "p_value_adjusted",
        "significant",
        "decision",
        "power",
        "bayes",
    }
    assert _has_no_nan(data)


variant_counts = st.integers(0, 3000).flatmap(
    lambda units: st.integers(0, units).flatmap(
        lambda imps: st.tuples(st.just(units), st.just(imps), st.integers(0, imps))
    )
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(variant_counts, min_size=1, max_size=4),
    st.sampled_from(["user", "impression"]),
    st.booleans(),
)
def test_json_is_safe_for_any_valid_counts(
    rows: list[tuple[int, int, int]], unit: str, yates: bool
) -> None:
    counts = [VariantCounts(f"V{i}", *row) for i, row in enumerate(rows)]
    result = analyze(counts, control="V0", unit=unit, yates=yates, fisher=True)  # type: ignore[arg-type]
    data = to_jsonable(result)
    assert_json_safe(data)
    assert _has_no_nan(data)
    assert _raw_floats_are_finite(result)
    assert result.status in ("ok", "not_enough_data") and result.verdict


@settings(max_examples=40, deadline=None)
@given(variant_counts.filter(lambda r: r[1] > 0), variant_counts.filter(lambda r: r[1] > 0))
def test_swapping_control_and_treatment(a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    x, y = VariantCounts("X", *a), VariantCounts("Y", *b)
    forward = analyze([x, y], control="X", min_units=1).comparisons[0]
    backward = analyze([x, y], control="Y", min_units=1).comparisons[0]
    f_diff, b_diff = forward.difference.estimate, backward.difference.estimate
    assert f_diff is not None and b_diff is not None
    assert f_diff == -b_diff
    assert forward.primary_test == backward.primary_test
    if forward.p_value is None:
        assert backward.p_value is None
    else:
        assert backward.p_value is not None
        assert math.isclose(forward.p_value, backward.p_value, rel_tol=1e-9, abs_tol=1e-15)
    f_ci, b_ci = forward.difference.ci, backward.difference.ci
    assert f_ci.low == pytest.approx(-b_ci.high) and f_ci.high == pytest.approx(-b_ci.low)  # type: ignore[operator]


def test_per_impression_analysis_inflates_significance() -> None:
    # Users of B click a little more often; each user sees 20 impressions and clicks on all of
    # them or none. Per impression, every user counts 20 times and the p-value collapses.
    import pandas as pd

    from backend.abtest.inputs import counts_from_user_table

    rows = [
        (f"{v}{i}", v, 20, 20 if i < clickers else 0)
        for v, clickers in (("A", 50), ("B", 62))
        for i in range(1000)
    ]
    table = pd.DataFrame(rows, columns=["user", "variant", "impressions", "clicks"])
    per_user = analyze(counts_from_user_table(table), control="A")
    per_impression = analyze(
        counts_from_user_table(table, unit="impression"), control="A", unit="impression"
    )
    p_user = per_user.comparisons[0].p_value
    p_impression = per_impression.comparisons[0].p_value
    assert p_user is not None and p_impression is not None
    assert p_user > 0.05 > 0.001 > p_impression


def test_numpy_numbers_are_accepted_and_leave_as_plain_json() -> None:
    import numpy as np

    result = analyze(
        [VariantCounts("A", 100, 100, np.int64(5)), VariantCounts("B", 100, 100, 7)],  # type: ignore[arg-type]
        control="A",
        seed=np.int64(3),  # type: ignore[arg-type]
        mc_samples=10,
        expected_split={"A": np.float64(1.0), "B": np.int64(1)},  # type: ignore[dict-item]
    )
    json.dumps(to_jsonable(result), allow_nan=False)
    with pytest.raises(AbTestInputError, match="seed must be a non-negative integer"):
        analyze([A, B], control="A", seed=-1)
