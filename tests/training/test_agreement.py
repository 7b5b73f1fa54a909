import json

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
    first = read_pass(_write(tmp_path / "a.jsonl", a))
    same = agreement(first, first, tax)
    assert same["per_theme"]["pricing_value"]["kappa"] == 1.0 and same["sentiment_kappa"] == 1.0
    assert not same["disagreements"]
    b = [dict(r) for r in a]
    b[1] = {**b[1], "themes": []}
    b[2] = {**b[2], "sentiment": "positive"}
    result = agreement(first, read_pass(_write(tmp_path / "b.jsonl", b)), tax)
    assert 0 < result["per_theme"]["pricing_value"]["kappa"] < 1
    assert result["sentiment_agree"] == pytest.approx(19 / 20)
    assert [d["id"] for d in result["disagreements"]] == ["1", "2"]


def test_no_shared_ids_is_an_error(tmp_path):
    tax = load_taxonomy()
    a = read_pass(_write(tmp_path / "a.jsonl", [{"id": "1", "themes": [], "sentiment": "neutral"}]))
    b = read_pass(_write(tmp_path / "b.jsonl", [{"id": "2", "themes": [], "sentiment": "neutral"}]))
    with pytest.raises(ValueError):
        agreement(a, b, tax)
