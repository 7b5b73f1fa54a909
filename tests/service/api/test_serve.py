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
