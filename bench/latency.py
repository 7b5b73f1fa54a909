"""The API under 1, 8 and 32 concurrent clients on loopback: latency percentiles,
throughput, errors, and the service's peak RSS, beside the offline batch throughput of the
same model measured in the same run.

    .venv/bin/python bench/latency.py [--model M] [--requests 300] [--seconds 60]
        [--backend auto] [--set api_batch_size=16 ...]

Each client sends one short text (<= 64 tokens) per request, back to back. Every level is
bounded by a request count and a time limit. The offline figure is the best of six passes
over the same texts, three before the API levels and three after, so a slow moment cannot
flatter the API's share of it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench._server import closed_loop, peak_rss_mb, serve, short_texts  # noqa: E402
from bench.throughput import rate  # noqa: E402

OFFLINE_REPEATS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--requests", type=int, default=300, help="per concurrency level")
    parser.add_argument("--seconds", type=float, default=60, help="per concurrency level")
    parser.add_argument("--backend", default="auto")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a service setting for this run, e.g. --set api_batch_size=16 (CXTHEMES_NAME)",
    )
    args = parser.parse_args()
    try:
        extra_env = {
            f"CXTHEMES_{name.strip().upper()}": value
            for name, value in (item.split("=", 1) for item in args.set)
        }
    except ValueError:
        parser.error("--set takes NAME=VALUE")

    from service.bundle import resolve_model_path
    from service.cli import ONEDNN_CACHE_DEFAULT
    from service.predictor import Predictor

    # The offline figure is measured here, in this process, and must run as `score` does
    # (the server, started through the CLI, gets the same default).
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_CACHE_DEFAULT)

    bundle = resolve_model_path(args.model, ROOT / "models")
    predictor = Predictor.from_path(bundle, backend=args.backend)
    texts = short_texts(predictor.bundle.tokenizer, 1000)
    predictor.predict(texts[:64])
    # The best of three passes before the API runs and three after: one pass over the texts
    # takes about 2 s, and this noisy machine's speed drifts over minutes, so a slow moment
    # would otherwise lower the baseline and flatter the API's share of it.
    before = [rate(predictor.predict, texts)[0] for _ in range(OFFLINE_REPEATS)]
    backend = predictor.bundle.backend_detail

    with serve(bundle, backend=args.backend, extra_env=extra_env) as server:
        url = f"{server.base}/v1/classify"
        asyncio.run(closed_loop(url, texts, 4, 40, 30))  # warm-up
        results = [
            asyncio.run(closed_loop(url, texts, c, args.requests * max(1, c // 4), args.seconds))
            for c in (1, 8, 32)
        ]
        rss = peak_rss_mb(server.pid)
        api_backend = httpx.get(f"{server.base}/v1/model", timeout=30).json().get("backend")
    after = [rate(predictor.predict, texts)[0] for _ in range(OFFLINE_REPEATS)]
    del predictor
    offline = max(before + after)
    print(
        f"bundle {bundle.name}; {len(texts)} short real texts (<= 64 tokens); offline batch "
        f"throughput {offline:.1f} texts/s (best of {', '.join(f'{r:.1f}' for r in before)} "
        f"before the API and {', '.join(f'{r:.1f}' for r in after)} after; "
        f"backend {backend}, as `score` runs it); the API "
        f"serves with backend {api_backend}"
        + (f"; settings {', '.join(args.set)}" if args.set else "")
    )
    # texts/s counts answered texts only (200s): an error is no text served.
    print("\n| clients | requests | p50 ms | p95 ms | p99 ms | texts/s | vs offline | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['clients']} | {r['requests']} | {r['p50']:.0f} | {r['p95']:.0f} | "
            f"{r['p99']:.0f} | {r['ok_per_s']:.1f} | {r['ok_per_s'] / offline:.0%} | "
            f"{r['errors']} |"
        )
    print(f"\nservice peak RSS: {rss:.0f} MB (target <= 1,500 MB)")


if __name__ == "__main__":
    main()
