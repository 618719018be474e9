"""The one variant assignment: stable known values, order-free, weighted, checked inputs."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from backend.streaming.assignment import assign_variant, assignment_point

USERS = [f"u{i}" for i in range(20)]


def test_known_values_never_change() -> None:
    # Pinned: a change here would move users between the variants of running experiments.
    assert "".join(assign_variant("home", u, ["A", "B"]) for u in USERS) == "AAABABBAAABAAAABAABA"
    assert (
        "".join(assign_variant("home", u, ["A", "B", "C"]) for u in USERS) == "AAACACBBBACBAAACAACB"
    )
    split = [assign_variant("home", u, ["control", "treatment"], [9, 1]) for u in USERS]
    assert [i for i, v in enumerate(split) if v == "treatment"] == [10]
    assert assign_variant("exp1", "u17", ["A", "B"]) == "B"


def test_the_point_is_the_documented_sha256_fraction() -> None:
    digest = hashlib.sha256(b"home:u1").digest()
    assert assignment_point("home", "u1") == (int.from_bytes(digest[:8], "big") >> 11) / 2**53
    assert assignment_point("home", "u1") == pytest.approx(0.157059, abs=1e-6)
    points = [assignment_point("e", f"u{i}") for i in range(10_000)]
    assert all(0.0 <= p < 1.0 for p in points)


def test_the_order_variants_are_given_in_does_not_matter() -> None:
    for user in USERS:
        assert assign_variant("exp", user, ["A", "B", "C"]) == assign_variant(
            "exp", user, ["C", "A", "B"]
        )
        assert assign_variant("exp", user, ["A", "B"], [3, 1]) == assign_variant(
            "exp", user, ["B", "A"], [1, 3]
        )


def test_equal_weights_are_the_even_split() -> None:
    for user in USERS:
        assert assign_variant("exp", user, ["A", "B", "C"]) == assign_variant(
            "exp", user, ["A", "B", "C"], [2.0, 2.0, 2.0]
        )


def test_weights_are_the_traffic_shares() -> None:
    counts = Counter(
        assign_variant("exp", f"u{i}", ["A", "B", "C"], [0.5, 0.3, 0.2]) for i in range(50_000)
    )
    assert counts["A"] / 50_000 == pytest.approx(0.5, abs=0.01)
    assert counts["B"] / 50_000 == pytest.approx(0.3, abs=0.01)
    assert counts["C"] / 50_000 == pytest.approx(0.2, abs=0.01)
    # A variant with no traffic gets nobody; the others share it evenly.
    rest = Counter(
        assign_variant("exp", f"u{i}", ["A", "B", "C"], [0, 1, 1]) for i in range(10_000)
    )
    assert rest["A"] == 0 and rest["B"] / 10_000 == pytest.approx(0.5, abs=0.03)


def test_experiments_are_independent() -> None:
    one = [assign_variant("one", f"u{i}", ["A", "B"]) for i in range(2000)]
    two = [assign_variant("two", f"u{i}", ["A", "B"]) for i in range(2000)]
    agree = sum(a == b for a, b in zip(one, two, strict=True)) / 2000
    assert agree == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize(
    ("variants", "weights", "message"),
    [
        ([], None, "at least one variant"),
        (["A", "A"], None, "distinct"),
        (["A", "A"], [1, 1], "named twice"),
        (["A", "B"], [1], "2 weights"),
        (["A", "B"], [1, -1], "finite number >= 0"),
        (["A", "B"], [1, float("nan")], "finite number >= 0"),
        (["A", "B"], [0, 0], "above 0"),
    ],
)
def test_unusable_inputs_are_refused(
    variants: list[str], weights: list[float] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        assign_variant("exp", "u1", variants, weights)
