"""/webhooks: signed webhook subscriptions and their deliveries (scope `admin`), and the
webhook secret of an API key, which signs the callbacks of the jobs it submits."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from jqs.api.auth import AdminKey, creator, scope_doc
from jqs.api.body import read_json_object
from jqs.api.keys import KEY_ID
from jqs.api.openapi import json_body, problem_response, problem_responses
from jqs.api.options import describe
from jqs.api.problems import ProblemError
from jqs.api.render import JSONResponse
from jqs.api.state import ApiState, WebhookApi, api_state
from jqs.auth.principal import ANONYMOUS, Principal
from jqs.auth.scopes import Scope
from jqs.jsonutil import dumps
from jqs.logging import get_logger
from jqs.models import EventType, Webhook, WebhookDelivery
from jqs.port import MAX_JOB_ID, DeliveryListing, NewWebhook
from jqs.tasks.names import QUEUE_NAME
from jqs.webhooks import signing
from jqs.webhooks.destination import MAX_URL_LENGTH, URL_PATTERN, refusal

log = get_logger(__name__)
router = APIRouter(tags=["webhooks"])
State = Annotated[ApiState, Depends(api_state)]
MAX_BODY_BYTES = 65_536
WEBHOOK_ID = r"^wh_[0-9a-f]{12}$"
WebhookId = Annotated[str, Path(pattern=WEBHOOK_ID, description="the subscription's id")]


class NewWebhookIn(BaseModel):
    """A subscription: where to, and which events. Leave `queues`/`tasks` out (or null) for
    every one."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH, pattern=URL_PATTERN)
    events: list[EventType] = Field(min_length=1, max_length=len(EventType))
    queues: list[Annotated[str, Field(pattern=QUEUE_NAME.pattern)]] | None = Field(
        default=None, min_length=1, max_length=1000
    )
    tasks: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, min_length=1, max_length=1000
    )


NEW_WEBHOOK_SCHEMA = NewWebhookIn.model_json_schema(ref_template="#/components/schemas/{model}")
NEW_WEBHOOK_COMPONENTS: dict[str, Any] = NEW_WEBHOOK_SCHEMA.pop("$defs", {})


@dataclass(frozen=True, slots=True)
class CreatedWebhook(Webhook):
    """A subscription just created or rotated, with its signing secret (`whsec_...`):
    stored to sign, but shown only this once."""

    secret: str


@dataclass(frozen=True, slots=True)
class KeyWebhookSecret:
    """An API key's new webhook secret, shown this once. It signs the callbacks of the jobs
    the key submits; the old one signs too until `previous_secret_until`."""

    id: str
    webhook_secret: str
    previous_secret_until: datetime | None


def webhook_api(state: ApiState) -> WebhookApi:
    """The webhook part of the state, or 503 when this server has none."""
    if state.webhooks is None:
        raise ProblemError(503, "webhooks are not available on this server")
    return state.webhooks


async def check_url(api: WebhookApi, url: str, field: str) -> None:
    """422 unless `url` may receive webhooks (the SSRF policy, JQS_HTTP_ALLOW)."""
    reason = await refusal(url, api.policy, api.resolver)
    if reason is not None:
        raise ProblemError(422, f"{field}: {reason}", errors=[{"loc": field, "msg": reason}])


async def check_callbacks(state: ApiState, principal: Principal, urls: set[str]) -> None:
    """422 unless jobs submitted with this key may name these callback URLs: the key must
    be one with a webhook secret (which signs the callbacks), and each URL must pass the
    SSRF policy."""
    api = state.webhooks
    if api is None:
        raise ProblemError(422, "callback_url: webhooks are not available on this server")
    if principal is ANONYMOUS or not await api.store.key_has_webhook_secret(principal.id):
        who = (
            "this request has no API key"
            if principal is ANONYMOUS
            else (
                f"API key {principal.id} has no webhook secret (POST /keys/{principal.id}/"
                "webhook-secret gives it one; the JQS_ADMIN_KEY key has none)"
            )
        )
        raise ProblemError(
            422,
            f"callback_url: callbacks are signed with the submitting key's webhook secret, "
            f"and {who}",
        )
    for url in sorted(urls):
        await check_url(api, url, "callback_url")


_WEBHOOK_404: dict[int | str, dict[str, Any]] = {
    404: problem_response(404, "No subscription has this id")
}


@router.post(
    "/webhooks",
    status_code=201,
    operation_id="create_webhook",
    summary="Subscribe a URL to job events (its signing secret is shown once)",
    response_model=CreatedWebhook,
    responses=problem_responses(400, 413, 415, 422, 503),
    openapi_extra={
        **scope_doc(Scope.ADMIN),
        "requestBody": json_body(NEW_WEBHOOK_SCHEMA, MAX_BODY_BYTES),
    },
)
async def create_webhook(request: Request, state: State, principal: AdminKey) -> Response:
    """Create a subscription; the answer holds its `whsec_` secret, shown only this once."""
    api = webhook_api(state)
    _, body = await read_json_object(request, max_bytes=MAX_BODY_BYTES, max_depth=4)
    try:
        wanted = NewWebhookIn.model_validate_json(dumps(body), strict=True)
    except ValidationError as exc:
        errors = describe(exc)
        raise ProblemError(
            422, "; ".join(f"{e['loc']}: {e['msg']}" for e in errors), errors=errors
        ) from None
    await check_url(api, wanted.url, "url")
    secret = signing.new_secret()
    hook = await api.store.webhook_create(
        NewWebhook(
            id="wh_" + secrets.token_hex(6),
            url=wanted.url,
            events=sorted({event.value for event in wanted.events}),
            secret=secret,
            queues=None if wanted.queues is None else sorted(set(wanted.queues)),
            tasks=None if wanted.tasks is None else sorted(set(wanted.tasks)),
            created_by=creator(principal),
        )
    )
    api.on_new()
    log.info("webhook_created", webhook=hook.id, url=hook.url, key_id=principal.id)
    return JSONResponse(
        CreatedWebhook(**asdict(hook), secret=secret),
        status_code=201,
        headers={"Location": f"/webhooks/{hook.id}", "Cache-Control": "no-store"},
    )


@router.get(
    "/webhooks",
    operation_id="list_webhooks",
    summary="List webhook subscriptions",
    response_model=list[Webhook],
    responses=problem_responses(503),
    openapi_extra=scope_doc(Scope.ADMIN),
)
async def list_webhooks(state: State, principal: AdminKey) -> Response:
    """Every subscription, oldest first, without secrets."""
    return JSONResponse(await webhook_api(state).store.webhook_list())


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=204,
    operation_id="delete_webhook",
    summary="Delete a webhook subscription and its deliveries",
    responses={**problem_responses(422, 503), **_WEBHOOK_404},
    openapi_extra=scope_doc(Scope.ADMIN),
)
async def delete_webhook(state: State, principal: AdminKey, webhook_id: WebhookId) -> Response:
    """Delete a subscription: nothing more is sent to it, pending deliveries included."""
    if not await webhook_api(state).store.webhook_delete(webhook_id):
        raise ProblemError(404, f"no subscription has the id {webhook_id}")
    log.info("webhook_deleted", webhook=webhook_id, key_id=principal.id)
    return Response(status_code=204)


@router.post(
    "/webhooks/{webhook_id}/rotate",
    operation_id="rotate_webhook_secret",
    summary="Give a subscription a new secret; the old one signs too for a while",
    response_model=CreatedWebhook,
    responses={**problem_responses(422, 503), **_WEBHOOK_404},
    openapi_extra=scope_doc(Scope.ADMIN),
)
async def rotate_webhook(state: State, principal: AdminKey, webhook_id: WebhookId) -> Response:
    """A new secret, shown once. Until `previous_secret_until` (JQS_WEBHOOK_ROTATION_OVERLAP,
    24 hours by default) every delivery carries a signature by each secret."""
    api = webhook_api(state)
    secret = signing.new_secret()
    hook = await api.store.webhook_rotate(webhook_id, secret, api.rotation_overlap)
    if hook is None:
        raise ProblemError(404, f"no subscription has the id {webhook_id}")
    log.info("webhook_rotated", webhook=hook.id, key_id=principal.id)
    return JSONResponse(
        CreatedWebhook(**asdict(hook), secret=secret), headers={"Cache-Control": "no-store"}
    )


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    operation_id="list_webhook_deliveries",
    summary="A subscription's deliveries and their attempts, newest first",
    response_model=list[WebhookDelivery],
    responses={**problem_responses(422, 503), **_WEBHOOK_404},
    openapi_extra=scope_doc(Scope.ADMIN),
)
async def list_deliveries(
    state: State,
    principal: AdminKey,
    webhook_id: WebhookId,
    limit: Annotated[int, Query(ge=1, le=100, description="at most this many")] = 50,
    before_id: Annotated[
        int | None,
        Query(ge=1, le=MAX_JOB_ID, description="only deliveries whose id is below this"),
    ] = None,
) -> Response:
    """Each delivery with its state, every attempt (status code, error) and the next
    attempt's time. Page with `before_id` = the last id of the previous page."""
    api = webhook_api(state)
    if not any(hook.id == webhook_id for hook in await api.store.webhook_list()):
        raise ProblemError(404, f"no subscription has the id {webhook_id}")
    deliveries = await api.store.deliveries_list(
        DeliveryListing(webhook_id, limit=limit, before_id=before_id)
    )
    return JSONResponse(deliveries)


@router.post(
    "/keys/{key_id}/webhook-secret",
    operation_id="rotate_key_webhook_secret",
    summary="Give an API key a new webhook secret (for the callbacks of its jobs)",
    response_model=KeyWebhookSecret,
    responses={
        **problem_responses(422, 503),
        404: problem_response(404, "No API key has this id"),
    },
    openapi_extra=scope_doc(Scope.ADMIN),
)
async def rotate_key_secret(
    state: State, principal: AdminKey, key_id: Annotated[str, Path(pattern=KEY_ID)]
) -> Response:
    """A new secret, shown once; the old one signs too for JQS_WEBHOOK_ROTATION_OVERLAP."""
    api = webhook_api(state)
    secret = signing.new_secret()
    rotation = await api.store.key_webhook_secret_rotate(key_id, secret, api.rotation_overlap)
    if rotation is None:
        raise ProblemError(404, f"no API key has the id {key_id}")
    log.info("key_webhook_secret_rotated", rotated_key_id=key_id, key_id=principal.id)
    return JSONResponse(
        KeyWebhookSecret(key_id, secret, rotation.previous_until),
        headers={"Cache-Control": "no-store"},
    )
