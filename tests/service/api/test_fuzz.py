"""Schemathesis against the app's own OpenAPI schema: every operation, with and without keys.

Four runs over every operation in ``/openapi.json``, each with valid (positive) and invalid
(negative) requests generated from the schema:

- an app with no keys configured (open, as on loopback);
- an app with keys, called with a key that holds every scope (``admin``); schemathesis'
  ``ignored_auth`` also replays a successful request without the key and with a wrong one;
- the same app called with no key, a wrong bearer token and a wrong ``X-API-Key``: every
  operation the schema marks as secured must answer 401 (the open ones answer as usual);
- the same app called with a ``classify``-only key: 403 on what needs another scope.

Every response must be no 5xx and must match what the schema documents for it: its status
code, its content type, its headers and its body.

The schema is loaded from the running app in a fixture and each operation is driven through
``operation.as_strategy()`` with a plain ``@given``: schemathesis' lazy ``from_fixture``
loader does not run under pytest 9.2 (it reads ``Node._nodeid``, which pytest no longer has).
``OPERATIONS`` lists every operation, and a test fails when the schema has one it lacks, so a
new endpoint cannot go unfuzzed.

The routes the schema leaves out (the dashboard page, /favicon.ico, the static files and
FastAPI's /docs, /redoc and /openapi.json) have no schema to conform to: they are only checked
for no 5xx (with random paths under /static, traversal attempts included) at the end.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
import schemathesis
import torch
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from service.api.main import create_app
from service.api.routes.dashboard import STATIC_DIR
from service.core.config import ApiKey, Settings
from service.core.security import generate_key, hash_key

ADMIN_KEY = generate_key()
CLASSIFY_KEY = generate_key()
KEYS = [
    ApiKey(name="fuzz-admin", sha256=hash_key(ADMIN_KEY), scopes=["admin"]),
    ApiKey(name="fuzz-classify", sha256=hash_key(CLASSIFY_KEY), scopes=["classify"]),
]
WRONG_KEY = "cxt_" + "x" * 43
AUTH_HEADERS = ("authorization", "x-api-key")

# Every operation of the schema: the scope it needs (None: any valid key; "open": no key) and
# whether it takes input (parameters or a body) that negative generation can make invalid.
OPERATIONS = {
    "GET /healthz": ("open", False),
    "GET /readyz": ("open", False),
    "GET /metrics": ("metrics", False),
    "POST /v1/classify": ("classify", True),
    "GET /v1/themes": (None, False),
    "GET /v1/model": (None, False),
    "GET /v1/metrics/themes": ("metrics", True),
    "GET /v1/metrics/summary": ("metrics", True),
    "GET /v1/metrics/examples": ("metrics", True),
    "DELETE /v1/feedback/{item_id}": ("admin", True),
    "GET /v1/review": ("admin", True),
    "GET /v1/review/label-config": ("admin", False),
    "POST /v1/review/resolve": ("admin", True),
    "POST /v1/admin/reload": ("admin", False),
}
# Valid requests for every operation; invalid ones where there is input to break.
RUNS = [
    pytest.param(label, mode, id=f"{label}-{mode.value}")
    for label, (_, has_input) in OPERATIONS.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if has_input or mode is GenerationMode.POSITIVE
]

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]

FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the working tree
    # Generated bodies can be large and negative cases are filtered: both expected here.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# An operation without input has little to vary (only the generated headers): a few calls
# (each POST /v1/admin/reload loads the model afresh).
FEW = 3


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # The tiny model's matrices are far too small to share between threads, and on a busy
    # 2-core machine intra-op threads make each model call ~20x slower. Restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _app(tiny_bundle, tmp_path_factory, **overrides):
    db = tmp_path_factory.mktemp("fuzz-store") / "api.db"
    app = create_app(Settings(model=str(tiny_bundle), database_url=f"sqlite:///{db}", **overrides))
    yield app  # create_app has started the batcher and opened the store
    app.state.model.batcher.stop()
    app.state.store.close()


@pytest.fixture(scope="module")
def open_app(tiny_bundle, tmp_path_factory):
    yield from _app(tiny_bundle, tmp_path_factory)


@pytest.fixture(scope="module")
def keyed_app(tiny_bundle, tmp_path_factory):
    yield from _app(tiny_bundle, tmp_path_factory, api_keys=KEYS)


@pytest.fixture(scope="module")
def open_schema(open_app):
    # Without keys the app answers only requests naming a loopback host.
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", open_app, headers={"Host": "localhost"}
    )
    schema.config.update(base_url="http://localhost")
    return schema


@pytest.fixture(scope="module")
def keyed_schema(keyed_app):
    return schemathesis.openapi.from_asgi("/openapi.json", keyed_app)


def _operation(schema, label: str):
    method, path = label.split(" ", 1)
    return schema[path][method]


def _fuzz(operation, mode, test) -> None:
    """Run ``test(case)`` on cases generated for ``operation`` in ``mode``."""
    strategy = operation.as_strategy(generation_mode=mode)
    has_input = OPERATIONS[operation.label][1]

    @settings(FUZZ, max_examples=FUZZ.max_examples if has_input else FEW)
    @given(case=strategy)
    def run(case):
        test(case)

    run()


def _without_auth(case) -> None:
    """Drop any credential the generator put on the case: the test chooses what is sent."""
    if case.headers:
        case.headers = {k: v for k, v in case.headers.items() if k.lower() not in AUTH_HEADERS}


def test_every_operation_is_fuzzed(open_schema):
    found = {result.ok().label: result.ok() for result in open_schema.get_all_operations()}
    assert set(found) == set(OPERATIONS)
    for label, operation in found.items():
        raw = operation.definition.raw
        has_input = bool(raw.get("parameters") or raw.get("requestBody"))
        assert has_input == OPERATIONS[label][1], label


def test_schema_declares_security_where_keys_are_enforced(open_schema):
    for label, (scope, _) in OPERATIONS.items():
        declared = bool(_operation(open_schema, label).definition.raw.get("security"))
        assert declared == (scope != "open"), label


@pytest.mark.parametrize(("label", "mode"), RUNS)
def test_no_keys_configured(open_schema, label, mode):
    # With no keys the server is open by design (it listens on loopback only), so
    # `ignored_auth` would flag every secured operation: it runs in the keyed test below.
    def check(case):
        _without_auth(case)
        case.call_and_validate(checks=CHECKS)

    _fuzz(_operation(open_schema, label), mode, check)


@pytest.mark.parametrize(("label", "mode"), RUNS)
def test_full_scope_key(keyed_schema, label, mode):
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}

    def check(case):
        _without_auth(case)
        response = case.call_and_validate(
            headers=headers, checks=[*CHECKS, schemathesis.checks.ignored_auth]
        )
        assert response.status_code not in (401, 403), response.text

    _fuzz(_operation(keyed_schema, label), mode, check)


@pytest.mark.parametrize(("label", "mode"), RUNS)
def test_missing_or_wrong_key_is_refused(keyed_schema, label, mode):
    secured = OPERATIONS[label][0] != "open"

    def check(case):
        _without_auth(case)
        for headers in ({}, {"Authorization": f"Bearer {WRONG_KEY}"}, {"X-API-Key": WRONG_KEY}):
            response = case.call(headers=headers)
            case.validate_response(response, checks=CHECKS, headers=headers)
            if secured:
                assert response.status_code == 401, (headers, response.status_code, response.text)
                assert response.headers["www-authenticate"] == ["Bearer"]
                assert response.json()["detail"]["field"] == "authorization"

    _fuzz(_operation(keyed_schema, label), mode, check)


@pytest.mark.parametrize("label", list(OPERATIONS))
def test_narrow_key_gets_403_outside_its_scope(keyed_schema, label):
    scope = OPERATIONS[label][0]
    headers = {"X-API-Key": CLASSIFY_KEY}

    def check(case):
        _without_auth(case)
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)
        if scope in ("metrics", "admin"):
            assert response.status_code == 403, (response.status_code, response.text)
            assert "lacks" in response.json()["detail"]["message"]
        else:
            assert response.status_code not in (401, 403), response.text

    _fuzz(_operation(keyed_schema, label), GenerationMode.POSITIVE, check)


# -- bodies that are not JSON at all ----------------------------------------------------------
UNPARSEABLE = {
    "not utf-8": b'{"items": [{"id": "a", "text": "\xff\xfe"}]}',
    "nested too deeply": b"[" * 100_000,
    "truncated": b'{"items": [{"id": "a", "text": "fine"',
}


@pytest.mark.parametrize("body", list(UNPARSEABLE.values()), ids=list(UNPARSEABLE))
def test_unparseable_body_is_a_422_naming_the_body(open_app, body):
    client = TestClient(open_app, base_url="http://localhost")
    r = client.post("/v1/classify", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["field"] == "body" and error["message"].startswith("invalid JSON")


@settings(FUZZ, max_examples=50)
@given(body=st.binary(max_size=300) | st.sampled_from(list(UNPARSEABLE.values())))
def test_any_body_without_a_key_is_a_401_before_parsing(keyed_app, body):
    client = TestClient(keyed_app)
    r = client.post("/v1/classify", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 401, r.text
    r = client.post(
        "/v1/classify",
        content=body,
        headers={"content-type": "application/json", "X-API-Key": CLASSIFY_KEY},
    )
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        assert all(set(e) == {"field", "message"} for e in r.json()["detail"])


# -- routes outside the schema: no 5xx ---------------------------------------------------------
STATIC_FILES = {p.read_bytes() for p in STATIC_DIR.rglob("*") if p.is_file()}
UNDOCUMENTED = ["/dashboard", "/favicon.ico", "/docs", "/redoc", "/openapi.json"]


@pytest.fixture(scope="module")
def raw_client(keyed_app):
    # No `with`: the app's lifespan (shared with the schemathesis runs) is left alone.
    return TestClient(keyed_app, follow_redirects=False)


@pytest.mark.parametrize("path", UNDOCUMENTED)
def test_undocumented_routes_answer(raw_client, path):
    response = raw_client.get(path)
    assert response.status_code in (200, 308), (path, response.status_code)


@given(
    segments=st.lists(
        st.sampled_from(["..", ".", "%2e%2e", "%2f", "..%2f", "dashboard.js", "vendor", "", "\\"])
        | st.text(min_size=1, max_size=12).map(lambda s: quote(s, safe="")),
        min_size=1,
        max_size=5,
    )
)
@settings(max_examples=60, deadline=None, database=None)
def test_static_files_never_5xx_nor_escape(raw_client, segments):
    path = "/static/" + "/".join(segments)
    response = raw_client.get(path)
    assert response.status_code < 500, (path, response.status_code)
    if response.status_code == 200:
        # Only the static folder's own files: nothing above it (code, settings, models).
        assert response.content in STATIC_FILES, path
