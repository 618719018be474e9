"""The ceiling for ``bench/serve.py``: a bare FastAPI app that scores like the real endpoint.

No database, no middleware, no model refresh thread: one async endpoint at the same path as the
API's ``GET /api/v1/users/{user_id}/recommendations``, which computes the same scores
``μ + b_u + b_i + q_i · p_u`` with one matrix-vector product, masks the user's training items,
takes the top ``n`` with ``argpartition`` and answers a JSON body of the same shape (rank, item,
score, title per entry). What the real API serves below this figure is the cost of everything
else it does per request.

Run by ``bench/serve.py`` as
``uvicorn serve_ceiling:create_app --factory --app-dir bench --workers 2``, with the artifact
directory in ``BENCH_CEILING_ARTIFACT``: uvicorn's worker processes build the app through a
factory that takes no arguments, so the environment is the one channel to them. It is a bench
variable, not a Recflow setting, hence outside ``Settings``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import ORJSONResponse

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from backend.recsys.artifacts import load_artifact  # noqa: E402

ARTIFACT_ENV = "BENCH_CEILING_ARTIFACT"


def create_app() -> FastAPI:
    path = Path(os.environ[ARTIFACT_ENV])
    model = load_artifact(path).model
    version = path.name
    users = {u: k for k, u in enumerate(model.user_ids.tolist())}
    item_ids = model.item_ids
    items_file = path / "items.json"
    title_of = (
        {str(r["item"]): r.get("title") for r in json.loads(items_file.read_text())}
        if items_file.is_file()
        else {}
    )
    titles = np.array([title_of.get(i) for i in item_ids.tolist()], dtype=object)
    base = model.global_mean + model.item_bias
    q = np.ascontiguousarray(model.item_factors)

    app = FastAPI(title="serve ceiling", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/users/{user_id}/recommendations")
    async def recommendations(
        user_id: str, n: Annotated[int, Query(ge=1, le=1000)] = 10
    ) -> ORJSONResponse:
        u = users.get(user_id)
        if u is None:
            raise HTTPException(404, "unknown user")
        scores = base + model.user_bias[u] + q @ model.user_factors[u]
        scores[model.seen(u)] = -np.inf
        k = min(n, scores.shape[0])
        part = np.argpartition(-scores, k - 1)[:k]
        top = part[np.argsort(-scores[part], kind="stable")]
        top_scores = scores[top].tolist()
        return ORJSONResponse(
            {
                "user": user_id,
                "model_version": version,
                "strategy": "personalized",
                "items": [
                    {"rank": r + 1, "item": i, "score": round(s, 6), "title": t}
                    for r, (i, s, t) in enumerate(
                        zip(item_ids[top].tolist(), top_scores, titles[top].tolist(), strict=True)
                    )
                ],
            }
        )

    return app
