"""--engine ray on a local Ray: the same rows and predictions as the local engine, and every
Ray service listening on loopback only."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from service.batch.readers import InputError
from service.batch.runner import Job, ScoreOptions
from service.core.config import Settings

# Not imported here: Ray reads its network settings when first imported, which the engine
# must do (so that a local Ray listens on loopback only).
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="the [ray] extra is not installed"
)

TEXTS = [
    "The app is slow since the update",
    "Too expensive for what it does",
    "I want to talk to a real person",
    "退款太慢了，客服也不回复",
    "Why does the AI need my data",
]


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module's runs (Ray takes seconds to start); the first run
    starts it with the engine's own settings, this shuts it down after the last."""
    yield
    import ray

    ray.shutdown()


def test_ray_output_equals_local_output(ray_session, predictor, tiny_bundle, tmp_path):
    from service.batch.ray_engine import score_with_ray

    src = tmp_path / "in.csv"
    lines = ["id,text,segment"]
    for k in range(60):
        text = "" if k in (7, 33) else f"{TEXTS[k % 5]} {k}"
        lines.append(f"r{k},{text},s{k % 2}")
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")

    Job(predictor, src, tmp_path / "local.parquet", ScoreOptions()).run(progress=False)
    rows = score_with_ray(
        tiny_bundle,
        src,
        tmp_path / "ray.parquet",
        ScoreOptions(chunk_rows=16),
        Settings(),
        actors=1,
    )
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    ours = [
        line
        for line in listening.splitlines()
        if any(name in line for name in ('"raylet"', '"gcs_server"', '"ray::'))
        or f"pid={os.getpid()}," in line
    ]
    assert ours, listening
    for line in ours:
        local = line.split()[3]
        assert local.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:")), line

    local = pq.read_table(tmp_path / "local.parquet").to_pylist()
    remote = pq.read_table(tmp_path / "ray.parquet").to_pylist()
    assert rows == 58 and len(remote) == len(local) == 58
    assert [r["id"] for r in remote] == [r["id"] for r in local]  # input order kept
    for a, b in zip(local, remote, strict=True):
        assert set(a) == set(b)
        assert a["themes"] == b["themes"] and a["sentiment"] == b["sentiment"]
        assert a["text"] == b["text"] and a["segment"] == b["segment"]
        for key, value in a.items():
            if key.startswith("score_"):
                assert b[key] == pytest.approx(value, abs=1e-3)
    bad = sorted(p for p in (tmp_path / "ray.parquet.errors").iterdir())
    assert sum(f.read_text().count("\n") - 1 for f in bad) == 2


def test_ray_actors_build_their_predictor_from_the_settings(tiny_bundle):
    """Each actor's predictor gets the settings' backend and options, as `score` does (the
    actors used to leave the backend out and always scored with torch)."""
    from service.batch.ray_engine import ScoreActor, actor_arguments
    from service.bundle import BundleError

    opts = {"text_column": "text", "id_column": "id", "lang_column": None, "prefix": ""}
    actor = ScoreActor(**actor_arguments(tiny_bundle, opts, Settings(review_margin=0.3)))
    assert actor.predictor.review_margin == 0.3
    assert actor.predictor.bundle.backend == "torch"  # auto: the tiny bundle has no export
    with pytest.raises(BundleError, match="no ONNX export"):
        ScoreActor(**actor_arguments(tiny_bundle, opts, Settings(backend="onnx")))


def _csv_rows(path) -> list[dict]:
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    rows: list[dict] = []
    for f in files:
        with f.open(encoding="utf-8", newline="") as fh:
            rows.extend(csv.DictReader(fh))
    return rows


@pytest.mark.timeout(300)  # a deadlocked Ray (all CPUs held by actors) waited forever
def test_ray_jsonl_to_csv_matches_local_and_a_rerun_replaces(
    ray_session, predictor, tiny_bundle, tmp_path
):
    """JSONL in, CSV out, as many actors as cores: values as written ("001", "02134", dates
    kept as text, not guessed types), themes ';'-joined as the local engine writes them, bad
    lines and dates refused as the local engine refuses them, text a spreadsheet would run as a
    formula quoted as the local engine quotes it; a second run replaces the
    first run's folders rather than adding part files to them."""
    from service.batch.ray_engine import score_with_ray

    src = tmp_path / "in.jsonl"
    lines = [
        '{"id":"001","text":"The app is slow","created_at":"2026-03-01T09:30:00Z","zip":"02134"}',
        "{broken",
        '{"id":"002","text":"Too expensive","created_at":"yesterday","zip":"10001"}',
        '{"id":"1e3","text":"=1+1 I want a human","created_at":"2026-03-03","zip":"-0501"}',
        '{"id":"004","text":"退款太慢了","created_at":null,"zip":"99999"}',
    ]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    Job(predictor, src, tmp_path / "local.csv", ScoreOptions()).run(progress=False)
    out = tmp_path / "ray.csv"
    cores = os.cpu_count() or 1
    for _ in range(2):
        rows = score_with_ray(tiny_bundle, src, out, ScoreOptions(), Settings(), actors=cores)
        assert rows == 3
    local, remote = _csv_rows(tmp_path / "local.csv"), _csv_rows(out)
    assert [r["id"] for r in remote] == ["001", "1e3", "004"]
    assert [r["zip"] for r in remote] == ["02134", "-0501", "99999"]  # a number: not quoted
    assert remote[1]["text"] == "'=1+1 I want a human"  # a spreadsheet would run it
    assert remote[0]["created_at"] == "2026-03-01T09:30:00Z"
    for a, b in zip(local, remote, strict=True):
        for key in ("id", "text", "created_at", "zip", "themes", "sentiment", "needs_review"):
            assert a[key] == b[key], key
        assert float(a["score_ai_trust"]) == pytest.approx(float(b["score_ai_trust"]), abs=1e-3)
    reasons = sorted(r["reason"] for r in _csv_rows(tmp_path / "ray.csv.errors"))
    assert reasons[0] == "created_at is not an ISO 8601 date"
    assert reasons[1].startswith("invalid JSON")
    assert not (tmp_path / "ray.csv.partial").exists()


def test_ray_local_cpus_leave_one_for_reads():
    from service.batch.ray_engine import actor_cpus

    assert actor_cpus(2, 2, local=True) == 0.5  # used to be 1 each: no CPU left for reads
    assert actor_cpus(8, 2, local=True) == 1.0
    assert actor_cpus(1, 1, local=True) == 0.0
    assert actor_cpus(2, 2, local=False) == 1.0


def test_ray_checks_input_as_the_local_engine_before_ray_starts(tiny_bundle, tmp_path):
    """Named columns, prefix collisions and a missing Ray are refused in one line, before
    Ray starts (they used to fail inside a Ray task, as a traceback)."""
    from service.batch.ray_engine import score_with_ray

    src = tmp_path / "in.csv"
    src.write_text("id,text,themes\nr1,slow app,x\n", encoding="utf-8")
    out = tmp_path / "o.parquet"
    with pytest.raises(InputError, match="--prefix"):
        score_with_ray(tiny_bundle, src, out, ScoreOptions(), Settings())
    with pytest.raises(InputError, match="no language column 'langue'"):
        options = ScoreOptions(prefix="cx_", lang_column="langue")
        score_with_ray(tiny_bundle, src, out, options, Settings())
    with pytest.raises(InputError, match="no date column 'when'"):
        options = ScoreOptions(prefix="cx_", date_column="when")
        score_with_ray(tiny_bundle, src, out, options, Settings())
    saved = sys.modules.get("ray")
    sys.modules["ray"] = None  # as if the [ray] extra were not installed
    try:
        with pytest.raises(InputError, match=r"pip install '\.\[ray\]'"):
            score_with_ray(tiny_bundle, src, out, ScoreOptions(prefix="cx_"), Settings())
    finally:
        if saved is None:
            del sys.modules["ray"]
        else:
            sys.modules["ray"] = saved
    assert not out.exists()


def test_ray_refuses_report_and_treats_nan_ids_as_missing(tiny_bundle, tmp_path, capsys):
    from service.batch.ray_engine import _problem
    from service.cli import main

    src = tmp_path / "in.csv"
    src.write_text("id,text\nr1,slow app\n", encoding="utf-8")
    code = main(
        ["score", str(src), "--engine", "ray", "--model", str(tiny_bundle), "--report", "r"]
    )
    assert code == 2 and "--report is not supported with --engine ray" in capsys.readouterr().err

    opts = {"text_column": "text", "id_column": "id", "date_column": None}
    assert _problem(opts, {"id": float("nan"), "text": "slow"}) == "missing id"
    assert _problem(opts, {"id": float("inf"), "text": "slow"}) == "missing id"
    assert _problem(opts, {"id": 1.0, "text": "slow"}) is None
