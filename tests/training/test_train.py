"""Training end to end on the tiny model: bundle contents, thresholds, card, reproducibility."""

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from service.bundle import load_bundle, read_meta
from training.train import TrainConfig, train


def test_bundle_has_everything(tiny_bundle):
    files = {p.name for p in tiny_bundle.iterdir()}
    assert {"bundle.json", "README.md", "model.safetensors", "encoder", "tokenizer.json"} <= files
    meta = read_meta(tiny_bundle)
    assert meta["version"] == "tiny-test"
    assert meta["theme_ids"][0] == "privacy_data" and len(meta["theme_ids"]) == 9
    assert set(meta["thresholds"]) == set(meta["theme_ids"])
    assert all(0.0 < t < 1.0 for t in meta["thresholds"].values())
    data = meta["training_data"]
    assert len(data["fingerprint"]) == 64 and data["n_train"] > data["n_test"] > 0
    # Label files relative to the labels folder: no trainer's directory layout in the bundle.
    assert data["files"] and all(
        f.endswith(".jsonl") and not Path(f).is_absolute() for f in data["files"]
    )
    assert meta["hyperparameters"]["seed"] == TrainConfig.seed and meta["taxonomy_version"] == "1"
    model = meta["metrics"]["model"]
    assert set(model["per_theme"]) == set(meta["theme_ids"])
    assert "macro_f1" in model and "per_language" in model and "sentiment" in model


def test_card_reports_evaluation(tiny_bundle):
    card = (tiny_bundle / "README.md").read_text()
    meta = read_meta(tiny_bundle)
    assert meta["version"] in card and "macro F1" in card and "Per language" in card
    assert f"{meta['metrics']['model']['macro_f1']:.3f}" in card
    # The small labels mix written texts with real ones from the installed corpora.
    origins = meta["metrics"]["model"]["per_origin"]
    assert {"real", "written"} <= set(origins) and "Per origin" in card
    assert sum(row["n"] for row in origins.values()) == meta["metrics"]["model"]["n"]


def test_current_points_at_new_bundle(tiny_bundle):
    current = tiny_bundle.parent / "current"
    assert current.is_symlink() and current.resolve() == tiny_bundle.resolve()


def test_word_embeddings_frozen_by_default(tiny_base, small_labels, tmp_path):
    import torch
    from transformers import AutoModel

    path = train(
        TrainConfig(
            base_model=str(tiny_base),
            labels=small_labels,
            models_dir=tmp_path,
            max_steps=3,
            baselines=False,
            version="frozen",
        )
    )
    before = AutoModel.from_pretrained(tiny_base).embeddings.word_embeddings.weight
    after = load_file(str(path / "model.safetensors"))["encoder.embeddings.word_embeddings.weight"]
    assert torch.equal(before, after)
    assert not torch.equal(
        AutoModel.from_pretrained(tiny_base).encoder.layer[0].attention.self.query.weight,
        load_file(str(path / "model.safetensors"))[
            "encoder.encoder.layer.0.attention.self.query.weight"
        ],
    )


def test_seeded_runs_are_reproducible(tiny_base, small_labels, tmp_path):
    def run(name):
        path = train(
            TrainConfig(
                base_model=str(tiny_base),
                labels=small_labels,
                models_dir=tmp_path,
                max_steps=4,
                baselines=False,
                version=name,
                make_current=False,
            )
        )
        return load_file(str(path / "model.safetensors")), read_meta(path)["thresholds"]

    (w1, t1), (w2, t2) = run("a"), run("b")
    assert t1 == t2
    assert all((w1[k] == w2[k]).all() for k in w1)


def test_bad_labels_stop_training(tiny_base, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(
            {"id": "1", "text": "x", "lang": "en", "themes": ["nope"], "sentiment": "neutral"}
        )
        + "\n"
    )
    with pytest.raises(ValueError, match="unknown theme"):
        train(
            TrainConfig(base_model=str(tiny_base), labels=bad, models_dir=tmp_path, baselines=False)
        )


def test_baselines_report_on_same_test_split(tiny_bundle, small_labels):
    from service.taxonomy import load_taxonomy
    from training.baselines import run_baselines
    from training.data import load_items, split_items

    tax = load_taxonomy()
    items, _ = load_items([small_labels], tax)
    splits = split_items(items)
    meta = read_meta(tiny_bundle)
    # The tiny base encoder stands in for e5: both baselines must run and report every theme.
    bundle = load_bundle(tiny_bundle)
    out = run_baselines(splits, tax, meta["base_model"], "")
    for name in ("tfidf", "zero_shot"):
        assert out[name]["n"] == len(splits["test"])
        assert set(out[name]["per_theme"]) == set(bundle.theme_ids)
        assert 0.0 <= out[name]["macro_f1"] <= 1.0
    # TF-IDF learns from real labelled text, so it must beat chance on the test split.
    assert out["tfidf"]["macro_f1"] > 0.2


def test_seed_search_keeps_the_best_dev_run(
    tiny_base, small_labels, tmp_path, capsys, monkeypatch, request
):
    from service.cli import main
    from service.core.config import get_settings

    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("CXTHEMES_MODELS_DIR", str(models))
    get_settings.cache_clear()  # settings are read once per process
    request.addfinalizer(get_settings.cache_clear)
    args = ["--base-model", str(tiny_base), "--labels", str(small_labels), "--max-steps", "4"]
    args += ["--no-baselines", "--no-current"]
    assert main(["train", *args, "--seeds", "13,29", "--version", "search"]) == 0
    out = capsys.readouterr().out

    meta = read_meta(models / "search")
    search = meta["seed_search"]
    assert [r["seed"] for r in search["runs"]] == [13, 29]
    kept = max(search["runs"], key=lambda r: r["best_dev_selection"])  # first of equals
    assert search["chosen_seed"] == kept["seed"] == meta["hyperparameters"]["seed"]
    assert meta["best_dev_selection"] == kept["best_dev_selection"]
    assert meta["hyperparameters"]["seeds"] == [13, 29]
    assert "## Seed search" in out and f"| {kept['seed']} (kept) |" in out
    # No current model to compare with: the hint is to promote, not "compare None ...".
    assert "cxthemes models promote search" in out and "compare None" not in out
    assert not (models / ".checkpoints" / "search").exists()

    # The kept weights are exactly what a plain run with that seed trains, and the figures
    # listed for the run are the ones that model's own card reports.
    seed = str(kept["seed"])
    assert main(["train", *args, "--seed", seed, "--version", "single"]) == 0
    single = models / "single"
    w_search = load_file(str(models / "search" / "model.safetensors"))
    w_single = load_file(str(single / "model.safetensors"))
    assert all((w_search[k] == w_single[k]).all() for k in w_single)
    model = read_meta(single)["metrics"]["model"]
    assert kept["test_macro_f1"] == pytest.approx(model["macro_f1"])
    assert kept["test_sentiment_accuracy"] == pytest.approx(model["sentiment"]["accuracy"])
    assert read_meta(single)["thresholds"] == meta["thresholds"]


@pytest.mark.parametrize("seeds", ["13,13", "13,x", ","])
def test_seed_search_rejects_bad_seed_lists(seeds, capsys):
    from service.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--seeds", seeds])
    assert exit_info.value.code == 2 and "--seeds" in capsys.readouterr().err


def test_seed_and_seeds_are_exclusive(capsys):
    from service.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--seed", "1", "--seeds", "1,2"])
    assert "not allowed with" in capsys.readouterr().err


def test_the_e5_prefix_comes_from_the_model_not_its_folder_name(tmp_path):
    from training.base_model import PROVENANCE_FILE
    from training.train import E5_PREFIX, _prefix_for

    lookalike = tmp_path / "e5-like-name"
    lookalike.mkdir()
    (lookalike / "config.json").write_text('{"model_type": "bert"}')
    assert _prefix_for(str(lookalike), None) == ""
    (lookalike / PROVENANCE_FILE).write_text('{"name": "intfloat/multilingual-e5-small"}')
    assert _prefix_for(str(lookalike), None) == E5_PREFIX
    assert _prefix_for(str(lookalike), "passage: ") == "passage: "
    assert _prefix_for("xlm-roberta-base", None) == ""


def test_sentiments_are_matched_by_name_not_position():
    """A bundle whose sentiment labels are ordered unlike the taxonomy: its predicted indices
    are in its own order, so the gold must be too (accuracy 0.4 instead of 1.0 before)."""
    from types import SimpleNamespace

    import numpy as np

    from training.data import Item
    from training.train import evaluate_predictor

    order = ["positive", "neutral", "negative"]  # the taxonomy's is negative, neutral, positive
    gold = ["negative", "negative", "positive", "neutral", "positive"]
    items = [Item(str(k), f"text {k}", "en", (), s, "written") for k, s in enumerate(gold)]
    predictor = SimpleNamespace(theme_ids=["pricing_value"], sentiments=order)
    decisions = (np.zeros((5, 1), dtype=int), np.array([order.index(s) for s in gold]))
    report = evaluate_predictor(predictor, items, decisions)
    assert report["sentiment"]["accuracy"] == 1.0 and report["sentiment"]["macro_f1"] == 1.0


def test_recorded_figures_are_reused_only_for_the_same_items_in_the_same_splits(
    tiny_bundle, small_labels
):
    """A changed labels/splits.tsv moves items between splits without changing the labelled
    content: the figures a bundle records are then for another test split."""
    from dataclasses import replace

    from service.taxonomy import load_taxonomy
    from training.data import find_label_files, load_items, split_items
    from training.splits import load_manifest, text_key
    from training.train import same_evaluation_data, split_fingerprint

    meta = read_meta(tiny_bundle)
    items, _ = load_items(find_label_files(small_labels), load_taxonomy())
    splits = split_items(items)
    assert same_evaluation_data(meta, items, splits)
    item = splits["test"][0]
    moved = split_items(items, {**load_manifest(), text_key(item.text): "train"})
    assert split_fingerprint(moved) != split_fingerprint(splits)
    assert not same_evaluation_data(meta, items, moved)
    other = "negative" if item.sentiment != "negative" else "positive"
    relabelled = [replace(i, sentiment=other) if i is item else i for i in items]
    assert not same_evaluation_data(meta, relabelled, splits)
    # A bundle written before its split was recorded: its figures are never reused.
    old = {**meta, "training_data": {"fingerprint": meta["training_data"]["fingerprint"]}}
    assert not same_evaluation_data(old, items, splits)
