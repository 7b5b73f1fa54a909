"""--engine ray on a local Ray: the same rows and predictions as the local engine, and every
Ray service listening on loopback only."""

from __future__ import annotations

import importlib.util
import os
import subprocess

import pyarrow.parquet as pq
import pytest

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


def test_ray_output_equals_local_output(predictor, tiny_bundle, tmp_path):
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
    try:
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
    finally:
        import ray

        ray.shutdown()

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
