"""The local engine: dedup, resume after an interruption or kill -9, recording, the report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from service.batch.readers import InputError
from service.batch.runner import Job, ScoreOptions
from tests.conftest import read_jsonl

TEXTS = [
    "The app is slow since the update.",
    "Prices went up again, not worth it.",
    "I want to talk to a real person, not a bot.",
    "Why does the AI need my contacts?",
    "退款等了三个星期。",
    "La entrega llegó tarde y el soporte no responde.",
]


def write_input(path, n, dup_every=0):
    with path.open("w", encoding="utf-8") as fh:
        for k in range(n):
            text = TEXTS[k % len(TEXTS)] + ("" if dup_every and k % dup_every else f" #{k}")
            fh.write(
                json.dumps(
                    {
                        "id": f"r{k}",
                        "text": text,
                        "segment": "s" + str(k % 3),
                        "created_at": f"2026-11-{1 + k % 28:02d}",
                    }
                )
                + "\n"
            )


class Stop(Exception):
    pass


def _stopped_after_the_first_chunk(predictor, tmp_path):
    """A 30-row input and a run of it stopped after its first chunk of 10."""
    src = tmp_path / "in.jsonl"
    write_input(src, 30)
    out = tmp_path / "out.jsonl"
    with pytest.raises(Stop):
        Job(predictor, src, out, ScoreOptions(chunk_rows=10)).run(
            progress=False, on_chunk=lambda k: (_ for _ in ()).throw(Stop)
        )
    return src, out


def test_identical_texts_are_scored_once(predictor, tmp_path):
    src = tmp_path / "in.jsonl"
    rows = ["Too expensive!", "Slow delivery", "Too expensive!"] * 5
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(rows)))
    summary = Job(predictor, src, tmp_path / "out.jsonl", ScoreOptions(chunk_rows=7)).run(
        progress=False
    )
    assert summary.scored == 15 and summary.texts_scored == 2
    out = read_jsonl(tmp_path / "out.jsonl")
    assert out[0]["scores"] == out[2]["scores"] == out[14]["scores"]


def test_texts_that_differ_in_case_or_spacing_get_their_own_scores_and_evidence(
    predictor, tmp_path
):
    """The model is cased, and each row's evidence must be a sentence of its own text."""
    predictor.thresholds = np.zeros(len(predictor.theme_ids))  # every theme on: evidence for all
    try:
        src = tmp_path / "in.jsonl"
        rows = [
            "The price is WAY too high. Support never answers.",
            "the price is way too high.   support never answers.",
        ]
        src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(rows)))
        summary = Job(predictor, src, tmp_path / "out.jsonl", ScoreOptions()).run(progress=False)
    finally:
        predictor.thresholds = np.array(
            [predictor.bundle.thresholds[t] for t in predictor.theme_ids], dtype=np.float32
        )
    assert summary.texts_scored == 2
    for row, text in zip(read_jsonl(tmp_path / "out.jsonl"), rows, strict=True):
        assert row["evidence"] and all(e in text for e in row["evidence"].values())
        assert row["scores"] == predictor.predict([text])[0].scores


def test_a_resumed_run_with_record_records_the_chunks_scored_before(predictor, tmp_path):
    from service.store import Store

    src, out = _stopped_after_the_first_chunk(predictor, tmp_path)
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    # The unfinished run did not record its first chunk: resuming it with --record would
    # silently leave those rows out of the store, so it must start over.
    with pytest.raises(InputError, match="--restart"):
        Job(predictor, src, out, ScoreOptions(chunk_rows=10, record=True), store=store).run(
            progress=False
        )
    summary = Job(
        predictor, src, out, ScoreOptions(chunk_rows=10, record=True, restart=True), store=store
    ).run(progress=False)
    assert summary.recorded == 30


def test_an_interrupted_assembly_leaves_no_output_that_looks_finished(
    predictor, tmp_path, monkeypatch
):
    from service.batch import writers

    src = tmp_path / "in.jsonl"
    write_input(src, 30)
    src.write_text(src.read_text() + '{"id": "bad", "text": ""}\n')
    written = []

    def interrupt(self, values, predictions):
        written.append(len(values))
        if len(written) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(writers.OutputWriter, "write", interrupt)
    for name in ("out.parquet", "out.csv", "out.jsonl"):
        written.clear()
        with pytest.raises(KeyboardInterrupt):
            Job(predictor, src, tmp_path / name, ScoreOptions(chunk_rows=10)).run(progress=False)
        leftovers = sorted(
            p.name for p in tmp_path.iterdir() if p.is_file() and p.name != "in.jsonl"
        )
        assert leftovers == [], name


def test_an_interrupted_run_resumes_to_identical_output(predictor, tmp_path):
    src = tmp_path / "in.jsonl"
    write_input(src, 95, dup_every=4)
    whole = tmp_path / "whole.jsonl"
    Job(predictor, src, whole, ScoreOptions(chunk_rows=10)).run(progress=False)

    out = tmp_path / "resumed.jsonl"

    def stop_after_3(k):
        if k == 3:
            raise Stop

    with pytest.raises(Stop):
        Job(predictor, src, out, ScoreOptions(chunk_rows=10)).run(
            progress=False, on_chunk=stop_after_3
        )
    assert not out.exists() and (tmp_path / "resumed.jsonl.cxwork").is_dir()
    summary = Job(predictor, src, out, ScoreOptions(chunk_rows=10)).run(progress=False)
    assert summary.resumed_chunks == 4
    assert out.read_bytes() == whole.read_bytes()
    assert not (tmp_path / "resumed.jsonl.cxwork").exists()


def test_a_changed_input_or_options_is_not_mixed_into_an_unfinished_run(predictor, tmp_path):
    src, out = _stopped_after_the_first_chunk(predictor, tmp_path)
    write_input(src, 31)
    with pytest.raises(InputError, match="--restart"):
        Job(predictor, src, out, ScoreOptions(chunk_rows=10)).run(progress=False)
    summary = Job(predictor, src, out, ScoreOptions(chunk_rows=10, restart=True)).run(
        progress=False
    )
    assert summary.scored == 31 and summary.resumed_chunks == 0


@pytest.mark.parametrize(
    "setting, value", [("review_margin", 0.3), ("evidence", False), ("max_length", 32)]
)
def test_a_changed_predictor_setting_is_not_mixed_into_an_unfinished_run(
    predictor, tmp_path, setting, value
):
    src, out = _stopped_after_the_first_chunk(predictor, tmp_path)
    before = getattr(predictor, setting)
    setattr(predictor, setting, value)  # the session's predictor: put back below
    try:
        with pytest.raises(InputError, match="--restart"):
            Job(predictor, src, out, ScoreOptions(chunk_rows=10)).run(progress=False)
    finally:
        setattr(predictor, setting, before)
    summary = Job(predictor, src, out, ScoreOptions(chunk_rows=10)).run(progress=False)
    assert summary.resumed_chunks == 1


def test_a_changed_model_with_the_same_version_is_not_mixed_into_an_unfinished_run(
    tiny_bundle, tmp_path
):
    """A retrained bundle under the same version name: bundle.json or the weights differ."""
    import shutil

    from service.predictor import Predictor

    bundle = shutil.copytree(tiny_bundle, tmp_path / "model")
    predictor = Predictor.from_path(bundle)
    src, out = _stopped_after_the_first_chunk(predictor, tmp_path)
    meta = bundle / "bundle.json"
    meta.write_text(meta.read_text(encoding="utf-8") + " ", encoding="utf-8")
    with pytest.raises(InputError, match="--restart"):
        Job(predictor, src, out, ScoreOptions(chunk_rows=10)).run(progress=False)
    # Same bundle.json, rewritten weights (a new mtime): refused as well.
    (tmp_path / "again").mkdir()
    src, out = _stopped_after_the_first_chunk(predictor, tmp_path / "again")
    weights = bundle / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    with pytest.raises(InputError, match="--restart"):
        Job(predictor, src, out, ScoreOptions(chunk_rows=10)).run(progress=False)


def test_record_is_idempotent_and_report_is_written(predictor, tmp_path):
    from service.store import Store

    src = tmp_path / "in.jsonl"
    write_input(src, 40)
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    for _ in range(2):  # a second run re-records the same ids: replaced, not added
        summary = Job(
            predictor, src, tmp_path / "out.jsonl", ScoreOptions(record=True), store=store
        ).run(progress=False)
        assert summary.recorded == 40
    from datetime import datetime

    result = store.summary(
        datetime(2026, 11, 1),
        datetime(2026, 12, 1),
        theme_ids=predictor.theme_ids,
        sentiments=predictor.sentiments,
    )
    assert result.feedback_count == 40
    written = summary.stats.write(tmp_path / "rep" / "report.md", "test")
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["rows_scored"] == 40 and data["segment_column"] == "segment"
    assert set(data["top_themes_by_segment"]) == {"s0", "s1", "s2"}
    assert sum(data["sentiment"].values()) == 40
    assert (tmp_path / "rep" / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert "| theme | items | share |" in written[0].read_text()


def test_two_outputs_in_one_folder_keep_their_own_side_files(predictor, tmp_path):
    """``x.csv`` and ``x.parquet`` beside each other: each has its own errors file, work folder
    and temporary name, and a clean run of one leaves the other's errors file alone."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "r1", "text": "The app is slow"}\n{"id": "r2", "text": ""}\n', encoding="utf-8"
    )
    good = tmp_path / "good.jsonl"
    write_input(good, 3)
    jobs = {
        name: Job(predictor, bad if name == "x.csv" else good, tmp_path / name, ScoreOptions())
        for name in ("x.csv", "x.parquet")
    }
    sides = [
        {job.errors_path, job.work, job.output.with_name(job.output.name + ".partial")}
        for job in jobs.values()
    ]
    assert not sides[0] & sides[1]
    summary = jobs["x.csv"].run(progress=False)
    assert summary.errors == 1 and summary.errors_path == tmp_path / "x.csv.errors.csv"
    kept = summary.errors_path.read_text(encoding="utf-8")
    clean = jobs["x.parquet"].run(progress=False)
    assert clean.errors == 0 and clean.errors_path is None
    assert summary.errors_path.read_text(encoding="utf-8") == kept  # not deleted or replaced
    assert not (tmp_path / "x.parquet.errors.csv").exists()


def test_kill_9_then_rerun_gives_identical_output(tiny_bundle, tmp_path):
    src = tmp_path / "big.jsonl"
    write_input(src, 6000)
    env = {**os.environ, "CXTHEMES_MODELS_DIR": str(tmp_path)}
    base = [
        sys.executable,
        "-m",
        "service.cli",
        "score",
        str(src),
        "--model",
        str(tiny_bundle),
        "-q",
    ]
    subprocess.run(
        [*base, "-o", str(tmp_path / "whole.jsonl")], env=env, check=True, capture_output=True
    )
    out = tmp_path / "killed.jsonl"
    proc = subprocess.Popen([*base, "-o", str(out)], env=env, stderr=subprocess.DEVNULL)
    work = tmp_path / "killed.jsonl.cxwork"
    deadline = time.time() + 120
    while len(list(work.glob("chunk-*.jsonl"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() and work.is_dir()
    done = subprocess.run([*base, "-o", str(out)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == (tmp_path / "whole.jsonl").read_bytes()


def test_an_input_changed_between_scoring_and_writing_is_refused(predictor, tmp_path):
    src = tmp_path / "in.jsonl"
    write_input(src, 30)
    out = tmp_path / "out.jsonl"

    def change_input(k):
        if k == 2:  # the last chunk: phase 2 reads the input again after it
            write_input(src, 30, dup_every=3)

    with pytest.raises(InputError, match="changed while it was being scored"):
        Job(predictor, src, out, ScoreOptions(chunk_rows=10)).run(
            progress=False, on_chunk=change_input
        )
    assert not out.exists()
    summary = Job(predictor, src, out, ScoreOptions(chunk_rows=10, restart=True)).run(
        progress=False
    )
    assert summary.scored == 30
