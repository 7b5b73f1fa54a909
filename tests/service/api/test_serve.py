"""``cxthemes serve`` as a real process on loopback: JSON logs, no text in them, auth rules."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from service.cli import main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_end_to_end_with_json_logs(tiny_bundle, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "CXTHEMES_DATABASE_URL": f"sqlite:///{tmp_path / 'live.db'}",
        "CXTHEMES_MODELS_DIR": str(tmp_path),
    }
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service.cli",
                "serve",
                "--model",
                str(tiny_bundle),
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.5)
        secret = "Quentin from Leeds says the premium plan is a rip-off"
        body = {
            "items": [{"id": "live-1", "text": secret, "metadata": {"channel": "email"}}],
            "record": True,
        }
        r = httpx.post(f"{base}/v1/classify", json=body, timeout=30)
        assert r.status_code == 200 and r.json()["recorded"] == 1
        assert r.headers["x-request-id"]
        summary = httpx.get(f"{base}/v1/metrics/summary", timeout=30).json()
        assert summary["feedback_count"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is a JSON object
    assert any(r.get("route") == "/v1/classify" and r.get("status") == 200 for r in records)
    assert any("no API keys configured" in r["message"] for r in records)
    assert not any("Quentin" in line or "rip-off" in line for line in lines)


def test_serve_refuses_a_public_address_without_keys(tiny_bundle, capsys):
    assert main(["serve", "--model", str(tiny_bundle), "--host", "0.0.0.0"]) != 0
    assert "without API keys" in capsys.readouterr().err


def test_keys_create_prints_a_working_entry(capsys):
    from service.core.config import ApiKey
    from service.core.security import find_key

    assert main(["keys", "create", "--name", "helpdesk", "--scopes", "classify,metrics"]) == 0
    out = capsys.readouterr().out.splitlines()
    key = out[0].rsplit(" ", 1)[1]
    entry = ApiKey(**json.loads(out[-1]))
    assert entry.scopes == ["classify", "metrics"] and find_key(key, [entry]) == entry
    assert main(["keys", "create", "--name", "x", "--scopes", "root"]) != 0


def test_db_upgrade_command(tmp_path, monkeypatch, capsys):
    from service.core.config import get_settings
    from service.store.engine import head_revision

    monkeypatch.setenv("CXTHEMES_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    get_settings.cache_clear()
    try:
        assert main(["db", "upgrade"]) == 0
        assert f"revision {head_revision()}" in capsys.readouterr().out
        assert main(["db", "current"]) == 0
        assert capsys.readouterr().out.strip() == head_revision()
    finally:
        get_settings.cache_clear()


def _settings_env(monkeypatch, request, **env):
    from service.core.config import get_settings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)


def test_bad_settings_are_named_without_their_values(tiny_bundle, monkeypatch, request, capsys):
    raw_key = "cxt_Ta2AsecretSECRETsecret1234567890"
    _settings_env(
        monkeypatch,
        request,
        CXTHEMES_API_KEYS=json.dumps([{"name": "k", "sha256": raw_key, "scopes": ["classify"]}]),
        CXTHEMES_TORCH_THREADS="-2",
    )
    assert main(["serve", "--model", str(tiny_bundle)]) == 2
    err = capsys.readouterr().err
    assert "setting api_keys" in err and "setting torch_threads" in err
    assert raw_key not in err


def test_a_port_out_of_range_is_refused(tiny_bundle, capsys):
    assert main(["serve", "--model", str(tiny_bundle), "--port", "70000"]) == 2
    assert "setting port" in capsys.readouterr().err


def _no_log_handlers(monkeypatch):
    """``serve`` installs JSON log handlers on the stream of the moment: under capsys that
    stream closes with the test, and later tests' log lines would hit a closed file."""
    import service.core.logging as logging_module

    monkeypatch.setattr(logging_module, "configure_logging", lambda *_a, **_k: None)


def test_a_store_that_cannot_open_is_a_message_without_its_password(
    tiny_bundle, monkeypatch, request, capsys
):
    _no_log_handlers(monkeypatch)
    _settings_env(
        monkeypatch, request, CXTHEMES_DATABASE_URL="postgresql+psycopg://cx:hunter2@127.0.0.1:1/db"
    )
    assert main(["serve", "--model", str(tiny_bundle)]) == 2
    err = capsys.readouterr().err
    assert "the metrics store postgresql+psycopg://cx:***@127.0.0.1:1/db cannot be opened" in err
    assert "hunter2" not in err


def test_several_workers_with_a_broken_model_are_refused_before_forking(
    tiny_bundle, tmp_path, monkeypatch, capsys
):
    import shutil

    import uvicorn

    _no_log_handlers(monkeypatch)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    (broken / "model.safetensors").write_bytes(b"\0" * 10)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("uvicorn started"))
    monkeypatch.setenv("CXTHEMES_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert main(["serve", "--model", str(broken), "--workers", "2"]) == 2
    assert "not starting: BundleError" in capsys.readouterr().err


def test_a_model_with_nan_weights_is_not_served(tiny_bundle, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from service.api.main import load_predictor
    from service.bundle import BundleError
    from service.core.config import Settings

    nan = tmp_path / "nan"
    shutil.copytree(tiny_bundle, nan)
    weights = load_file(nan / "model.safetensors")
    save_file(
        {k: v.float().fill_(float("nan")) for k, v in weights.items()}, nan / "model.safetensors"
    )
    with pytest.raises(BundleError, match="not finite"):
        load_predictor(Settings(model=str(nan)))


def _watching_client(tiny_bundle, tmp_path, name: str):
    """A TestClient of an app that serves a copy of the tiny bundle, current as ``name``, and
    polls the registry every 0.1 s."""
    import shutil

    from fastapi.testclient import TestClient

    from service.api.main import create_app
    from service.core.config import Settings
    from service.registry import set_current_version

    models = tmp_path / "models"
    shutil.copytree(tiny_bundle, models / name)
    set_current_version(models, name, "promote")
    settings = Settings(
        models_dir=str(models),
        watch_models_s=0.1,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
    )
    return TestClient(create_app(settings))


def test_the_registry_watcher_does_not_reload_a_copied_bundle_forever(tiny_bundle, tmp_path):
    """A copy keeps the version inside its bundle.json; the watcher compares folders."""
    with _watching_client(tiny_bundle, tmp_path, "prod-copy") as client:
        first = client.app.state.model.predictor
        time.sleep(3.0)  # the old watcher reloaded within a second, and again after each
        assert client.app.state.model.predictor is first


def test_the_registry_watcher_reloads_when_the_served_bundle_gets_its_export(
    tiny_bundle, tmp_path, monkeypatch
):
    """`make student` makes the student current, then exports it: a server that reloaded the
    student before the export must pick up the bf16 check afterwards, and only once."""
    from service.backends import bf16
    from service.bundle import read_meta, write_meta

    monkeypatch.setattr(bf16, "cpu_has_native_bf16", lambda: True)  # bf16 servable anywhere
    student = tmp_path / "models" / "student"
    with _watching_client(tiny_bundle, tmp_path, "student") as client:
        first = client.app.state.model.predictor
        assert first.bundle.backend == "torch"
        write_meta(student, read_meta(student) | {"bf16": {"accepted": True}})
        deadline = time.monotonic() + 10
        while client.app.state.model.predictor is first and time.monotonic() < deadline:
            time.sleep(0.1)
        second = client.app.state.model.predictor
        assert second is not first and second.bundle.backend == "torch-bf16"
        time.sleep(1.0)  # reloaded once, not on every look
        assert client.app.state.model.predictor is second
