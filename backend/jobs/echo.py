"""``echo``: returns its params after an optional sleep, to test and benchmark the platform."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from backend.jobs.context import JobContext
from backend.jobs.kind import JobKind
from backend.jobs.params import JobParams, at_most


class EchoParams(JobParams):
    message: str = Field(default="hello", max_length=10_000)
    sleep_s: float = Field(
        default=0.0, ge=0, description="seconds to sleep, at most RECFLOW_MAX_ECHO_SLEEP_S (60)"
    )
    stages: int = Field(default=1, ge=1, le=100, description="how many timed stages to record")
    fail: bool = Field(default=False, description="raise an error, to test failure paths")

    @field_validator("sleep_s")
    @classmethod
    def _sleep_ceiling(cls, v: float, info: ValidationInfo) -> float:
        at_most(v, info, "max_echo_sleep_s")
        return v


def run(ctx: JobContext, params: EchoParams) -> dict[str, Any]:
    per_stage = params.sleep_s / params.stages
    for i in range(params.stages):
        with ctx.stage(f"step-{i + 1}", rows_in=1) as st:
            deadline = time.monotonic() + per_stage
            # Sleep in slices so a cancel is noticed within a tenth of a second.
            while (left := deadline - time.monotonic()) > 0:
                time.sleep(min(0.1, left))
                ctx.check_cancelled()
            st.rows_out = 1
        ctx.progress((i + 1) / params.stages, f"step {i + 1}/{params.stages}")
    if params.fail:
        raise RuntimeError("echo was asked to fail (params.fail=true)")
    return {"echo": params.model_dump()}


KIND = JobKind("echo", EchoParams, run, "Return the params after an optional sleep.")
