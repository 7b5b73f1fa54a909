"""Helpers shared by the API benchmarks (bench/latency.py, bench/load_soak.py): the short
real texts they send, a `cxthemes serve` subprocess on a free loopback port with a throw-away
SQLite store, and the service's memory as seen from outside.

Nothing here listens beyond 127.0.0.1, and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"

try:  # optional: psutil gives RSS and CPU times portably; /proc is the fallback (Linux)
    import psutil
except ImportError:  # pragma: no cover - depends on the environment
    psutil = None


def short_texts(tokenizer, n: int, max_tokens: int = 64) -> list[str]:
    """``n`` real texts (bench/corpus.py) of at most ``max_tokens`` tokens each, e5 prefix
    included, so one request is one model window."""
    from bench.corpus import real_texts

    texts = [
        t
        for t in real_texts(4 * n)
        if len(tokenizer("query: " + t, verbose=False)["input_ids"]) <= max_tokens
    ]
    return texts[:n]


def bundle_tokenizer(bundle: Path):
    """The bundle's tokenizer alone (cheap: no weights loaded)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundle)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _proc_status_kb(pid: int, key: str) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    return float("nan")


def rss_mb(pid: int) -> float:
    """Resident set size now, in MB (psutil if installed, else /proc)."""
    if psutil is not None:
        try:
            return psutil.Process(pid).memory_info().rss / 2**20
        except psutil.Error:
            return float("nan")
    return _proc_status_kb(pid, "VmRSS") / 1024


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size so far (VmHWM), in MB, of the process and its children: with
    ``--workers N`` the model lives in uvicorn's worker processes, not in the supervisor. The
    peaks are summed (they need not coincide): an upper bound, on the safe side of a target."""
    return sum(_proc_status_kb(p, "VmHWM") for p in [pid, *_descendants(pid)]) / 1024


def _descendants(pid: int) -> list[int]:
    """The process's children, theirs and so on (from /proc)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        with contextlib.suppress(OSError, ValueError):
            text = Path(f"/proc/{parent}/task/{parent}/children").read_text()
            children = [int(c) for c in text.split()]
            found += children
            todo += children
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used by the process so far."""
    if psutil is not None:
        try:
            t = psutil.Process(pid).cpu_times()
            return t.user + t.system
        except psutil.Error:
            return float("nan")
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return float("nan")


@dataclass
class Server:
    """A running `cxthemes serve`: its process, base URL and log file."""

    process: subprocess.Popen
    base: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        return ""


@contextlib.contextmanager
def serve(
    bundle: Path,
    backend: str = "auto",
    extra_env: dict[str, str] | None = None,
    ready_timeout_s: float = 240.0,
    log_level: str = "warning",
) -> Iterator[Server]:
    """Start `cxthemes serve --host 127.0.0.1` on a free port with the model ``bundle`` and
    a temporary SQLite store, wait (at most ``ready_timeout_s``) for /readyz, yield it, and
    stop it afterwards (SIGTERM, then SIGKILL after 30 s)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="cxbench-") as tmp:
        env = {
            **os.environ,
            "CXTHEMES_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "CXTHEMES_BACKEND": backend,
            "CXTHEMES_LOG_LEVEL": log_level,
            "CXTHEMES_API_KEYS": "[]",  # no keys: loopback only, no auth
            "CXTHEMES_WATCH_MODELS_S": "0",
            **(extra_env or {}),
        }
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "service.cli",
                    "serve",
                    "--model",
                    str(bundle),
                    "--host",
                    HOST,
                    "--port",
                    str(port),
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = Server(process, f"http://{HOST}:{port}", log_path)
        try:
            deadline = time.monotonic() + ready_timeout_s
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"the service exited with {process.returncode} before it was ready:\n"
                        + server.log_tail()
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{server.base}/readyz", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the service was not ready within {ready_timeout_s:.0f} s:\n"
                        + server.log_tail()
                    )
                time.sleep(0.5)
            yield server
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)


async def closed_loop(
    url: str,
    texts: list[str],
    clients: int,
    total: int,
    seconds: float,
    timeout_s: float = 30.0,
) -> dict:
    """``clients`` concurrent clients, each sending one text per request back to back, until
    ``total`` requests were sent or ``seconds`` passed: latency percentiles (ms), requests/s
    (all answers) and ok/s (200s), errors (anything but 200, timeouts included).

    The clients are aiohttp's: they share the machine's cores with the server they measure,
    and httpx spent 1.8 ms of CPU per request here (0.28 of 2 cores at 155 requests/s)
    against aiohttp's 0.15 ms, so with httpx the load generator itself was a tenth of the
    load (bench/RESULTS.md)."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    ok = 0
    sent = 0
    deadline = time.perf_counter() + seconds

    async def client(http: aiohttp.ClientSession) -> None:
        nonlocal errors, ok, sent
        while sent < total and time.perf_counter() < deadline:
            sent += 1
            text = texts[sent % len(texts)]
            started = time.perf_counter()
            try:
                async with http.post(url, json={"items": [{"id": str(sent), "text": text}]}) as r:
                    await r.read()
                    if r.status == 200:
                        ok += 1
                    else:
                        errors += 1
            except (TimeoutError, aiohttp.ClientError):
                errors += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0]] * 99
    return {
        "clients": clients,
        "requests": len(latencies),
        "seconds": elapsed,
        "p50": q[49] * 1000,
        "p95": q[94] * 1000,
        "p99": q[98] * 1000,
        "rps": len(latencies) / elapsed,
        "ok_per_s": ok / elapsed,
        "errors": errors,
    }
