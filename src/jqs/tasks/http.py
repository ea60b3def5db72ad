"""The built-in `http` task: performs the HTTP request its payload describes.

Payload: {"task": "http", "url": "https://...", "method": "POST", "headers": {...},
"json": {...} | "body": "text", "timeout": 10, "raise_for_status": false}. The result keeps
the status code, the response headers and at most `max_body` bytes of the body.

Requests go through jqs.netguard: a destination the policy refuses (by default anything not
publicly routable) fails the job at once with one message that is the same whatever lies
behind the address. A payload that can never succeed (bad URL, scheme, method, field or
header) fails at once too, saying what is wrong. Transport errors to allowed destinations,
and a 4xx/5xx answer when `raise_for_status` is true, fail the attempt and are retried.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

from jqs.netguard import REFUSED_MESSAGE, DestinationPolicy, DestinationRefused, guarded_client
from jqs.tasks.control import FailNow
from jqs.tasks.registry import Handler, TaskSpec

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class HttpTaskError(Exception):
    """The request failed in transit or was answered with an error status (retried)."""


class HttpPayloadError(FailNow):
    """The payload can never make a request: retrying it would fail the same way."""


# httpx errors that come from the request itself, not from the network or the peer.
_HOPELESS = (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError)


class HttpRequestSpec(BaseModel):
    """What an `http` payload may say."""

    model_config = ConfigDict(extra="ignore")

    url: HttpUrl
    method: Method = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    raise_for_status: bool = False


def _parse(payload: dict[str, Any]) -> HttpRequestSpec:
    fields = {k: v for k, v in payload.items() if k != "task"}
    if isinstance(fields.get("method"), str):
        fields["method"] = fields["method"].upper()
    try:
        return HttpRequestSpec.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'payload'}: {err['msg']}"
            for err in exc.errors()
        )
        raise HttpPayloadError(f"invalid http payload: {problems}") from None


def http_task(
    *, default_timeout: float, max_body: int, policy: DestinationPolicy | None = None
) -> TaskSpec:
    """The `http` handler, with a per-request timeout cap, a body size bound and the
    destination policy (by default: public addresses only)."""
    destinations = policy if policy is not None else DestinationPolicy()

    async def http(payload: dict[str, Any]) -> dict[str, Any]:
        spec = _parse(payload)
        timeout = min(spec.timeout or default_timeout, default_timeout)
        content = spec.body.encode() if spec.body is not None else None
        started = time.perf_counter()
        try:
            async with (
                guarded_client(destinations, timeout=timeout) as client,
                client.stream(
                    spec.method,
                    str(spec.url),
                    headers=spec.headers,
                    json=spec.json_body if content is None else None,
                    content=content,
                ) as response,
            ):
                body, truncated = await _read_bounded(response, max_body)
        except DestinationRefused:
            raise FailNow(REFUSED_MESSAGE) from None
        except (*_HOPELESS, UnicodeEncodeError) as exc:
            raise HttpPayloadError(f"{spec.method} {spec.url} cannot be sent: {exc}") from exc
        except httpx.HTTPError as exc:
            raise HttpTaskError(
                f"{spec.method} {spec.url} failed: {type(exc).__name__}: {exc}"
            ) from exc
        result: dict[str, Any] = {
            "status_code": response.status_code,
            "headers": dict(response.headers),
            "body": body.decode(response.encoding or "utf-8", errors="replace"),
            "truncated": truncated,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
        }
        if spec.raise_for_status and response.status_code >= 400:
            raise HttpTaskError(
                f"{spec.method} {spec.url} answered {response.status_code}: {result['body'][:200]}"
            )
        return result

    handler: Handler = http
    return TaskSpec.of("http", handler)


async def _read_bounded(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        room = limit - size
        if len(chunk) > room:
            chunks.append(chunk[:room])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False
