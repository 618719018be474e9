"""The closed loop: simulated users ask the API for recommendations and click what they are shown.

Users and items come from a seeded latent-factor model (``backend.recsys.synthetic``), the same
one whose ratings a model is trained on. Each simulated user requests
``GET /api/v1/users/{id}/recommendations`` over HTTP (a few requests in flight at once), and
clicks each shown item with its true probability (``click_probability``: a logistic of the true
affinity). Clicks go to ``POST /api/v1/feedback`` in batches and echo the answer's
``experiment``, ``variant``, ``recommendation_id`` and ``model_version``, so they count for what
was really shown. Serving logs the impressions itself: the loop never sends them.

Click decisions are deterministic for a seed: request ``r`` of user ``u`` draws its uniforms from
``default_rng([seed, u, r])``, so the same answers get the same clicks whatever order the HTTP
requests complete in. The summary holds, per variant, what was shown and clicked and the true
expected CTR (the mean true click probability of the items shown), which the observed CTR
estimates.

When an experiment is named, the loop first waits until serving runs it (serving reads running
experiments every few seconds): it asks for the first user's list until the answer names the
experiment, without clicking on the answers before. Any later answer outside the experiment is
counted (``outside``) and not clicked on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from backend.recsys.synthetic import (
    SyntheticData,
    click_probability,
    generate_ratings,
    latent_index,
)
from backend.streaming.events import SCHEMA_VERSION, now_ms

#: The variant key of answers given outside any experiment.
NO_VARIANT = "-"
_RETRY_S = (0.2, 0.5, 1.0, 2.0)


class LoopError(RuntimeError):
    """The API refused or could not answer a request the loop needs."""


@dataclass(frozen=True)
class LatentSpec:
    """The latent-factor model simulated users come from: ``generate_ratings`` arguments.

    The defaults are the demo's data: train on these ratings and simulate these users."""

    users: int = 600
    items: int = 400
    ratings: int = 30_000
    rank: int = 8
    seed: int = 11

    def generate(self) -> SyntheticData:
        return generate_ratings(
            self.users, self.items, self.ratings, rank=self.rank, seed=self.seed
        )


@dataclass(frozen=True)
class LoopSpec:
    """What the loop does: ``users`` simulated users (the first ones of the latent model; all of
    them by default) each ask ``requests_per_user`` times for ``n`` items."""

    experiment: str | None = None
    users: int | None = None
    requests_per_user: int = 1
    n: int = 10
    seed: int = 0
    base_ctr: float = 0.02
    slope: float = 0.8
    concurrency: int = 4
    batch_size: int = 500
    wait_s: float = 30.0
    source: str = "loop"

    def __post_init__(self) -> None:
        if self.users is not None and self.users < 1:
            raise ValueError(f"users must be at least 1, got {self.users}")
        if self.requests_per_user < 1 or self.n < 1 or self.concurrency < 1:
            raise ValueError("requests_per_user, n and concurrency must be at least 1")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if not 0.0 < self.base_ctr < 1.0 or not 0.0 <= self.slope < float("inf"):
            raise ValueError(
                f"base_ctr must be in (0, 1) and slope finite and >= 0, got {self.base_ctr}, "
                f"{self.slope}"
            )


@dataclass
class VariantTally:
    """What one variant showed and got clicked; ``expected_clicks`` sums the true
    probabilities of the items shown."""

    requests: int = 0
    impressions: int = 0
    clicks: int = 0
    expected_clicks: float = 0.0
    users: set[str] = field(default_factory=set)
    model_versions: dict[str, int] = field(default_factory=dict)
    strategies: dict[str, int] = field(default_factory=dict)

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.impressions if self.impressions else None

    @property
    def true_ctr(self) -> float | None:
        return self.expected_clicks / self.impressions if self.impressions else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "users": len(self.users),
            "impressions": self.impressions,
            "clicks": self.clicks,
            "ctr": self.ctr,
            "true_ctr": self.true_ctr,
            "model_versions": dict(self.model_versions),
            "strategies": dict(self.strategies),
        }


@dataclass
class LoopSummary:
    """The whole run. ``impressions`` counts the items shown in answers the loop clicked on (in
    the experiment, when one is named); ``outside`` the items of the other answers."""

    experiment: str | None
    requests: int = 0
    impressions: int = 0
    clicks_sent: int = 0
    feedback_batches: int = 0
    rejected: int = 0
    warmup_requests: int = 0
    outside: int = 0
    unknown_items: int = 0
    duration_s: float = 0.0
    variants: dict[str, VariantTally] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "requests": self.requests,
            "impressions": self.impressions,
            "clicks_sent": self.clicks_sent,
            "feedback_batches": self.feedback_batches,
            "rejected": self.rejected,
            "warmup_requests": self.warmup_requests,
            "outside": self.outside,
            "unknown_items": self.unknown_items,
            "duration_s": round(self.duration_s, 3),
            "variants": {k: v.as_dict() for k, v in sorted(self.variants.items())},
        }


@dataclass(frozen=True)
class Decided:
    """One answer and the loop's clicks on it (``probabilities[k]`` of ``items[k]``, NaN for an
    item the latent model does not know)."""

    answer: dict[str, Any]
    items: list[str]
    probabilities: np.ndarray
    clicked: np.ndarray


def decide(
    data: SyntheticData, spec: LoopSpec, user: int, request: int, answer: dict[str, Any]
) -> Decided:
    """The clicks on one answer: item ``k`` is clicked when ``U_k < p_k``, ``U`` uniforms from
    ``default_rng([seed, user, request])`` and ``p_k`` its true click probability. Items the
    latent model does not know are never clicked."""
    items = [str(i["item"]) for i in answer["items"]]
    rows = [latent_index(i, "i", data.item_factors.shape[0]) for i in items]
    known = np.array([r is not None for r in rows], dtype=bool)
    p = np.full(len(items), np.nan)
    if known.any():
        cols = np.array([r for r in rows if r is not None], dtype=np.int64)
        users = np.full(cols.size, user, dtype=np.int64)
        p[known] = click_probability(data, users, cols, base_ctr=spec.base_ctr, slope=spec.slope)
    uniforms = np.random.default_rng([spec.seed, user, request]).random(len(items))
    clicked = known & (uniforms < np.nan_to_num(p, nan=0.0))
    return Decided(answer, items, p, clicked)


def click_events(d: Decided, source: str, ts: int) -> list[dict[str, Any]]:
    """The contract events of the clicks on one answer, echoing its ids (event id
    ``<recommendation id>-<rank>-click``: a retried batch is stored once)."""
    a = d.answer
    out = []
    for rank in np.flatnonzero(d.clicked).tolist():
        event: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "event_id": f"{a['recommendation_id']}-{rank + 1}-click",
            "user": a["user"],
            "item": d.items[rank],
            "type": "click",
            "ts": ts,
            "recommendation_id": a["recommendation_id"],
            "model_version": a["model_version"],
            "source": source,
        }
        if a.get("experiment") is not None:
            event["experiment"] = a["experiment"]
            event["variant"] = a["variant"]
        out.append(event)
    return out


def _send(call: Callable[[], httpx.Response], what: str) -> httpx.Response:
    """One call, retried on transport errors and 503 (the server's "try again")."""
    last = ""
    for delay in (*_RETRY_S, None):
        try:
            r = call()
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if r.status_code != 503:
                return r
            last = r.text[:300]
        if delay is None:
            break
        time.sleep(delay)
    raise LoopError(f"{what} failed after {len(_RETRY_S) + 1} attempts: {last}")


def _recommend(client: httpx.Client, user: str, n: int) -> dict[str, Any]:
    path = f"/api/v1/users/{user}/recommendations"
    r = _send(lambda: client.get(path, params={"n": n}), f"GET {path}")
    if r.status_code != 200:
        raise LoopError(f"GET {path} -> {r.status_code}: {r.text[:300]}")
    answer: dict[str, Any] = r.json()
    return answer


def post_feedback(client: httpx.Client, events: list[dict[str, Any]]) -> int:
    """Post one batch of feedback; returns how many events the API rejected."""
    r = _send(lambda: client.post("/api/v1/feedback", json={"events": events}), "POST feedback")
    if r.status_code not in (202, 422):
        raise LoopError(f"POST /api/v1/feedback -> {r.status_code}: {r.text[:300]}")
    body = r.json()
    answer = body if r.status_code == 202 else body.get("detail")
    if not isinstance(answer, dict) or not isinstance(answer.get("rejected"), list):
        raise LoopError(f"POST /api/v1/feedback -> {r.status_code}: {r.text[:300]}")
    return len(answer["rejected"])


def _await_experiment(client: httpx.Client, spec: LoopSpec, summary: LoopSummary) -> dict[str, Any]:
    """The first user's first answer in the experiment, asking until serving runs it."""
    deadline = time.monotonic() + spec.wait_s
    while True:
        answer = _recommend(client, "u0", spec.n)
        if answer.get("experiment") == spec.experiment:
            return answer
        summary.warmup_requests += 1
        if time.monotonic() > deadline:
            raise LoopError(
                f"serving did not run experiment {spec.experiment!r} within {spec.wait_s:.0f} s "
                f"(answers name {answer.get('experiment')!r}): is it started?"
            )
        time.sleep(0.25)


def _tasks(n_users: int, per_user: int) -> Iterator[tuple[int, int]]:
    for r in range(per_user):
        for u in range(n_users):
            yield u, r


def run_loop(
    client: httpx.Client,
    data: SyntheticData,
    spec: LoopSpec,
    progress: Callable[[int, int], None] | None = None,
) -> LoopSummary:
    """Run the loop against the API ``client`` talks to (base URL and key set); see the module
    docstring. ``progress(done, total)`` is called after each answer."""
    n_users = data.user_factors.shape[0] if spec.users is None else spec.users
    if n_users > data.user_factors.shape[0]:
        raise ValueError(f"users={n_users} but the latent model has {data.user_factors.shape[0]}")
    summary = LoopSummary(experiment=spec.experiment)
    total = n_users * spec.requests_per_user
    t0 = time.perf_counter()
    first = _await_experiment(client, spec, summary) if spec.experiment else None
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        if pending:
            summary.rejected += post_feedback(client, pending)
            summary.feedback_batches += 1
            pending.clear()

    def fetch(task: tuple[int, int]) -> tuple[int, int, dict[str, Any]]:
        u, r = task
        if first is not None and (u, r) == (0, 0):
            return u, r, first
        return u, r, _recommend(client, f"u{u}", spec.n)

    with ThreadPoolExecutor(spec.concurrency, thread_name_prefix="loop") as pool:
        for done, (u, r, answer) in enumerate(
            pool.map(fetch, _tasks(n_users, spec.requests_per_user)), 1
        ):
            summary.requests += 1
            if spec.experiment is not None and answer.get("experiment") != spec.experiment:
                summary.outside += len(answer["items"])
            else:
                d = decide(data, spec, u, r, answer)
                _tally(summary, d)
                events = click_events(d, spec.source, now_ms())
                summary.clicks_sent += len(events)
                pending.extend(events)
                if len(pending) >= spec.batch_size:
                    flush()
            if progress is not None:
                progress(done, total)
    flush()
    summary.duration_s = time.perf_counter() - t0
    return summary


def _tally(summary: LoopSummary, d: Decided) -> None:
    a = d.answer
    tally = summary.variants.setdefault(a.get("variant") or NO_VARIANT, VariantTally())
    shown = len(d.items)
    known = ~np.isnan(d.probabilities)
    summary.impressions += shown
    summary.unknown_items += int((~known).sum())
    tally.requests += 1
    tally.impressions += shown
    tally.clicks += int(d.clicked.sum())
    tally.expected_clicks += float(d.probabilities[known].sum())
    tally.users.add(str(a["user"]))
    version = str(a["model_version"])
    tally.model_versions[version] = tally.model_versions.get(version, 0) + shown
    strategy = str(a.get("strategy"))
    tally.strategies[strategy] = tally.strategies.get(strategy, 0) + 1
