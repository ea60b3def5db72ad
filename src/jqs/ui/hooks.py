"""The webhooks page: subscriptions, and each one's latest deliveries with every attempt.

Read-only: subscriptions are made, rotated and deleted through the API (`/webhooks`),
whose answer carries the secret once.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from jqs.auth.scopes import Scope
from jqs.port import DeliveryListing
from jqs.ui.access import Refused, api_state, need
from jqs.ui.render import PREFIX, page

DELIVERIES_SHOWN = 50

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/webhooks")
async def webhooks_page(request: Request) -> Response:
    """Scope admin. Every subscription."""
    visitor = need(request, Scope.ADMIN)
    api = api_state(request).webhooks
    hooks = [] if api is None else await api.store.webhook_list()
    return page(
        request,
        visitor,
        "webhooks.html",
        {"nav": "webhooks", "available": api is not None, "hooks": hooks},
    )


@router.get("/webhooks/{webhook_id}")
async def webhook_page(request: Request, webhook_id: str) -> Response:
    """Scope admin. One subscription's latest deliveries."""
    visitor = need(request, Scope.ADMIN)
    api = api_state(request).webhooks
    hook = (
        None
        if api is None
        else next((each for each in await api.store.webhook_list() if each.id == webhook_id), None)
    )
    if api is None or hook is None:
        raise Refused(404, f"no webhook subscription has the id {webhook_id}")
    deliveries = await api.store.deliveries_list(
        DeliveryListing(webhook_id, limit=DELIVERIES_SHOWN)
    )
    return page(
        request,
        visitor,
        "webhook.html",
        {"nav": "webhooks", "hook": hook, "deliveries": deliveries, "shown": DELIVERIES_SHOWN},
    )
