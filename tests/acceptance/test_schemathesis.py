"""schemathesis, with every check, over every operation of a real `jqs serve`.

The operations come from the document that JQS builds with its default limits, the ones
the server here runs with; the first test holds the server's own /openapi.json to it, so
what is checked is what clients get. (The document is built at import because
schemathesis parametrizes at collection; its loader from a fixture does not run on this
pytest.) Generation is seeded, derandomized and bounded, so the run takes about two
minutes on a small machine and fails the same way twice.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import schemathesis
from schemathesis import Case, GenerationMode
from schemathesis.config import SchemathesisConfig

from jqs.api.app import create_app
from jqs.api.state import ApiState
from jqs.api.waiting import MAX_WAIT
from jqs.store.memory import MemoryStore
from tests.acceptance.conftest import serve_env
from tests.support.pg import PgTestServer
from tests.support.proc import JqsProcess

# The server's bootstrap key, from its own environment: nothing the run does can revoke it.
ADMIN_KEY = "test-admin-key-0123456789abcdefghijkl"
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
MAX_EXAMPLES = 100
WEBHOOK_URL = "http://127.0.0.1:9/hook"
SEED = 20261203

DOCUMENT = create_app(ApiState(store=MemoryStore())).fastapi.openapi()
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        # The one health check that times generation: a loaded machine must not fail it.
        "suppress-health-check": ["too_slow"],
        "headers": HEADERS,
        "request-timeout": 30,
        "checks": {
            "enabled": True,
            # Schema-violating data must be refused: with the usual 4xx, or with 413 when the
            # generated body is also larger than the route takes (it is refused unread).
            "negative_data_rejection": {
                "expected-statuses": [
                    "400",
                    "401",
                    "403",
                    "404",
                    "405",
                    "406",
                    "409",
                    "413",
                    "415",
                    "422",
                    "428",
                    "429",
                ]
            },
        },
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
        "phases": {"enabled": True},
    }
)
# A copy: schemathesis may write into the document it is given.
schema = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT), config=CONFIG)


_SERVER: list[JqsProcess] = []  # the server of the run, for its log lines


@pytest.fixture(scope="module")
async def jqs_url(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """One `jqs serve` on a database of its own for the whole run."""
    async with pg_server.database() as dsn:
        # Webhook URLs on loopback pass the SSRF policy (nothing listens on WEBHOOK_URL).
        env = serve_env(
            DATABASE_URL=dsn,
            JQS_ADMIN_KEY=ADMIN_KEY,
            JQS_HTTP_ALLOW="127.0.0.1",
            # Streams end soon, so that each example of an SSE operation does.
            JQS_SSE_MAX_DURATION="1",
            JQS_SSE_KEEPALIVE="0.5",
        )
        proc = JqsProcess("serve", env=env, cwd=tmp_path_factory.mktemp("schemathesis"))
        _SERVER.append(proc)
        try:
            yield proc.url
        finally:
            proc.kill()
            _SERVER.clear()


def test_the_server_serves_the_document_under_test(jqs_url: str) -> None:
    served = httpx.get(f"{jqs_url}/openapi.json", headers=HEADERS, timeout=30)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


_KEYS = itertools.count()


def _within_what_openapi_cannot_say(case: Case) -> None:
    """Rules that a document cannot state, applied to the requests meant to be valid: on
    POST /jobs, run_at and delay are not given together (the body's schema says so; query
    parameters cannot) and an Idempotency-Key is new for a new request; on POST /keys, an
    expires_at lies in the future; a callback URL needs a key with a webhook secret (the
    bootstrap key has none); a webhook URL must resolve to an allowed address; a claim waits
    briefly (its `wait` is in the body). Whatever the
    mode, a valid `wait` is cut to a second: the run stays short (streams are bounded by
    the server's JQS_SSE_MAX_DURATION)."""
    wait = (case.query or {}).get("wait")
    if isinstance(wait, int | float | str) and not isinstance(wait, bool):
        try:
            seconds = float(wait)
        except ValueError:
            seconds = 0.0
        if 1 < seconds <= MAX_WAIT:
            case.query["wait"] = 1
    if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE:
        return
    if case.operation.label == "POST /jobs":
        if case.query and "run_at" in case.query:
            case.query.pop("delay", None)
        key = (case.headers or {}).get("Idempotency-Key")
        if isinstance(key, str):
            case.headers["Idempotency-Key"] = f"{next(_KEYS)}.{key}"[:255]
        # The bootstrap key has no webhook secret to sign a callback with.
        if case.query:
            case.query.pop("callback_url", None)
    body = case.body
    claim = case.operation.label == "POST /v1/workers/claim" and isinstance(body, dict)
    if claim and isinstance(body.get("wait"), int | float):
        # A claim may wait up to 30 s for a job; the run cannot wait that long per example.
        body["wait"] = min(body["wait"], 0.05)
    if case.operation.label == "POST /keys" and isinstance(body, dict) and body.get("expires_at"):
        body["expires_at"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    if case.operation.label == "POST /jobs/batch" and isinstance(body, dict):
        for item in body.get("jobs") or ():
            if isinstance(item, dict):
                item.pop("callback_url", None)
    if case.operation.label == "POST /webhooks" and isinstance(body, dict):
        # A URL whose host resolves, and to an address the policy allows.
        body["url"] = WEBHOOK_URL


# One operation's examples take up to half a minute here; a loaded machine gets room.
@pytest.mark.timeout(300)
@schema.parametrize()
def test_every_operation_holds_to_its_document(case: Case, jqs_url: str) -> None:
    _within_what_openapi_cannot_say(case)
    try:
        case.call_and_validate(base_url=jqs_url, headers=HEADERS)
    except Exception:
        # What the server logged about its 5xx answers goes into the failure's report.
        for line in _SERVER[0].events("store_error") + _SERVER[0].events("unhandled_error"):
            print("server logged:", line)
        raise
