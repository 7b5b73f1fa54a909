"""--ray-address: an address where nothing listens fails in seconds with a clear message,
before ``ray.init`` (which would retry for minutes). No Ray needed: a stand-in takes its place."""

from __future__ import annotations

import os
import socket
import time
from types import SimpleNamespace

import pytest

from service.batch import ray_engine
from service.batch.readers import InputError


@pytest.fixture
def fake_ray(monkeypatch):
    """A stand-in for the ray module that records ``ray.init`` calls."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # _start_ray sets it: undone after
    calls = []
    fake = SimpleNamespace(is_initialized=lambda: False, init=lambda **kw: calls.append(kw))
    monkeypatch.setattr(ray_engine, "_import_ray", lambda: fake)
    return calls


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("form", ["{}", "ray://{}"])
def test_a_dead_ray_address_fails_fast_naming_it(fake_ray, form):
    address = form.format(f"127.0.0.1:{_closed_port()}")
    start = time.monotonic()
    with pytest.raises(InputError, match=f"cannot reach Ray at {address} ") as caught:
        ray_engine._start_ray(address)
    assert time.monotonic() - start < ray_engine.REACH_TIMEOUT_S + 1
    assert "check --ray-address" in str(caught.value) and "\n" not in str(caught.value)
    assert fake_ray == []  # ray.init never ran


def test_a_live_ray_address_goes_on_to_ray_init(fake_ray):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        ray_engine._start_ray(address)
    assert fake_ray == [{"address": address, "log_to_driver": False}]


@pytest.mark.parametrize("address", ["auto", "local", "anyscale://cluster", "not an address"])
def test_addresses_that_are_not_host_port_are_left_to_ray(fake_ray, address):
    ray_engine._start_ray(address)
    assert fake_ray == [{"address": address, "log_to_driver": False}]


def test_joining_a_cluster_leaves_its_auth_mode_alone(fake_ray, monkeypatch):
    """Only a local Ray, bound to loopback, runs without token auth: a cluster joined by
    address keeps the mode its operator set (or Ray's default)."""
    monkeypatch.delenv("RAY_AUTH_MODE")
    for name in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_USAGE_STATS_ENABLED"):
        monkeypatch.delenv(name, raising=False)  # the local start sets them: undone after
    ray_engine._start_ray("auto")
    assert "RAY_AUTH_MODE" not in os.environ
    ray_engine._start_ray(None)
    assert os.environ["RAY_AUTH_MODE"] == "disabled"
