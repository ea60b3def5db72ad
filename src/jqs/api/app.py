"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from jqs import __version__
from jqs.api import batch, health, jobs, queues
from jqs.api.access_log import AccessLog
from jqs.api.problems import install_problem_handlers
from jqs.api.state import ApiState


def create_app(state: ApiState) -> FastAPI:
    """Build the HTTP API around an already started store."""
    app = FastAPI(
        title="JQS",
        version=__version__,
        description=(
            "A PostgreSQL-backed job queue service. Submit any JSON object to `POST /jobs`; "
            "`payload.task` names the handler. Delivery is at least once."
        ),
    )
    app.state.jqs = state
    install_problem_handlers(app)
    app.include_router(batch.router)  # before /jobs/{job_id}, which would shadow it
    app.include_router(jobs.router)
    app.include_router(queues.router)
    app.include_router(health.router)
    app.add_middleware(AccessLog)
    return app
