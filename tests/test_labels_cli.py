"""`labels import`, `labels select` and `review resolve` around the frozen splits and the
review queue: a batch chosen by the model stays out of dev and test even when its split could
not be recorded at first, and only labels the import accepts take items out of the queue."""

from __future__ import annotations

import json

import pytest

import training.splits as splits
from service.cli import main
from service.core.config import get_settings
from service.store import Store
from tests.service.store.test_store import item

# Texts that differ in letters (the import skips copies that differ only in punctuation).
_WORDS = [a + b for a in "bcdfghjklmnpqrstvwz" for b in "aeiou"]


def _texts_in(wanted: list[str]) -> list[str]:
    """One text per split in ``wanted``, whose hash split is that split."""
    pool = (f"The chatbot kept looping, said {w}{v}" for w in _WORDS for v in _WORDS)
    return [next(t for t in pool if splits.hash_split(t) == s) for s in wanted]


def _rows(texts: list[str]) -> list[dict]:
    return [
        {"text": t, "lang": "en", "themes": ["human_support"], "sentiment": "negative"}
        for t in texts
    ]


def _task(item_id, text, sentiment="negative", reasons=("score_near_threshold",), task_id=None):
    """A task as `review export` writes it, annotated as Label Studio exports it."""
    result = [{"from_name": "themes", "type": "choices", "value": {"choices": ["pricing_value"]}}]
    if sentiment:
        result.append(
            {"from_name": "sentiment", "type": "choices", "value": {"choices": [sentiment]}}
        )
    task = {
        "data": {"text": text, "lang": "en"} | ({"id": item_id} if item_id else {}),
        "annotations": [{"id": 1, "result": result}],
        "meta": {"review_reasons": list(reasons)},
    }
    return task | ({"id": task_id} if task_id is not None else {})


@pytest.fixture
def manifest(tmp_path, monkeypatch):
    path = tmp_path / "splits" / "splits.tsv"
    path.parent.mkdir()
    monkeypatch.setattr(splits, "SPLITS_FILE", path)
    splits.load_manifest.cache_clear()
    yield path
    splits.load_manifest.cache_clear()


def _imported(labels_dir) -> list:
    return sorted((labels_dir / "imported").glob("*.jsonl"))


def test_train_only_refuses_before_importing_when_the_manifest_is_damaged(
    labels_dir, manifest, tmp_path, capsys
):
    """The split used to be recorded after the import was written: a merge-conflict line in
    splits.tsv failed the recording, and a re-run found only duplicates, so the items kept
    their hash split (dev or test)."""
    texts = _texts_in(["test", "dev"])
    new = tmp_path / "labelled.jsonl"
    new.write_text("".join(json.dumps(r) + "\n" for r in _rows(texts)))
    manifest.write_text("<<<<<<< HEAD\n")
    args = ["labels", "import", str(new), "--labels", str(labels_dir), "--by", "t", "--train-only"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{manifest}:1" in err and "nothing was imported" in err
    assert _imported(labels_dir) == []

    manifest.write_text("")  # resolved
    assert main(args) == 0
    assert len(_imported(labels_dir)) == 1
    assert {splits.split_of(t, splits.load_manifest(manifest)) for t in texts} == {"train"}


def test_train_only_on_a_re_import_records_the_earlier_imported_copies(
    labels_dir, manifest, tmp_path, capsys
):
    """Imported first without --train-only (forgotten): a re-run with it finds only duplicates
    and must still record them as train. Items already in the manifest never move, and
    duplicates of labelled data that did not come from an import are not the import's."""
    texts = _texts_in(["test", "dev", "test"])
    frozen = (labels_dir / "items.jsonl").read_text().splitlines()[0]
    frozen_text = json.loads(frozen)["text"]
    manifest.write_text(f"{splits.text_key(texts[2])}\ttest\n")
    new = tmp_path / "labelled.jsonl"
    rows = _rows(texts)
    rows.append({**json.loads(frozen), "id": "x"})  # a copy of a labelled item, not imported
    new.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["labels", "import", str(new), "--labels", str(labels_dir), "--by", "t"]
    assert main(args) == 0
    assert len(_imported(labels_dir)) == 1
    capsys.readouterr()

    assert main([*args, "--train-only"]) == 0
    out = capsys.readouterr().out
    assert "imported 0 items" in out and "2 recorded as train" in out
    recorded = splits.load_manifest(manifest)
    assert [splits.split_of(t, recorded) for t in texts] == ["train", "train", "test"]
    assert splits.text_key(frozen_text) not in recorded
    assert len(_imported(labels_dir)) == 1


def test_an_export_of_review_tasks_is_train_only_by_default(labels_dir, manifest, tmp_path, capsys):
    """Review-queue items are chosen near a threshold like `labels select` batches: split by
    hash, about 30% would bias dev and test. Their tasks carry meta.review_reasons."""
    texts = _texts_in(["test", "dev"])
    export = tmp_path / "export.json"
    export.write_text(json.dumps([_task(f"fb-{k}", t) for k, t in enumerate(texts)]))
    args = ["labels", "import", str(export), "--labels", str(labels_dir), "--by", "t"]
    assert main(args) == 0
    assert "meta.review_reasons" in capsys.readouterr().err
    assert {splits.split_of(t, splits.load_manifest(manifest)) for t in texts} == {"train"}

    # --no-train-only keeps the hash split; a file of labels (not tasks) is not train-only.
    other = _texts_in(["test", "dev"])
    other = [t.replace("said", "wrote") for t in other]
    export.write_text(json.dumps([_task(f"fb-{k}", t) for k, t in enumerate(other)]))
    assert main([*args, "--no-train-only"]) == 0
    assert not {splits.text_key(t) for t in other} & set(splits.load_manifest(manifest))


@pytest.fixture
def store_db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'review.db'}"
    store = Store.open(url)
    store.record(
        [item(i, ["pricing_value"], "2026-11-03", review=True) for i in ("t0", "t1", "7")], "1"
    )
    store.close()
    monkeypatch.setenv("CXTHEMES_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _queue(url) -> list[str]:
    store = Store.open(url)
    try:
        return sorted(r["id"] for r in store.review_queue(limit=10, offset=0)[1])
    finally:
        store.close()


def test_resolve_refuses_an_export_that_the_import_refuses(store_db, tmp_path, capsys):
    """One task without a sentiment makes `labels import` refuse the whole export: resolving
    its other tasks would drop items from the queue whose labels never reached the data."""
    export = tmp_path / "export.json"
    export.write_text(
        json.dumps([_task("t0", "Too expensive"), _task("t1", "Way too pricey", sentiment=None)])
    )
    assert main(["review", "resolve", "--from", str(export)]) == 2
    err = capsys.readouterr().err
    assert "nothing was resolved" in err and "row 2" in err
    assert _queue(store_db) == ["7", "t0", "t1"]


def test_resolve_takes_ids_only_from_data_id(store_db, tmp_path, capsys):
    """A task without data.id (not from `review export`) fell back to Label Studio's task
    number, which resolved the unrelated store item with that id."""
    export = tmp_path / "export.json"
    export.write_text(
        json.dumps(
            [_task("t0", "Too expensive", task_id=100), _task(None, "Way too pricey", task_id=7)]
        )
    )
    assert main(["review", "resolve", "--from", str(export)]) == 0
    out = capsys.readouterr()
    assert "resolved 1 items" in out.out
    assert "1 annotated tasks have no data.id" in out.err and "row 2 of" in out.err
    assert _queue(store_db) == ["7", "t1"]


def test_labels_select_reads_another_encoding_and_masks_personal_data(
    tiny_bundle, small_labels, tmp_path, capsys
):
    texts = [
        "Café app crashed, mail me at jean.dupont@example.com",
        "Le remboursement a pris des semaines, appelez le 06 12 34 56 78",
        "Über teuer für das, was es kann",
    ]
    path = tmp_path / "export.csv"
    rows = "".join(f'n{k},"{t}"\n' for k, t in enumerate(texts))
    path.write_bytes(f"id,text\n{rows}".encode("latin-1"))
    out = tmp_path / "tasks.json"
    args = ["labels", "select", str(path), "-o", str(out), "--model", str(tiny_bundle)]
    args += ["--labels", str(small_labels), "--n", "3"]
    assert main(args) == 2  # read as UTF-8 by default: the hint names --encoding
    assert "pass --encoding" in capsys.readouterr().err
    assert main([*args, "--encoding", "latin-1"]) == 0
    tasks = {t["data"]["id"]: t["data"]["text"] for t in json.loads(out.read_text())}
    assert tasks == {
        "n0": "Café app crashed, mail me at [EMAIL]",
        "n1": "Le remboursement a pris des semaines, appelez le [PHONE]",
        "n2": texts[2],
    }
    assert main([*args, "--encoding", "no-such-codec"]) == 2
    assert "unknown encoding" in capsys.readouterr().err


def test_import_reports_masking_and_annotators_who_disagree(labels_dir, manifest, tmp_path, capsys):
    """The command says how many texts had personal data masked and which tasks' annotators
    disagreed (the ground truth, else the newest complete annotation, is used)."""
    text = "The bot never answers, call me on 13812345678 or mail ana@example.com"
    task = _task("fb-1", text)
    other = [
        {"from_name": "themes", "type": "choices", "value": {"choices": ["speed_availability"]}}
    ]
    other.append({"from_name": "sentiment", "type": "choices", "value": {"choices": ["neutral"]}})
    task["annotations"].append({"id": 2, "result": other, "ground_truth": True})
    export = tmp_path / "export.json"
    export.write_text(json.dumps([task]))
    assert main(["labels", "import", str(export), "--labels", str(labels_dir), "--by", "t"]) == 0
    out, err = capsys.readouterr()
    assert "personal data masked in 1 of the imported texts" in out
    assert "1 tasks had annotators who disagree" in err and "annotators disagree: " in err
    written = [json.loads(line) for line in _imported(labels_dir)[0].read_text().splitlines()]
    assert "13812345678" not in written[0]["text"] and "ana@example.com" not in written[0]["text"]
    assert written[0]["themes"] == ["speed_availability"]  # the ground truth


def test_labels_import_reads_another_encoding(labels_dir, manifest, tmp_path, capsys):
    """A CSV saved by Excel in the system's code page (GBK in China) is refused with a hint
    naming --encoding and the line, and imported with it."""
    src = tmp_path / "labelled.csv"
    rows = [
        "text,lang,themes,sentiment",
        "客服一直是机器人回复，找不到人工,zh,human_support,negative",
        "价格太贵了，不值这个钱,zh,pricing_value,negative",
    ]
    src.write_bytes(("\r\n".join(rows) + "\r\n").encode("gbk"))
    args = ["labels", "import", str(src), "--labels", str(labels_dir), "--by", "t"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "line 2: not valid UTF-8" in err and "pass --encoding (e.g. gbk)" in err
    assert not (labels_dir / "imported").exists()

    assert main([*args, "--encoding", "gbk"]) == 0
    assert "imported 2 items" in capsys.readouterr().out
    texts = {json.loads(line)["text"] for f in _imported(labels_dir) for line in f.open()}
    assert texts == {"客服一直是机器人回复，找不到人工", "价格太贵了，不值这个钱"}

    assert main([*args, "--encoding", "no-such-codec"]) == 2
    assert "unknown encoding 'no-such-codec'" in capsys.readouterr().err
