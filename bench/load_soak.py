"""Capacity, soak, burst and recovery of the API on loopback: is overload shed with
503 + Retry-After, does the service recover by itself, and does its memory stay flat?

    .venv/bin/python bench/load_soak.py [--model M] [--soak-s 600] [--burst-s 20] [--json PATH]

Phases, against one `cxthemes serve` subprocess on 127.0.0.1 (free port, temporary SQLite
store), each request carrying one short real text (bench/corpus.py, <= 64 tokens):

1. warm-up: a closed loop of 4 clients for ``--warmup-s``;
2. capacity: a closed loop of ``--capacity-clients`` clients (several levels: the best one)
   for ``--capacity-s`` each; capacity = answers 200 per second;
3. soak: open-loop constant arrivals at ``--soak-load`` (0.8) x capacity for ``--soak-s``:
   status counts (target: no 5xx), latency p50/p95/p99 per time window, and the service's RSS
   sampled every ``--sample-s``; growth = RSS at the end vs RSS after the soak's first
   ``--baseline-s`` (default: the first minute, a quarter of shorter soaks), target < 10%;
4. burst: open-loop arrivals at ``--burst-load`` (3.0) x capacity for ``--burst-s``: the
   overflow must be refused with 503 carrying Retry-After (no other 5xx, no client timeouts);
5. recovery: right after the burst, open-loop arrivals at ``--recover-load`` (0.2) x capacity
   for ``--recover-s``: time from the end of the burst to the first 200 after which every
   request gets 200 (target <= ``--recover-target-s``).

Open loop: request k is due at start + k / rate whatever the answers (latency counts from
that due time, so a slow server cannot slow the client down and hide its own queueing).
Bounds: an overall ``--deadline-s``, a per-request ``--timeout-s``, at most ``--max-inflight``
requests in flight (beyond: counted as skipped, never queued client-side) and at most
``--max-requests`` in all. The client is one asyncio process on the same machine as the
service, so they compete for the CPU: the report gives the CPU each used per phase and how
late the client sent its requests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._server import (  # noqa: E402
    bundle_tokenizer,
    closed_loop,
    cpu_seconds,
    peak_rss_mb,
    rss_mb,
    serve,
    short_texts,
)

JSON_HEADERS = {"content-type": "application/json"}


@dataclass
class Sample:
    """One request: when it was due and answered (seconds since the run began), and how."""

    due: float
    done: float
    status: int | str  # HTTP status, or "timeout" / an aiohttp error class name
    retry_after: str | None = None

    @property
    def latency(self) -> float:
        return self.done - self.due


@dataclass
class Run:
    """Shared state of one benchmark run."""

    t0: float
    max_requests: int
    max_inflight: int
    sent: int = 0
    rss: list[tuple[float, float]] = field(default_factory=list)  # (t, MB)
    queue: list[tuple[float, float]] = field(default_factory=list)  # (t, texts queued)

    def now(self) -> float:
        return time.perf_counter() - self.t0


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values``, nearest rank; nan if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summarize(samples: list[Sample]) -> dict:
    """Counts per status and latency percentiles (ms) over the answered requests."""
    statuses: dict[str, int] = {}
    for s in samples:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    answered = [s.latency for s in samples if isinstance(s.status, int)]
    ok = [s.latency for s in samples if s.status == 200]
    five = [s for s in samples if isinstance(s.status, int) and s.status >= 500]
    return {
        "requests": len(samples),
        "statuses": dict(sorted(statuses.items())),
        "ok": len(ok),
        "http_5xx": len(five),
        "http_503": sum(1 for s in five if s.status == 503),
        "other_5xx": sum(1 for s in five if s.status != 503),
        "failed": sum(1 for s in samples if not isinstance(s.status, int)),
        "p50_ms": pct(answered, 50) * 1000,
        "p95_ms": pct(answered, 95) * 1000,
        "p99_ms": pct(answered, 99) * 1000,
        "ok_p50_ms": pct(ok, 50) * 1000,
        "ok_p99_ms": pct(ok, 99) * 1000,
    }


async def open_loop(
    run: Run, url: str, bodies: list[bytes], rate: float, seconds: float, timeout_s: float
) -> dict:
    """Requests due at a constant ``rate`` per second for ``seconds``; waits (bounded) for the
    ones in flight. Returns the samples, how late the client sent and what it skipped."""
    samples: list[Sample] = []
    inflight: set[asyncio.Task] = set()
    lags: list[float] = []
    skipped = 0
    peak_inflight = 0
    # aiohttp, like closed_loop (bench/_server.py): the traffic generator shares the cores
    # with the service, and httpx cost ten times its CPU per request.
    connector = aiohttp.TCPConnector(limit=run.max_inflight)
    timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(5.0, timeout_s))

    async def one(http: aiohttp.ClientSession, body: bytes, due: float) -> None:
        retry_after = None
        try:
            async with http.post(url, data=body, headers=JSON_HEADERS) as r:
                await r.read()
                status: int | str = r.status
                retry_after = r.headers.get("retry-after")
        except TimeoutError:
            status = "timeout"
        except aiohttp.ClientError as exc:
            status = type(exc).__name__
        samples.append(Sample(due, run.now(), status, retry_after))

    # A fresh client per phase: no keep-alive connection left idle across phases (which the
    # server may close just as the client reuses it).
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        start = run.now()
        k = 0
        while True:
            due = start + k / rate
            if due - start >= seconds or run.sent >= run.max_requests:
                break
            wait = due - run.now()
            if wait > 0:
                await asyncio.sleep(wait)
            lags.append(max(0.0, run.now() - due))
            if len(inflight) >= run.max_inflight:
                skipped += 1
            else:
                run.sent += 1
                task = asyncio.create_task(one(http, bodies[run.sent % len(bodies)], due))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
                peak_inflight = max(peak_inflight, len(inflight))
            k += 1
        end = start + k / rate
        if inflight:
            await asyncio.wait(set(inflight), timeout=timeout_s + 10)
        for task in list(inflight):  # only if the per-request timeout failed to fire
            task.cancel()
    return {
        "start": start,
        "end": end,
        "rate": rate,
        "scheduled": k,
        "skipped": skipped,
        "peak_inflight": peak_inflight,
        "lag_p99_ms": pct(lags, 99) * 1000,
        "lag_max_ms": max(lags, default=0.0) * 1000,
        "samples": samples,
    }


async def sampler(run: Run, base: str, pid: int, every_s: float) -> None:
    """Every ``every_s``: the service's RSS, and its queue depth from /metrics."""
    async with httpx.AsyncClient(timeout=2.0) as http:
        while True:
            run.rss.append((run.now(), rss_mb(pid)))
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = await http.get(f"{base}/metrics")
                for line in r.text.splitlines():
                    if line.startswith("cxthemes_queue_items "):
                        run.queue.append((run.now(), float(line.split()[1])))
            await asyncio.sleep(every_s)


async def rejected_count(base: str) -> float:
    """The service's own count of requests refused because the queue was full."""
    with contextlib.suppress(httpx.HTTPError, ValueError):
        async with httpx.AsyncClient(timeout=5.0) as http:
            r = await http.get(f"{base}/metrics")
            for line in r.text.splitlines():
                if line.startswith('cxthemes_requests_rejected_total{reason="queue_full"}'):
                    return float(line.split()[-1])
            return 0.0
    return float("nan")


class Cpu:
    """CPU seconds used by the client (this process) and the service over a phase."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.wall = time.perf_counter()
        self.client = time.process_time()
        self.server = cpu_seconds(pid)

    def done(self) -> dict:
        wall = time.perf_counter() - self.wall
        return {
            "wall_s": wall,
            "client_cpu_pct": 100 * (time.process_time() - self.client) / wall,
            "server_cpu_pct": 100 * (cpu_seconds(self.pid) - self.server) / wall,
        }


def windows(samples: list[Sample], start: float, end: float, width: float) -> list[dict]:
    """Per window of ``width`` s of due times: counts and latency percentiles."""
    rows = []
    n = max(1, math.ceil((end - start) / width - 0.01))  # no sliver of a last window
    for w in range(n):
        lo, hi = start + w * width, min(end, start + (w + 1) * width)
        part = [s for s in samples if lo <= s.due < hi or (w == n - 1 and s.due >= hi)]
        rows.append({"from_s": lo - start, "to_s": hi - start, **summarize(part)})
    return rows


def rss_at(rss: list[tuple[float, float]], t: float) -> float:
    """The last RSS sample taken at or before ``t`` (the first one if none)."""
    before = [mb for ts, mb in rss if ts <= t]
    return before[-1] if before else (rss[0][1] if rss else float("nan"))


def recovery(samples: list[Sample], burst_end: float) -> dict:
    """Time from the end of the burst to the answer of the first request after which every
    request (in due order) got 200; and to latencies back at most ``normal`` (set by caller)."""
    ordered = sorted(samples, key=lambda s: s.due)
    last_bad = max((k for k, s in enumerate(ordered) if s.status != 200), default=-1)
    if last_bad + 1 >= len(ordered):
        return {"recovered": False, "time_to_recover_s": float("nan"), "not_200": len(ordered)}
    first_good = ordered[last_bad + 1]
    return {
        "recovered": True,
        "time_to_recover_s": max(0.0, first_good.done - burst_end),
        "first_ok_due_s": first_good.due - burst_end,
        "not_200": sum(1 for s in ordered if s.status != 200),
        "ordered": ordered,
    }


def valid_retry_after(value: str | None) -> bool:
    return value is not None and value.strip().isdigit()


async def bench(args: argparse.Namespace, bundle: Path, texts: list[str], result: dict) -> None:
    bodies = [
        json.dumps({"items": [{"id": str(k), "text": t}]}, ensure_ascii=False).encode()
        for k, t in enumerate(texts)
    ]
    extra_env = dict(kv.split("=", 1) for kv in args.server_env)
    with serve(bundle, backend=args.backend, extra_env=extra_env) as server:
        url = f"{server.base}/v1/classify"
        run = Run(time.perf_counter(), args.max_requests, args.max_inflight)
        result["server"] = {"pid": server.pid, "env": extra_env}
        result["rss_ready_mb"] = rss_mb(server.pid)
        sampling = asyncio.create_task(sampler(run, server.base, server.pid, args.sample_s))
        try:
            await _phases(args, run, server, url, texts, bodies, result)
        finally:
            sampling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampling
            result["rss_peak_mb"] = peak_rss_mb(server.pid)
            result["rss_samples"] = [[round(t, 2), round(mb, 1)] for t, mb in run.rss]
            result["queue_samples"] = [[round(t, 2), q] for t, q in run.queue]
            result["requests_sent"] = run.sent
            result["server_alive"] = server.process.poll() is None
            if not result["server_alive"]:
                result["server_log_tail"] = server.log_tail()


async def _phases(args, run: Run, server, url, texts, bodies, result: dict) -> None:
    say = print if not args.quiet else (lambda *a, **k: None)

    # 1. warm-up
    say(f"warm-up: 4 clients, {args.warmup_s:.0f} s", file=sys.stderr)
    warm = await closed_loop(url, texts, 4, 10**6, args.warmup_s, args.timeout_s)
    result["warmup"] = warm
    run.sent += warm["requests"]

    # 2. capacity
    levels = []
    for clients in args.capacity_clients:
        say(f"capacity: {clients} clients, {args.capacity_s:.0f} s", file=sys.stderr)
        cpu = Cpu(server.pid)
        level = await closed_loop(url, texts, clients, 10**6, args.capacity_s, args.timeout_s)
        level.update(cpu.done())
        run.sent += level["requests"]
        levels.append(level)
    best = max(levels, key=lambda lv: lv["ok_per_s"])
    capacity = best["ok_per_s"]
    result["capacity"] = {"levels": levels, "ok_per_s": capacity, "clients": best["clients"]}
    if not capacity > 0:
        raise RuntimeError(f"no request succeeded while measuring capacity: {levels}")

    # 3. soak
    rate = args.soak_load * capacity
    say(f"soak: {rate:.1f} req/s for {args.soak_s:.0f} s", file=sys.stderr)
    cpu = Cpu(server.pid)
    soak = await open_loop(run, url, bodies, rate, args.soak_s, args.timeout_s)
    soak_cpu = cpu.done()
    start, end = soak["start"], soak["end"]
    baseline_s = args.baseline_s or min(60.0, args.soak_s / 4)
    window_s = args.window_s or (60.0 if args.soak_s >= 300 else max(5.0, args.soak_s / 6))
    rss_base = rss_at(run.rss, start + baseline_s)
    run.rss.append((run.now(), rss_mb(server.pid)))
    rss_end = rss_at(run.rss, end + 1.0)
    soak_rss = [mb for t, mb in run.rss if start <= t <= end + 1.0]
    samples = soak.pop("samples")
    result["soak"] = {
        **soak,
        **summarize(samples),
        **soak_cpu,
        "load": args.soak_load,
        "achieved_rps": len(samples) / max(1e-9, end - start),
        "windows": windows(samples, start, end, window_s),
        "window_s": window_s,
        "baseline_s": baseline_s,
        "rss_start_mb": rss_at(run.rss, start),
        "rss_baseline_mb": rss_base,
        "rss_end_mb": rss_end,
        "rss_max_mb": max(soak_rss, default=float("nan")),
        "rss_growth": (rss_end - rss_base) / rss_base,
    }

    # 4. burst, then 5. recovery right after it (the burst's stragglers still in flight)
    rejected_before = await rejected_count(server.base)
    rate = args.burst_load * capacity
    say(f"burst: {rate:.1f} req/s for {args.burst_s:.0f} s, then recovery", file=sys.stderr)
    cpu = Cpu(server.pid)
    burst_task = asyncio.create_task(
        open_loop(run, url, bodies, rate, args.burst_s, args.timeout_s)
    )
    await asyncio.sleep(args.burst_s)
    recover_rate = max(1.0, args.recover_load * capacity)
    recover_task = asyncio.create_task(
        open_loop(run, url, bodies, recover_rate, args.recover_s, args.timeout_s)
    )
    burst = await burst_task
    burst_cpu = cpu.done()
    recover = await recover_task
    rejected_after = await rejected_count(server.base)
    samples = burst.pop("samples")
    summary = summarize(samples)
    got_503 = [s for s in samples if s.status == 503]
    result["burst"] = {
        **burst,
        **summary,
        **burst_cpu,
        "load": args.burst_load,
        "with_retry_after": sum(1 for s in got_503 if valid_retry_after(s.retry_after)),
        "retry_after_values": sorted({s.retry_after for s in got_503 if s.retry_after}),
        "server_rejected_queue_full": rejected_after - rejected_before,
    }
    samples = recover.pop("samples")
    rec = recovery(samples, burst["end"])
    ordered = rec.pop("ordered", [])
    # Latency back to normal: the first request after which none took longer than the
    # soak's p99 (at least 50 ms).
    normal = max(result["soak"]["p99_ms"] / 1000, 0.05)
    slow = max((k for k, s in enumerate(ordered) if s.latency > normal), default=-1)
    back = ordered[slow + 1].done - burst["end"] if slow + 1 < len(ordered) else float("nan")
    result["recovery"] = {
        **recover,
        **summarize(samples),
        **rec,
        "load": args.recover_load,
        "latency_normal_after_s": back,
        "normal_latency_ms": normal * 1000,
    }


def targets(result: dict, args: argparse.Namespace) -> list[tuple[str, str, bool]]:
    """(check, figure, pass) rows."""
    rows = []
    soak, burst, rec = result.get("soak"), result.get("burst"), result.get("recovery")
    if soak:
        rows += [
            ("soak: no 5xx", f"{soak['http_5xx']} of {soak['requests']}", soak["http_5xx"] == 0),
            (
                "soak: no timeouts or connection errors",
                f"{soak['failed']}",
                soak["failed"] == 0,
            ),
            (
                f"soak: RSS growth < {args.memory_target:.0%} "
                f"(end vs after {soak['baseline_s']:.0f} s)",
                f"{soak['rss_baseline_mb']:.0f} -> {soak['rss_end_mb']:.0f} MB "
                f"({soak['rss_growth']:+.1%})",
                soak["rss_growth"] < args.memory_target,
            ),
            (
                "soak: the client kept its schedule (validity of the run)",
                f"skipped {soak['skipped']}, send lag p99 {soak['lag_p99_ms']:.0f} ms, "
                f"client CPU {soak['client_cpu_pct']:.0f}% of a core",
                soak["skipped"] == 0 and soak["lag_p99_ms"] < 250 and soak["client_cpu_pct"] < 50,
            ),
        ]
    if burst:
        n503 = burst["http_503"]
        # Sent but never answered nor timed out (cancelled after the final wait): failures too.
        lost = burst["scheduled"] - burst["skipped"] - burst["requests"]
        rows += [
            ("burst: overflow refused with 503", f"{n503} of {burst['requests']}", n503 > 0),
            (
                "burst: every 503 has Retry-After",
                f"{burst['with_retry_after']} of {n503} "
                f"(values {', '.join(burst['retry_after_values'][:6]) or '-'})",
                n503 > 0 and burst["with_retry_after"] == n503,
            ),
            ("burst: no other 5xx", f"{burst['other_5xx']}", burst["other_5xx"] == 0),
            (
                f"burst: no client timeouts (latency bounded, {args.timeout_s:.0f} s)",
                f"{burst['failed']} (+{lost} never answered); 200s p99 {burst['ok_p99_ms']:.0f} ms",
                burst["failed"] == 0 and lost == 0,
            ),
        ]
    if rec:
        rows.append(
            (
                f"recovery: 200 again within {args.recover_target_s:.0f} s of the burst's end",
                f"{rec['time_to_recover_s']:.1f} s" if rec["recovered"] else "not recovered",
                bool(rec["recovered"]) and rec["time_to_recover_s"] <= args.recover_target_s,
            )
        )
    return rows


def report(result: dict, args: argparse.Namespace) -> str:
    out = []
    cap = result.get("capacity")
    out.append(
        f"bundle {result['bundle']}, backend {args.backend}; {result['texts']} short real texts "
        f"(<= 64 tokens), one per request; loopback, {os.cpu_count()} CPUs shared by the "
        "service and this one-process asyncio client (figures below give each one's CPU)."
    )
    if cap:
        out.append("\n| phase | clients / rate | requests | 200/s | p50 ms | p99 ms | errors |")
        out.append("|---|---|---|---|---|---|---|")
        for lv in cap["levels"]:
            out.append(
                f"| capacity (closed loop) | {lv['clients']} clients | {lv['requests']} | "
                f"{lv['ok_per_s']:.1f} | {lv['p50']:.0f} | {lv['p99']:.0f} | {lv['errors']} |"
            )
        out.append(f"\ncapacity: **{cap['ok_per_s']:.1f} requests/s** ({cap['clients']} clients)")
    phases = [("soak", "soak"), ("burst", "burst"), ("recovery", "recovery")]
    rows = [(name, result[key]) for name, key in phases if key in result]
    if rows:
        out.append(
            "\n| phase | load | rate req/s | seconds | sent | 200 | 503 | other 5xx | "
            "timeouts/errors | p50 ms | p95 ms | p99 ms | client CPU | service CPU |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, ph in rows:
            client = f"{ph['client_cpu_pct']:.0f}%" if "client_cpu_pct" in ph else "-"
            server = f"{ph['server_cpu_pct']:.0f}%" if "server_cpu_pct" in ph else "-"
            out.append(
                f"| {name} | {ph['load']:.1f}x | {ph['rate']:.1f} | {ph['end'] - ph['start']:.0f} "
                f"| {ph['requests']} | {ph['ok']} | {ph['http_503']} | {ph['other_5xx']} | "
                f"{ph['failed']} | {ph['p50_ms']:.0f} | {ph['p95_ms']:.0f} | {ph['p99_ms']:.0f} "
                f"| {client} | {server} |"
            )
    soak = result.get("soak")
    if soak:
        out.append(f"\nsoak latency per {soak['window_s']:.0f} s window (by due time):\n")
        out.append("| window s | sent | 200 | 5xx | errors | p50 ms | p95 ms | p99 ms | RSS MB |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for w in soak["windows"]:
            rss = rss_at(
                [(t - soak["start"], mb) for t, mb in map(tuple, result["rss_samples"])],
                w["to_s"],
            )
            out.append(
                f"| {w['from_s']:.0f}-{w['to_s']:.0f} | {w['requests']} | {w['ok']} | "
                f"{w['http_5xx']} | {w['failed']} | {w['p50_ms']:.0f} | {w['p95_ms']:.0f} | "
                f"{w['p99_ms']:.0f} | {rss:.0f} |"
            )
    burst, rec = result.get("burst"), result.get("recovery")
    if burst:
        queued = [q for t, q in result["queue_samples"] if burst["start"] <= t <= burst["end"]]
        out.append(
            f"\nburst: {burst['scheduled']} requests scheduled, {burst['skipped']} not sent (the "
            f"client's cap of {args.max_inflight} in flight; the service never saw them); "
            f"peak {burst['peak_inflight']} requests in flight, service queue up to "
            f"{max(queued, default=float('nan')):.0f} texts (sampled), service counted "
            f"{burst['server_rejected_queue_full']:.0f} queue-full refusals (burst and recovery)."
        )
    if rec:
        out.append(
            f"recovery at {rec['rate']:.1f} req/s: first 200 answered "
            f"{rec['time_to_recover_s']:.1f} s after the burst's end; latency back under "
            f"{rec['normal_latency_ms']:.0f} ms (soak p99) "
            f"after {rec['latency_normal_after_s']:.1f} s."
        )
    out.append(
        f"\nservice RSS: {result.get('rss_ready_mb', float('nan')):.0f} MB when ready, "
        f"peak {result.get('rss_peak_mb', float('nan')):.0f} MB; "
        f"{result.get('requests_sent', 0)} requests in all."
    )
    if result.get("error"):
        out.append(f"\n**run stopped early: {result['error']}**")
    checks = targets(result, args)
    if checks:
        out.append("\n| check | figure | result |")
        out.append("|---|---|---|")
        for name, figure, ok in checks:
            out.append(f"| {name} | {figure} | {'pass' if ok else '**FAIL**'} |")
    return "\n".join(out)


def _finite(value):
    """``value`` with NaN and infinities as None, so the JSON is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="bundle to serve (default: models/current)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--soak-s", type=float, default=600.0)
    p.add_argument("--burst-s", type=float, default=20.0)
    p.add_argument("--warmup-s", type=float, default=15.0)
    p.add_argument("--capacity-s", type=float, default=30.0, help="per capacity level")
    p.add_argument(
        "--capacity-clients",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[32, 64],
        help="closed-loop client counts to try, comma-separated (the best is capacity)",
    )
    p.add_argument("--recover-s", type=float, default=30.0)
    p.add_argument("--soak-load", type=float, default=0.8, help="x capacity")
    p.add_argument("--burst-load", type=float, default=3.0, help="x capacity")
    p.add_argument("--recover-load", type=float, default=0.2, help="x capacity")
    p.add_argument("--recover-target-s", type=float, default=10.0)
    p.add_argument("--memory-target", type=float, default=0.10, help="max RSS growth")
    p.add_argument("--baseline-s", type=float, default=0.0, help="0: min(60, soak/4)")
    p.add_argument("--window-s", type=float, default=0.0, help="0: 60, or soak/6 if shorter")
    p.add_argument("--sample-s", type=float, default=2.0, help="RSS / queue sampling period")
    p.add_argument("--timeout-s", type=float, default=30.0, help="per request")
    p.add_argument("--max-inflight", type=int, default=1000)
    p.add_argument("--max-requests", type=int, default=500_000)
    p.add_argument("--deadline-s", type=float, default=0.0, help="0: the phases + 10 min")
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the service, e.g. CXTHEMES_QUEUE_MAX_ITEMS=512",
    )
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    if not args.deadline_s:
        args.deadline_s = (
            args.warmup_s
            + args.capacity_s * len(args.capacity_clients)
            + args.soak_s
            + args.burst_s
            + args.recover_s
            + 600
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from service.bundle import resolve_model_path

    bundle = resolve_model_path(args.model, ROOT / "models")
    texts = short_texts(bundle_tokenizer(bundle), 1000)
    result: dict = {
        "bundle": bundle.name,
        "backend": args.backend,
        "texts": len(texts),
        "cpus": os.cpu_count(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    try:
        asyncio.run(asyncio.wait_for(bench(args, bundle, texts, result), args.deadline_s))
    except TimeoutError:
        result["error"] = f"overall deadline of {args.deadline_s:.0f} s reached"
    except (RuntimeError, OSError) as exc:
        result["error"] = str(exc)
    checks = targets(result, args)
    result["checks"] = [{"check": c, "figure": f, "pass": ok} for c, f, ok in checks]
    result["passed"] = bool(checks) and all(ok for _, _, ok in checks) and "error" not in result
    print(report(result, args))
    if args.json:
        args.json.write_text(json.dumps(_finite(result), indent=1, default=str) + "\n")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
