"""cxthemes score: formats in and out, bad rows reported and skipped."""

import csv
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.predictor import Predictor
from service.scoring import ScoringInputError, score_file
from tests.conftest import read_jsonl


@pytest.fixture(scope="module")
def predictor(tiny_bundle):
    return Predictor.from_path(tiny_bundle)


def test_jsonl_in_jsonl_out_with_bad_rows(predictor, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(
        "\n".join(
            [
                json.dumps({"id": "a", "text": "Refund took a month."}),
                json.dumps({"id": "b", "text": "   "}),
                "{broken",
                json.dumps({"id": "c", "body": "no text column"}),
                json.dumps({"id": "d", "text": "客服态度很好"}),
            ]
        )
        + "\n"
    )
    err = io.StringIO()
    summary = score_file(predictor, src, tmp_path / "out.jsonl", progress=False, err=err)
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in rows] == ["a", "d"] and summary.scored == 2
    assert len(summary.skipped) == 3
    log = err.getvalue()
    assert (
        "row 2: empty text" in log
        and "row 3: invalid JSON" in log
        and "row 4: missing text column" in log
    )
    assert set(rows[0]) >= {
        "id",
        "themes",
        "scores",
        "sentiment",
        "sentiment_scores",
        "needs_review",
        "evidence",
        "model_version",
    }
    assert rows[0]["model_version"] == "tiny-test"


def test_csv_in_csv_out_custom_columns(predictor, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text(
        '\ufeffref,comment\nr1,Too expensive for what it is\nr2,\nr3,"Multi-line,\nquoted text"\n',
        encoding="utf-8",
    )
    score_file(
        predictor,
        src,
        tmp_path / "out.csv",
        text_column="comment",
        id_column="ref",
        progress=False,
        err=io.StringIO(),
    )
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [r["id"] for r in rows] == ["r1", "r3"]
    assert "score_pricing_value" in rows[0] and rows[0]["model_version"] == "tiny-test"


def test_parquet_in_parquet_out_without_id_column(predictor, tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(
        pa.table({"text": ["bot would not let me reach a person", None, "fast delivery"]}), src
    )
    score_file(predictor, src, tmp_path / "out.parquet", progress=False, err=io.StringIO())
    table = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [r["id"] for r in table] == ["1", "3"]  # row numbers stand in for missing ids
    assert isinstance(table[0]["themes"], list)


def test_missing_text_column_is_a_clear_error(predictor, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("id,body\n1,hello\n")
    with pytest.raises(ScoringInputError, match="no column 'text'"):
        score_file(predictor, src, tmp_path / "out.jsonl", progress=False)


def test_unknown_formats_are_refused(predictor, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("hello\n")
    with pytest.raises(ScoringInputError, match="unsupported input format"):
        score_file(predictor, src, tmp_path / "out.jsonl", progress=False)
    ok = tmp_path / "in.jsonl"
    ok.write_text('{"id": 1, "text": "hi"}\n')
    with pytest.raises(ScoringInputError, match="unsupported output format"):
        score_file(predictor, ok, tmp_path / "out.xml", progress=False)
