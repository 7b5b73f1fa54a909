"""API keys and scopes on every endpoint; no feedback text in the logs."""

from __future__ import annotations

import json
import logging

import pytest

from service.core.config import ApiKey
from service.core.logging import JsonFormatter
from service.core.security import find_key, generate_key, hash_key

KEYS = {scope: generate_key() for scope in ("classify", "metrics", "admin")}
CONFIG = [ApiKey(name=f"{s}-tool", sha256=hash_key(k), scopes=[s]) for s, k in KEYS.items()]

BODY = {"items": [{"id": "a", "text": "Too expensive."}]}
# (method, path, json body, the scope it needs; None: any valid key; "open": no key)
ENDPOINTS = [
    ("post", "/v1/classify", BODY, "classify"),
    ("get", "/v1/themes", None, None),
    ("get", "/v1/model", None, None),
    ("get", "/v1/metrics/themes", None, "metrics"),
    ("get", "/v1/metrics/summary", None, "metrics"),
    ("delete", "/v1/feedback/a", None, "admin"),
    ("get", "/v1/review", None, "admin"),
    ("get", "/v1/review/label-config", None, "admin"),
    ("post", "/v1/review/resolve", {"ids": ["a"]}, "admin"),
    ("get", "/metrics", None, "metrics"),
    ("get", "/healthz", None, "open"),
    ("get", "/readyz", None, "open"),
]


@pytest.fixture
def client(make_client):
    return make_client(api_keys=CONFIG)


def call(client, method, path, body, headers):
    kwargs = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    return getattr(client, method)(path, **kwargs)


@pytest.mark.parametrize(("method", "path", "body", "needed"), ENDPOINTS)
def test_each_endpoint_enforces_its_scope(client, method, path, body, needed):
    anonymous = call(client, method, path, body, {})
    wrong = call(client, method, path, body, {"Authorization": "Bearer cxt_not-a-key"})
    if needed == "open":
        assert anonymous.status_code == 200 and wrong.status_code == 200
        return
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    for scope, key in KEYS.items():
        r = call(client, method, path, body, {"Authorization": f"Bearer {key}"})
        allowed = needed is None or scope in (needed, "admin")
        if allowed:
            assert r.status_code in (200, 204, 404), (scope, r.status_code, r.text)
        else:
            assert r.status_code == 403, (scope, r.status_code)
            assert "lacks" in r.json()["detail"]["message"]


def test_x_api_key_header_works_too(client):
    r = client.post("/v1/classify", json=BODY, headers={"X-API-Key": KEYS["classify"]})
    assert r.status_code == 200


def test_keys_are_matched_by_hash_only():
    key = generate_key()
    entry = ApiKey(name="n", sha256=hash_key(key), scopes=["classify"])
    assert key not in entry.model_dump_json()
    assert find_key(key, [entry]) == entry
    assert find_key(key + "x", [entry]) is None


def test_logs_never_contain_feedback_text_or_keys(client, caplog):
    secret_text = "My neighbour Zebedee hates the new pricing plan"
    with caplog.at_level(logging.DEBUG):
        r = client.post(
            "/v1/classify",
            json={"items": [{"id": "s", "text": secret_text}], "record": True},
            headers={"Authorization": f"Bearer {KEYS['admin']}"},
        )
        assert r.status_code == 200
        client.post(
            "/v1/classify",
            json={"items": [{"id": "t", "text": secret_text}]},
            headers={"Authorization": f"Bearer {KEYS['metrics']}"},
        )
    formatter = JsonFormatter()
    lines = [formatter.format(rec) for rec in caplog.records]
    assert any('"route": "/v1/classify"' in line for line in lines)
    assert any('"key": "admin-tool"' in line for line in lines)
    for line in lines:
        json.loads(line)
        assert "Zebedee" not in line
        assert all(k not in line for k in KEYS.values())


def test_cors_is_off_unless_configured(make_client):
    closed = make_client()
    r = closed.options(
        "/v1/classify",
        headers={"Origin": "https://x.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in r.headers
    opened = make_client(cors_origins=["https://x.example"])
    r = opened.options(
        "/v1/classify",
        headers={"Origin": "https://x.example", "Access-Control-Request-Method": "POST"},
    )
    assert r.headers["access-control-allow-origin"] == "https://x.example"


def test_a_copy_of_the_classify_route_still_enforces_its_scope(client):
    """KeyFirstRoute takes the scope out of the dependencies FastAPI solves. A FastAPI that
    copies routes when a router is included builds the copy from the route's dependencies
    and openapi_extra: the copy must still check the key (x-api-key-scopes carries it)."""
    from service.api.deps import KeyFirstRoute
    from service.api.routes import classify

    route = classify.router.routes[0]
    assert route.dependencies == []  # nothing for FastAPI to solve per request
    copy = KeyFirstRoute(
        "/copied/classify",
        route.endpoint,
        dependencies=route.dependencies,
        openapi_extra=route.openapi_extra,
        methods=route.methods,
        response_model=route.response_model,
    )
    client.app.router.routes.insert(0, copy)
    assert call(client, "post", "/copied/classify", BODY, {}).status_code == 401
    metrics_key = {"Authorization": f"Bearer {KEYS['metrics']}"}
    assert call(client, "post", "/copied/classify", BODY, metrics_key).status_code == 403
    classify_key = {"Authorization": f"Bearer {KEYS['classify']}"}
    assert call(client, "post", "/copied/classify", BODY, classify_key).status_code == 200
    schema = client.get("/openapi.json").json()
    assert schema["paths"]["/v1/classify"]["post"]["x-api-key-scopes"] == ["classify"]


def test_without_keys_only_loopback_host_names_are_answered(make_client):
    """DNS rebinding: a web page whose name re-resolves to 127.0.0.1 must not reach an API
    that has no keys (its requests carry the page's own host name)."""
    client = make_client()
    for host in ("localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
    foreign = {"Host": "rebind.attacker.example:8000"}
    for method, path in (
        ("GET", "/v1/review"),
        ("GET", "/v1/metrics/summary"),
        ("DELETE", "/v1/feedback/a"),
    ):
        assert client.request(method, path, headers=foreign).status_code == 400, path
    # With keys every request is authenticated: any host name may be used (a proxy's, say).
    keyed = make_client(api_keys=CONFIG)
    assert keyed.get("/healthz", headers={"Host": "cxthemes.example.com"}).status_code == 200
