"""/keys: create, list and revoke API keys (scope `admin`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.responses import Response

from jqs.api.auth import AdminKey, scope_doc
from jqs.api.body import read_json_object
from jqs.api.openapi import json_body, problem_response, problem_responses
from jqs.api.options import describe
from jqs.api.problems import ProblemError
from jqs.api.render import JSONResponse
from jqs.api.state import ApiState, api_state
from jqs.auth.issue import MAX_NAME_LENGTH, KeySpec, issue_key
from jqs.auth.scopes import Scope
from jqs.jsonutil import dumps
from jqs.logging import get_logger
from jqs.models import ApiKey
from jqs.tasks.names import QUEUE_NAME

log = get_logger(__name__)
router = APIRouter(tags=["keys"])
State = Annotated[ApiState, Depends(api_state)]
MAX_BODY_BYTES = 65_536
KEY_ID = r"^key_[0-9a-f]{12}$"
MAX_EXPIRY = timedelta(days=3660)


class NewKeyIn(BaseModel):
    """A key to create. Leave `queues`/`tasks` out (or null) to allow every one."""

    model_config = ConfigDict(
        extra="forbid",
        # expires_in and expires_at both say when it ends: not both (see _one_expiry).
        json_schema_extra={
            "not": {
                "required": ["expires_in", "expires_at"],
                "properties": {
                    "expires_in": {"not": {"type": "null"}},
                    "expires_at": {"not": {"type": "null"}},
                },
            }
        },
    )

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=r"^[^\x00-\x1f\x7f]+$")
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    queues: list[Annotated[str, Field(pattern=QUEUE_NAME.pattern)]] | None = Field(
        default=None, min_length=1, max_length=1000
    )
    tasks: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, min_length=1, max_length=1000
    )
    rate_limit: float | None = Field(
        default=None, ge=0.01, le=1_000_000, description="requests per second per server"
    )
    expires_in: float | None = Field(
        default=None, ge=1, le=MAX_EXPIRY.total_seconds(), description="seconds from now"
    )
    expires_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_expiry(self) -> NewKeyIn:
        if self.expires_in is not None and self.expires_at is not None:
            raise ValueError("give expires_in or expires_at, not both")
        return self

    def spec(self, now: datetime) -> KeySpec:
        """The key this asks for."""
        expires = self.expires_at
        if self.expires_in is not None:
            expires = now + timedelta(seconds=self.expires_in)
        if expires is not None and not now < expires <= now + MAX_EXPIRY:
            raise ProblemError(422, "expires_at must be in the future, within ten years")
        return KeySpec(
            name=self.name,
            scopes=frozenset(self.scopes),
            queues=self.queues,
            tasks=self.tasks,
            rate_limit=self.rate_limit,
            expires_at=expires,
        )


# The request body's schema; the models it refers to join the document's components.
NEW_KEY_SCHEMA = NewKeyIn.model_json_schema(ref_template="#/components/schemas/{model}")
NEW_KEY_COMPONENTS: dict[str, Any] = NEW_KEY_SCHEMA.pop("$defs", {})


@dataclass(frozen=True, slots=True)
class CreatedKey(ApiKey):
    """A key just created, with its secret: send it as `Authorization: Bearer <secret>`.
    The secret is not stored and is not shown again. `webhook_secret` (`whsec_...`) signs
    the callbacks of the jobs the key submits (`?callback_url=`); it is stored, to sign,
    but shown only this once too."""

    secret: str
    webhook_secret: str


@router.post(
    "/keys",
    status_code=201,
    operation_id="create_key",
    summary="Create an API key (its secret is shown once)",
    response_model=CreatedKey,
    responses=problem_responses(400, 413, 415, 422, 503),
    openapi_extra={
        **scope_doc(Scope.ADMIN),
        "requestBody": json_body(NEW_KEY_SCHEMA, MAX_BODY_BYTES),
    },
)
async def create_key(request: Request, state: State, principal: AdminKey) -> Response:
    """Create a key; the answer holds its secret, which is not stored and not shown again."""
    _, body = await read_json_object(request, max_bytes=MAX_BODY_BYTES, max_depth=4)
    try:
        # Strictly, as JSON: true is no number and "5" no rate, as the schema says.
        wanted = NewKeyIn.model_validate_json(dumps(body), strict=True)
    except ValidationError as exc:
        errors = describe(exc)
        raise ProblemError(
            422, "; ".join(f"{e['loc']}: {e['msg']}" for e in errors), errors=errors
        ) from None
    issued = await issue_key(state.store, wanted.spec(datetime.now(UTC)), created_by=principal.id)
    if state.keyring is not None:
        state.keyring.add(issued.secret_hash, issued.principal)
    key = issued.key
    log.info(
        "key_created", new_key_id=key.id, name=key.name, scopes=key.scopes, key_id=principal.id
    )
    return JSONResponse(
        CreatedKey(**asdict(key), secret=issued.secret, webhook_secret=issued.webhook_secret),
        status_code=201,
        headers={"Location": f"/keys/{key.id}", "Cache-Control": "no-store"},
    )


@router.get(
    "/keys",
    operation_id="list_keys",
    summary="List API keys, revoked and expired ones too",
    response_model=list[ApiKey],
    responses=problem_responses(503),
    openapi_extra=scope_doc(Scope.ADMIN),
)
async def list_keys(state: State, principal: AdminKey) -> Response:
    """Every key, oldest first, without secrets."""
    return JSONResponse(await state.store.key_list())


@router.delete(
    "/keys/{key_id}",
    operation_id="revoke_key",
    summary="Revoke an API key",
    response_model=ApiKey,
    responses={
        **problem_responses(422, 503),
        404: problem_response(404, "No API key has this id"),
    },
    openapi_extra=scope_doc(Scope.ADMIN),
)
async def revoke_key(
    state: State, principal: AdminKey, key_id: Annotated[str, Path(pattern=KEY_ID)]
) -> Response:
    """Revoke a key: refused by every JQS process within seconds. Revoking twice is fine."""
    key = await state.store.key_revoke(key_id)
    if key is None:
        raise ProblemError(404, f"no API key has the id {key_id}")
    if state.keyring is not None:
        state.keyring.remove(key.id)
    log.info("key_revoked", revoked_key_id=key.id, name=key.name, key_id=principal.id)
    return JSONResponse(key)
