"""Accuracy and speed of the training/validation core. Prints one JSON line.

Figures:
* default_rmse/default_mae: surprise's default SVD, 5-fold CV (seed 0) on MovieLens 100K, with
  the largest per-fold difference from surprise's own ``cross_validate`` (agreement_max_abs_diff).
* tuned_rmse/tuned_mae: the best configuration of a grid search by 5-fold CV RMSE, the grid,
  the configuration and the search's wall time.
* cv_parallel_ratio: wall time of the 5-fold CV with 2 worker processes over the sequential
  run, fastest of --repeats alternating runs each (the worker pool already started, as in a
  long-running worker), for the default and the tuned configuration (cv_parallel_default,
  cv_parallel_tuned); cv_parallel_ratio is the tuned one (the default's without a tuned
  configuration). With 5 folds on 2 processes the ideal ratio is 3/5 = 0.6, and default SVD's
  0.6 s folds leave its ratio within the machine's noise of that floor (0.60-0.73 measured).
* synthetic_*: generating 1M ratings, training default SVD on them, 5-fold validation, and the
  peak resident memory of this process and of its worker processes (ru_maxrss).

Usage: python bench/accuracy.py [--quick] [--skip-tuned] [--skip-parallel] [--skip-synthetic]
       [--data PATH] [--repeats N] [--tuned-params JSON]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.recsys.algorithms import AlgoSpec, fit  # noqa: E402
from backend.recsys.crossval import cross_validate, validate  # noqa: E402
from backend.recsys.datasets import RatingsSource, load_ratings  # noqa: E402
from backend.recsys.search import grid_search  # noqa: E402
from backend.recsys.synthetic import generate_ratings  # noqa: E402

ML100K = REPO.parent / "shared" / "data" / "ml-100k"
SEED = 0
K = 5
# Found by random search, then refined by this grid: many factors started near zero
# (init_std_dev 0.01), a lower learning rate and stronger factor regularization than the default.
TUNED_FIXED: dict[str, Any] = {
    "n_epochs": 60,
    "init_std_dev": 0.01,
    "reg_bu": 0.02,
    "reg_bi": 0.02,
}
TUNED_GRID: dict[str, list[Any]] = {
    "n_factors": [200, 300],
    "lr_all": [0.005, 0.007],
    "reg_all": [0.06, 0.08],
}
QUICK_GRID: dict[str, list[Any]] = {"n_factors": [300], "lr_all": [0.005], "reg_all": [0.06]}


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def _warm_pool(n_jobs: int) -> None:
    # Start the worker processes and import the core in them, as a running worker would have.
    Parallel(n_jobs=n_jobs)(delayed(_import_core)() for _ in range(n_jobs))


def _parallel_ratio(ratings: Any, spec: Any, repeats: int) -> dict[str, Any]:
    """Sequential and 2-process wall times of a 5-fold CV, fastest of ``repeats`` each.

    Runs alternate so that other load on the machine affects both; the minimum is the least
    disturbed measurement, since load only ever adds time.
    """
    seq_times, par_times = [], []
    for _ in range(repeats):
        sequential = cross_validate(ratings, spec, k=K, seed=SEED, n_jobs=1)
        parallel = cross_validate(ratings, spec, k=K, seed=SEED, n_jobs=2)
        assert [f.rmse for f in parallel.folds] == [f.rmse for f in sequential.folds]
        seq_times.append(round(sequential.wall_seconds, 2))
        par_times.append(round(parallel.wall_seconds, 2))
    return {
        "sequential_seconds": seq_times,
        "parallel_seconds": par_times,
        "ratio": round(min(par_times) / min(seq_times), 3),
    }


def _import_core() -> bool:
    import backend.recsys.crossval  # noqa: F401

    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ML100K)
    parser.add_argument("--quick", action="store_true", help="one tuned config, 200k synthetic")
    parser.add_argument("--skip-tuned", action="store_true")
    parser.add_argument("--skip-parallel", action="store_true")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--repeats", type=int, default=3, help="sequential/parallel pairs")
    parser.add_argument("--tuned-params", type=json.loads, default=None, help="skip the search")
    args = parser.parse_args()
    out: dict[str, Any] = {"bench": "accuracy", "k": K, "seed": SEED}

    if not (args.data / "u.data").is_file():
        print(json.dumps({**out, "skipped": f"MovieLens 100K not found at {args.data}"}))
        return
    ratings = load_ratings(RatingsSource("ml-100k", args.data))

    report = validate(ratings, AlgoSpec("svd"), k=K, seed=SEED, n_jobs=1, with_surprise=True)
    default, reference = report.model, report.surprise
    assert reference is not None
    out.update(
        default_rmse=_round(default.rmse.mean),
        default_rmse_std=_round(default.rmse.std),
        default_mae=_round(default.mae.mean),
        default_mpe=_round(default.mpe.mean, 3),
        default_fit_seconds_per_fold=_round(default.fit_seconds.mean, 3),
        surprise_rmse=round(sum(reference.rmse) / K, 4),
        surprise_mae=round(sum(reference.mae) / K, 4),
        agreement_max_abs_diff=report.max_abs_difference,
    )
    for base in report.baselines:
        out[f"{base.algorithm}_rmse"] = _round(base.rmse.mean)
        out[f"{base.algorithm}_mae"] = _round(base.mae.mean)

    tuned_params: dict[str, Any] | None = args.tuned_params
    if not args.skip_tuned:
        if tuned_params is None:
            grid = QUICK_GRID if args.quick else TUNED_GRID
            search = grid_search(ratings, grid, fixed=TUNED_FIXED, k=K, seed=SEED, n_jobs=2)
            tuned_params = search.best.params
            out.update(
                tuned_rmse=_round(search.best.rmse),
                tuned_rmse_std=_round(search.best.rmse_std),
                tuned_mae=_round(search.best.mae),
                tuned_mpe=_round(search.best.mpe, 3),
                tuned_params=tuned_params,
                search_grid=grid,
                search_trials=len(search.trials),
                search_seconds=round(search.total_seconds, 1),
            )
        else:
            tuned = cross_validate(ratings, AlgoSpec("svd", tuned_params), k=K, seed=SEED, n_jobs=2)
            out.update(
                tuned_rmse=_round(tuned.rmse.mean),
                tuned_mae=_round(tuned.mae.mean),
                tuned_params=tuned_params,
            )

    if not args.skip_parallel:
        _warm_pool(2)
        configs = {"default": AlgoSpec("svd")}
        if tuned_params:
            configs["tuned"] = AlgoSpec("svd", tuned_params)
        ratios = {}
        for name, spec in configs.items():
            ratios[name] = _parallel_ratio(ratings, spec, args.repeats)
            out[f"cv_parallel_{name}"] = ratios[name]
        # The headline is the tuned configuration when there is one: the default's 0.6 s folds
        # put its ratio within measurement noise of the 0.6 floor, so both are reported.
        out["cv_parallel_ratio"] = ratios["tuned" if "tuned" in ratios else "default"]["ratio"]

    if not args.skip_synthetic:
        n = 200_000 if args.quick else 1_000_000
        started = time.perf_counter()
        data = generate_ratings(n // 50, n // 200, n, rank=10, noise=0.5, seed=SEED)
        generated = time.perf_counter() - started
        started = time.perf_counter()
        fit(data.ratings, AlgoSpec("svd"))
        trained = time.perf_counter() - started
        cv = cross_validate(data.ratings, AlgoSpec("svd"), k=K, seed=SEED, n_jobs=2)
        # Stop the worker pool so that its processes count in RUSAGE_CHILDREN.
        get_reusable_executor().shutdown(wait=True)
        out.update(
            synthetic_ratings=n,
            synthetic_users=data.ratings.n_users,
            synthetic_items=data.ratings.n_items,
            synthetic_generate_seconds=round(generated, 2),
            synthetic_train_seconds=round(trained, 2),
            synthetic_cv_seconds=round(cv.wall_seconds, 2),
            synthetic_cv_rmse=_round(cv.rmse.mean),
            synthetic_noise=data.noise,
            peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            peak_rss_workers_mb=round(
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
            ),
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
