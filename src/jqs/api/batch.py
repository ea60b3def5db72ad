"""POST /jobs/batch: many jobs, each with its own options, in one transaction."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from jqs.api import webhooks
from jqs.api.auth import SubmitKey, creator, require_queue, require_task, scope_doc
from jqs.api.body import read_json_object
from jqs.api.jobs import TOO_MANY
from jqs.api.openapi import PAYLOAD_SCHEMA, problem_responses
from jqs.api.options import JobOptions, describe, task_of, unknown_parameters
from jqs.api.problems import ProblemError
from jqs.api.render import JSONResponse, inserted_alike, inserted_jobs
from jqs.api.state import ApiState, Limits, api_state
from jqs.auth.scopes import Scope
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
# What a payload may hold, in the document's own words (jqs.api.openapi).
BATCH_COMPONENTS["BatchItem"]["properties"]["payload"] = PAYLOAD_SCHEMA


def document_limits(document: dict[str, Any], limits: Limits) -> None:
    """Write this server's limits into the batch operation in `document`."""
    body = document["paths"]["/jobs/batch"]["post"]["requestBody"]
    body["description"] = (
        f"At most {limits.batch_max_bytes} bytes (413 beyond); each payload at most "
        f"{limits.max_json_depth} levels deep; no string in them may hold NUL (\\u0000)."
    )
    schema = copy.deepcopy(body["content"]["application/json"]["schema"])
    schema["properties"]["jobs"]["maxItems"] = limits.batch_max_jobs
    body["content"]["application/json"]["schema"] = schema


@router.post(
    "/jobs/batch",
    status_code=201,
    operation_id="submit_jobs",
    summary="Submit many jobs at once (all or nothing)",
    response_model=list[Job],
    responses={**problem_responses(400, 413, 415, 422, 503), 429: TOO_MANY},
    openapi_extra={
        **scope_doc(Scope.JOBS_SUBMIT),
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": BATCH_SCHEMA}},
        },
    },
)
async def submit_jobs(
    request: Request, state: Annotated[ApiState, Depends(api_state)], principal: SubmitKey
) -> Response:
    """Create every job in one transaction, in order; 422 names each failing item."""
    if request.query_params:
        # Options go in each item; a parameter here would be ignored without a word.
        raise unknown_parameters(request.query_params, (), "POST /jobs/batch")
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
    tasks: set[str | None] = set()
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
                # Strictly, as JSON: `true` is no number and "5" no integer, as the
                # document's schema says; a time is still an RFC 3339 string.
                parsed = BatchItem.model_validate_json(dumps(item), strict=True)
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
        try:
            task = task_of(payload)
        except ValueError as exc:
            errors.append({"loc": f"jobs[{index}].payload.task", "msg": str(exc)})
            continue
        if options is _PLAIN:
            resolved = plain_options.get(task)
            if resolved is None:
                resolved = plain_options[task] = _PLAIN.resolve(task, state.defaults)
        else:
            resolved = options.resolve(task, state.defaults)
        payloads.append(text)
        options_of.append(resolved)
        tasks.add(task)
    if errors:
        detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:10])
        # Only payloads too large: a 413, as for one job too large; else a 422 names all.
        raise ProblemError(413 if oversized == len(errors) else 422, detail, errors=errors)
    if principal.restricted:
        for queue in {resolved.queue for resolved in options_of}:
            require_queue(principal, queue)
        for task in tasks:
            require_task(principal, task)
    callbacks = {o.callback_url for o in options_of if o.callback_url is not None}
    if callbacks:
        await webhooks.check_callbacks(state, principal, callbacks)
    by = creator(principal)
    per_queue = Counter(options.queue for options in options_of)
    bounds = state.bounds  # 429 when a queue is full; a bounded one counts the jobs until settled
    settle = bounds.settle_all if bounds is not None and bounds.admit_all(per_queue) else None
    span = None
    if state.tracing.enabled:  # one span for the batch; every job keeps its traceparent
        queues = sorted(per_queue)
        span = state.tracing.send(
            request.headers, queues[0] if len(queues) == 1 else "(many)", None, len(payloads)
        )
    try:
        traceparent = span.traceparent if span is not None else None
        answer = await _insert(state, payloads, options_of, by, traceparent)
    except BaseException as exc:
        if span is not None:
            span.end(error=exc)
        raise
    finally:
        if settle is not None:
            settle(per_queue)
    if span is not None:
        span.end([job["id"] for job in answer])
    for resolved, job in zip(options_of, answer, strict=True):
        state.metrics.enqueued(resolved.queue, job["task"])
    for queue in {options.queue for options in options_of}:
        state.on_enqueue(queue)
    if callbacks and state.webhooks is not None:
        state.webhooks.on_new()
    log.info("jobs_enqueued", count=len(answer), first_id=answer[0]["id"], last_id=answer[-1]["id"])
    return JSONResponse(answer, status_code=201)


_PLAIN = JobOptions()


async def _insert(
    state: ApiState,
    payloads: list[RawJSON],
    options_of: list[EnqueueOptions],
    by: str | None,
    trace_context: str | None,
) -> list[dict[str, Any]]:
    shared = shared_options(options_of)
    if shared is not None:
        # The usual batch: one statement, one row back, one template for the answer.
        alike = await state.store.insert_alike(payloads, shared, by, trace_context)
        return inserted_alike(alike, payloads, shared, state.waits, by)
    created = await state.store.insert(
        [
            NewJob(payload, options, by, trace_context)
            for payload, options in zip(payloads, options_of, strict=True)
        ]
    )
    return inserted_jobs(created, payloads, options_of, state.waits, by)


def _validate(body: object) -> None:
    """Raise the 422 that the whole-body model gives for a malformed batch."""
    try:
        Batch.model_validate(body)
    except ValidationError as exc:
        errors = describe(exc)
        detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:10])
        raise ProblemError(422, detail, errors=errors) from None
    raise ProblemError(422, 'the body must be {"jobs": [...]}')  # pragma: no cover
