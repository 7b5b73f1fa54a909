import json
import re

import pytest

from service.taxonomy import load_taxonomy
from training.agreement import agreement, read_pass


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_perfect_and_partial_agreement(tmp_path):
    tax = load_taxonomy()
    a = [
        {
            "id": str(i),
            "themes": ["pricing_value"] if i % 2 else [],
            "sentiment": "negative" if i % 3 else "neutral",
        }
        for i in range(20)
    ]
    first = read_pass(_write(tmp_path / "a.jsonl", a), tax)
    same = agreement(first, first, tax)
    assert same["per_theme"]["pricing_value"]["kappa"] == 1.0 and same["sentiment_kappa"] == 1.0
    assert not same["disagreements"]
    b = [dict(r) for r in a]
    b[1] = {**b[1], "themes": []}
    b[2] = {**b[2], "sentiment": "positive"}
    result = agreement(first, read_pass(_write(tmp_path / "b.jsonl", b), tax), tax)
    assert 0 < result["per_theme"]["pricing_value"]["kappa"] < 1
    assert result["sentiment_agree"] == pytest.approx(19 / 20)
    assert [d["id"] for d in result["disagreements"]] == ["1", "2"]


def test_no_shared_ids_is_an_error(tmp_path):
    tax = load_taxonomy()
    a = read_pass(
        _write(tmp_path / "a.jsonl", [{"id": "1", "themes": [], "sentiment": "neutral"}]), tax
    )
    b = read_pass(
        _write(tmp_path / "b.jsonl", [{"id": "2", "themes": [], "sentiment": "neutral"}]), tax
    )
    with pytest.raises(ValueError):
        agreement(a, b, tax)


def test_one_sentiment_throughout_is_perfect_agreement_not_nan(tmp_path):
    tax = load_taxonomy()
    rows = [{"id": str(i), "themes": [], "sentiment": "negative"} for i in range(5)]
    a = read_pass(_write(tmp_path / "a.jsonl", rows), tax)
    result = agreement(a, a, tax)
    assert result["sentiment_kappa"] == 1.0
    json.dumps(result, allow_nan=False)  # valid JSON: no NaN anywhere


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "2", "themes": ["pricing"], "sentiment": "neutral"}', "unknown theme ids"),
        ('{"id": "2", "themes": []}', "bad sentiment None"),
        ("{oops", "invalid JSON"),
        ('{"id": "1", "themes": [], "sentiment": "neutral"}', "duplicate id 1 (first: line 1)"),
        ('{"themes": [], "sentiment": "neutral"}', "missing id"),
        ('{"id": "2", "themes": "pricing_value", "sentiment": "neutral"}', "a list of theme ids"),
    ],
)
def test_a_bad_line_is_named_by_file_and_line(tmp_path, line, message):
    path = tmp_path / "pass.jsonl"
    path.write_text('{"id": "1", "themes": [], "sentiment": "neutral"}\n' + line + "\n")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:2: .*{re.escape(message)}"):
        read_pass(path, load_taxonomy())


def test_a_byte_order_mark_is_read_past(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_text('{"id": "1", "themes": [], "sentiment": "neutral"}\n', encoding="utf-8-sig")
    assert list(read_pass(path, load_taxonomy())) == ["1"]
