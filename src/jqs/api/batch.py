"""POST /jobs/batch: many jobs, each with its own options, in one transaction."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from jqs.api.body import read_json_object
from jqs.api.options import JobOptions, describe, task_of
from jqs.api.problems import ProblemError
from jqs.api.render import PROBLEM_CONTENT_TYPE, JSONResponse, inserted_alike, inserted_jobs
from jqs.api.state import ApiState, api_state
from jqs.jsonutil import InvalidJSON, RawJSON, check_storable, dumps, may_hold_nul
from jqs.logging import get_logger
from jqs.models import EnqueueOptions, Job, NewJob, shared_options

log = get_logger(__name__)
router = APIRouter(tags=["jobs"])


class BatchItem(JobOptions):
    """One job of a batch: its payload and its own options."""

    payload: dict[str, Any]


class Batch(BaseModel):
    """Up to 1000 jobs, created together or not at all."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[BatchItem] = Field(min_length=1)


# The request body's schema; the models it refers to join the document's components
# (jqs.api.app), where its references point.
BATCH_SCHEMA = Batch.model_json_schema(ref_template="#/components/schemas/{model}")
BATCH_COMPONENTS: dict[str, Any] = BATCH_SCHEMA.pop("$defs", {})


@router.post(
    "/jobs/batch",
    status_code=201,
    operation_id="submit_jobs",
    summary="Submit many jobs at once (all or nothing)",
    response_model=list[Job],
    responses={
        code: {"content": {PROBLEM_CONTENT_TYPE: {"schema": {"type": "object"}}}}
        for code in (400, 413, 415, 422, 503)
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": BATCH_SCHEMA}},
        }
    },
)
async def submit_jobs(request: Request, state: Annotated[ApiState, Depends(api_state)]) -> Response:
    """Create every job in one transaction, in order; 422 names each failing item."""
    limits = state.limits
    # Each payload is checked on its own below, so a problem names its item.
    raw_body, body = await read_json_object(
        request, max_bytes=limits.batch_max_bytes, max_depth=None
    )
    items = body.get("jobs")
    if not isinstance(items, list) or set(body) != {"jobs"}:
        _validate(body)  # raises the precise 422
    assert isinstance(items, list)
    if len(items) > limits.batch_max_jobs:
        raise ProblemError(
            422, f"a batch holds at most {limits.batch_max_jobs} jobs, not {len(items)}"
        )
    if not items:
        _validate(body)
    # The body's text tells once whether any of its strings can hold a NUL at all.
    scan_strings = may_hold_nul(raw_body)
    payloads: list[RawJSON] = []
    options_of: list[EnqueueOptions] = []
    errors: list[dict[str, str]] = []
    oversized = 0  # of the errors, how many are payloads over the size limit
    plain_options: dict[str | None, EnqueueOptions] = {}  # per task: items share the result
    for index, item in enumerate(items):
        # Most items are just {"payload": {...}}: no need for a model per item then.
        plain = type(item) is dict and len(item) == 1
        payload = item.get("payload") if plain else None
        if type(payload) is dict:
            options = _PLAIN
        else:
            try:
                parsed = BatchItem.model_validate(item)
            except ValidationError as exc:
                errors += describe(exc, f"jobs[{index}]")
                continue
            payload, options = parsed.payload, parsed
        text = RawJSON(dumps(payload))
        if len(text) > limits.max_body_bytes:
            oversized += 1
            errors.append(
                {
                    "loc": f"jobs[{index}].payload",
                    "msg": f"the payload is {len(text)} bytes as compact JSON; a job's "
                    f"payload may be at most {limits.max_body_bytes} bytes, as for POST /jobs",
                }
            )
            continue
        try:
            check_storable(
                payload, max_depth=limits.max_json_depth, raw=text, scan_strings=scan_strings
            )
        except InvalidJSON as exc:
            errors.append({"loc": f"jobs[{index}].payload", "msg": str(exc)})
            continue
        task = task_of(payload)
        if options is _PLAIN:
            resolved = plain_options.get(task)
            if resolved is None:
                resolved = plain_options[task] = _PLAIN.resolve(task, state.defaults)
        else:
            resolved = options.resolve(task, state.defaults)
        payloads.append(text)
        options_of.append(resolved)
    if errors:
        detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:10])
        # Only payloads too large: a 413, as for one job too large; else a 422 names all.
        raise ProblemError(413 if oversized == len(errors) else 422, detail, errors=errors)
    shared = shared_options(options_of)
    if shared is not None:
        # The usual batch: one statement, one row back, one template for the answer.
        alike = await state.store.insert_alike(payloads, shared)
        answer = inserted_alike(alike, payloads, shared, state.waits)
    else:
        created = await state.store.insert(
            [
                NewJob(payload, options)
                for payload, options in zip(payloads, options_of, strict=True)
            ]
        )
        answer = inserted_jobs(created, payloads, options_of, state.waits)
    for queue in {options.queue for options in options_of}:
        state.on_enqueue(queue)
    log.info("jobs_enqueued", count=len(answer), first_id=answer[0]["id"], last_id=answer[-1]["id"])
    return JSONResponse(answer, status_code=201)


_PLAIN = JobOptions()


def _validate(body: object) -> None:
    """Raise the 422 that the whole-body model gives for a malformed batch."""
    try:
        Batch.model_validate(body)
    except ValidationError as exc:
        errors = describe(exc)
        detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:10])
        raise ProblemError(422, detail, errors=errors) from None
    raise ProblemError(422, 'the body must be {"jobs": [...]}')  # pragma: no cover
