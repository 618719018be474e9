"""Feedback: clients post the clicks, views, purchases and ratings of what they were shown."""

from __future__ import annotations

from fastapi import APIRouter, Request

from backend.api.deps import SettingsDep
from backend.api.responses import errors
from backend.feedback import service
from backend.feedback.schemas import FeedbackIn, FeedbackOut

router = APIRouter(prefix="/feedback", tags=["feedback"])


@router.post(
    "",
    status_code=202,
    response_model=FeedbackOut,
    responses=errors(
        413,
        422,
        503,
        s413="more events than RECFLOW_FEEDBACK_MAX_BATCH, or a body over RECFLOW_MAX_BODY_BYTES",
        s422="no event of the batch was accepted; detail lists each rejected index and reason",
        s503="the event stream did not take the batch; nothing was accepted, retry it",
    ),
)
async def post_feedback(body: FeedbackIn, request: Request, settings: SettingsDep) -> FeedbackOut:
    """Record a batch of feedback events; 202 once the accepted ones are durably in the stream."""
    publisher: service.FeedbackPublisher = request.app.state.feedback
    return await service.submit(body.events, publisher, settings)
