"""The API under 1, 8 and 32 concurrent clients on loopback: latency percentiles,
throughput, errors, and the service's peak RSS, beside the offline batch throughput of the
same model measured in the same run.

    .venv/bin/python bench/latency.py [--model M] [--requests 300] [--seconds 60]

Each client sends one short text (<= 64 tokens) per request, back to back. Every level is
bounded by a request count and a time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.corpus import real_texts  # noqa: E402


def short_texts(tokenizer, n: int) -> list[str]:
    texts = [t for t in real_texts(4 * n) if len(tokenizer("query: " + t)["input_ids"]) <= 64]
    return texts[:n]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(url: str, texts: list[str], clients: int, total: int, seconds: float):
    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.perf_counter() + seconds

    async def client(k: int, http: httpx.AsyncClient) -> None:
        nonlocal errors, sent
        while sent < total and time.perf_counter() < deadline:
            sent += 1
            text = texts[sent % len(texts)]
            started = time.perf_counter()
            try:
                r = await http.post(url, json={"items": [{"id": str(sent), "text": text}]})
                if r.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - started)

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=clients)) as h:
        started = time.perf_counter()
        await asyncio.gather(*(client(k, h) for k in range(clients)))
        elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return {
        "clients": clients,
        "requests": len(latencies),
        "p50": q[49] * 1000,
        "p95": q[94] * 1000,
        "p99": q[98] * 1000,
        "rps": len(latencies) / elapsed,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--requests", type=int, default=300, help="per concurrency level")
    parser.add_argument("--seconds", type=float, default=60, help="per concurrency level")
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()

    from service.bundle import resolve_model_path
    from service.predictor import Predictor

    bundle = resolve_model_path(args.model, ROOT / "models")
    predictor = Predictor.from_path(bundle, backend=args.backend)
    texts = short_texts(predictor.bundle.tokenizer, 1000)
    predictor.predict(texts[:64])
    started = time.perf_counter()
    predictor.predict(texts)
    offline = len(texts) / (time.perf_counter() - started)
    backend = predictor.bundle.backend
    del predictor

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "CXTHEMES_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
            "CXTHEMES_BACKEND": args.backend,
            "CXTHEMES_LOG_LEVEL": "warning",
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service.cli",
                "serve",
                "--model",
                str(bundle),
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(240):
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            asyncio.run(load(f"{base}/v1/classify", texts, 4, 40, 30))  # warm-up
            results = [
                asyncio.run(
                    load(
                        f"{base}/v1/classify",
                        texts,
                        c,
                        args.requests * max(1, c // 4),
                        args.seconds,
                    )
                )
                for c in (1, 8, 32)
            ]
            rss = peak_rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    print(
        f"bundle {bundle.name}, backend {backend}; {len(texts)} short real texts "
        f"(<= 64 tokens); offline batch throughput {offline:.1f} texts/s"
    )
    print("\n| clients | requests | p50 ms | p95 ms | p99 ms | texts/s | vs offline | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['clients']} | {r['requests']} | {r['p50']:.0f} | {r['p95']:.0f} | "
            f"{r['p99']:.0f} | {r['rps']:.1f} | {r['rps'] / offline:.0%} | {r['errors']} |"
        )
    print(f"\nservice peak RSS: {rss:.0f} MB (target <= 1,500 MB)")


if __name__ == "__main__":
    main()
