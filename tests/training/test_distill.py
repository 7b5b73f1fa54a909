"""The student: layers taken from the teacher, trained on its soft targets, gated on F1."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from service.bundle import load_bundle, read_meta
from service.predictor import Predictor
from service.registry import current_version, set_current_version
from service.taxonomy import load_taxonomy
from training.distill import DistillConfig, distill, layers_to_keep, make_student


@pytest.mark.parametrize(
    ("n", "k", "expected"),
    [(12, 6, [0, 2, 4, 7, 9, 11]), (12, 4, [0, 4, 7, 11]), (2, 1, [1]), (3, 3, [0, 1, 2])],
)
def test_layers_to_keep_are_spread_and_keep_the_last(n, k, expected):
    assert layers_to_keep(n, k) == expected


@pytest.mark.parametrize("k", [0, 13])
def test_layers_to_keep_refuses_impossible_sizes(k):
    with pytest.raises(ValueError, match="student_layers"):
        layers_to_keep(12, k)


def test_student_copies_the_kept_layers_and_leaves_the_teacher_alone(tiny_bundle):
    teacher = load_bundle(tiny_bundle).model
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student, kept = make_student(teacher, 1)
    assert kept == [1]
    assert student.encoder.config.num_hidden_layers == 1
    assert len(student.encoder.encoder.layer) == 1
    t_layer = teacher.encoder.encoder.layer[1].state_dict()
    for name, value in student.encoder.encoder.layer[0].state_dict().items():
        assert torch.equal(value, t_layer[name])
    with torch.no_grad():
        next(student.encoder.encoder.layer[0].parameters()).add_(1.0)
    for name, value in teacher.state_dict().items():
        assert torch.equal(value, before[name]), name  # a deep copy: the teacher is unchanged


def _config(tiny_bundle, small_labels, models, **kw) -> DistillConfig:
    options = dict(
        teacher=str(tiny_bundle),
        labels=small_labels,
        models_dir=models,
        student_layers=1,
        epochs=1,
        learning_rate=1e-3,
        batch_size=16,
        version="tiny-student",
    )
    options.update(kw)
    return DistillConfig(**options)


def test_distill_writes_a_loadable_student_that_follows_the_gate(
    tiny_bundle, small_labels, tmp_path
):
    models = tmp_path / "models"
    models.mkdir()
    unlabelled = tmp_path / "unlabelled.jsonl"
    texts = [f"the app is slow and the price went up {k}" for k in range(40)]
    texts += ["the app is slow and the price went up 0"]  # a duplicate, counted once
    unlabelled.write_text("\n".join(json.dumps({"text": t}) for t in texts), encoding="utf-8")
    path, ships = distill(
        _config(
            tiny_bundle,
            small_labels,
            models,
            unlabelled=[unlabelled],
            max_f1_loss=1.0,
            max_sentiment_loss=1.0,
            sentiment_loss_weight=3.0,
        )
    )
    meta = read_meta(path)
    d = meta["distillation"]
    assert d["sentiment_loss_weight"] == 3.0
    teacher_meta = read_meta(tiny_bundle)
    assert d["teacher"] == teacher_meta["version"]
    assert d["teacher_layers"] == 2 and d["layers_kept"] == [1]
    assert d["unlabelled_texts"] == 40
    assert d["soft_target_texts"] == 40 + teacher_meta["training_data"]["n_train"]
    assert d["teacher_macro_f1"] == teacher_meta["metrics"]["model"]["macro_f1"]
    assert d["student_macro_f1"] == meta["metrics"]["model"]["macro_f1"]
    teacher_sentiment = teacher_meta["metrics"]["model"]["sentiment"]["accuracy"]
    assert d["teacher_sentiment_accuracy"] == teacher_sentiment
    assert d["student_sentiment_accuracy"] == meta["metrics"]["model"]["sentiment"]["accuracy"]
    assert ships is True and d["ships"] is True
    assert current_version(models) == "tiny-student"
    assert "## Distillation" in (path / "README.md").read_text(encoding="utf-8")
    student = load_bundle(path)
    assert student.model.encoder.config.num_hidden_layers == 1
    rows = Predictor(student).predict(["refund me now", "你们的客服太慢了"])
    assert [r.model_version for r in rows] == ["tiny-student"] * 2


@pytest.mark.parametrize(
    "limits",
    [
        # max_f1_loss < 0: no student can ship, whatever its figures.
        {"max_f1_loss": -1.0},
        # Any F1 passes; max_sentiment_loss < 0: the sentiment limit alone must stop it.
        {"max_f1_loss": 1.0, "max_sentiment_loss": -1.0},
    ],
    ids=["f1", "sentiment"],
)
def test_a_student_that_loses_too_much_is_written_but_not_made_current(
    tiny_bundle, small_labels, tmp_path, limits
):
    models = tmp_path / "models"
    models.mkdir()
    (models / "keep").symlink_to(tiny_bundle, target_is_directory=True)
    set_current_version(models, "keep", "test")
    path, ships = distill(_config(tiny_bundle, small_labels, models, max_steps=2, **limits))
    assert ships is False
    assert read_meta(path)["distillation"]["ships"] is False
    assert current_version(models) == "keep"
    assert "**does not ship**" in (path / "README.md").read_text(encoding="utf-8")


def test_distill_refuses_an_unlabelled_file_without_the_text_column(
    tiny_bundle, small_labels, tmp_path
):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,body\n1,hello\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no column 'text'"):
        distill(_config(tiny_bundle, small_labels, tmp_path, unlabelled=[bad]))


def test_teacher_targets_are_the_teachers_outputs_in_input_order(tiny_bundle):
    from service.modeling import mean_pool
    from training.distill import teacher_targets

    bundle = load_bundle(tiny_bundle)
    texts = ["a much longer text about prices and refunds and waiting", "short", "中文的评论"]
    got = teacher_targets(tiny_bundle, texts, "query: ", bundle.tokenizer, 64)
    with torch.no_grad():
        for k, text in enumerate(texts):
            enc = bundle.tokenizer(["query: " + text], return_tensors="pt")
            out = bundle.model(enc["input_ids"], enc["attention_mask"], return_hidden=True)
            pooled = mean_pool(out["hidden"], enc["attention_mask"])[0].numpy()
            themes = torch.sigmoid(out["theme_logits"])[0].numpy()
            sentiment = torch.softmax(out["sentiment_logits"], -1)[0].numpy()
            assert got["pooled"][k] == pytest.approx(pooled, abs=1e-4)
            assert got["themes"][k] == pytest.approx(themes, abs=1e-5)
            assert got["sentiment"][k] == pytest.approx(sentiment, abs=1e-5)


def test_student_loss_adds_the_pooled_distance_to_the_teacher(tiny_bundle):
    from service.modeling import mean_pool
    from training.distill import _Student

    model = load_bundle(tiny_bundle).model
    enc = load_bundle(tiny_bundle).tokenizer(
        ["late again", "refund please"], padding=True, return_tensors="pt"
    )
    themes = torch.full((2, 9), 0.5)
    sentiment = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.2, 0.6]])
    with torch.no_grad():
        own = mean_pool(model(**enc, return_hidden=True)["hidden"], enc["attention_mask"])
        plain = model(**enc, theme_labels=themes, sentiment_labels=sentiment)["loss"]
        wrapped = _Student(model, pooled_weight=2.0)
        same = wrapped(**enc, theme_labels=themes, sentiment_labels=sentiment, teacher_pooled=own)
        far = wrapped(**enc, theme_labels=themes, sentiment_labels=sentiment, teacher_pooled=-own)
    assert same["loss"].item() == pytest.approx(plain.item(), abs=1e-5)
    # -own is at relative squared distance 4 from own: the loss grows by 2.0 * 4.
    assert far["loss"].item() == pytest.approx(plain.item() + 8.0, abs=1e-3)
    assert "hidden" not in far  # eval predictions stay (theme, sentiment) logits


def test_the_student_trains_with_the_configured_sentiment_weight(
    tiny_bundle, small_labels, tmp_path, monkeypatch
):
    import training.distill as distill_module

    seen = {}

    def fit_spy(wrapped, *args, **kwargs):
        seen["weight"] = wrapped.student.sentiment_loss_weight
        return None  # as on a non-main rank: nothing is written

    monkeypatch.setattr(distill_module, "fit", fit_spy)
    config = _config(tiny_bundle, small_labels, tmp_path, sentiment_loss_weight=2.5)
    assert distill(config) is None
    assert seen["weight"] == 2.5
    assert load_bundle(tiny_bundle).model.sentiment_loss_weight == 1.0  # the teacher's own


def test_the_sentiment_weight_scales_the_sentiment_loss(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    model, enc = bundle.model, bundle.tokenizer(["late again"], return_tensors="pt")
    themes = torch.full((1, 9), 0.5)
    sentiment = torch.tensor([[0.8, 0.1, 0.1]])
    losses = {}
    with torch.no_grad():
        for weight in (1.0, 3.0):
            model.sentiment_loss_weight = weight
            out = model(**enc, theme_labels=themes, sentiment_labels=sentiment)
            losses[weight] = out["loss"].item()
        ce = torch.nn.functional.cross_entropy(out["sentiment_logits"], sentiment).item()
    assert losses[3.0] - losses[1.0] == pytest.approx(2 * ce, rel=1e-4)


def test_repository_unlabelled_texts_are_ready_for_distillation():
    """labels/unlabelled: one file per language, read by distill's own reader, nothing lost."""
    from service.core.config import PROJECT_ROOT
    from training.distill import unlabelled_texts

    files = sorted((PROJECT_ROOT / "labels" / "unlabelled").glob("*.jsonl"))
    assert len(files) >= 14
    lines = 0
    for path in files:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        assert {r["lang"] for r in rows} == {path.stem}, path
        lines += len(rows)
    pool = unlabelled_texts(DistillConfig(unlabelled=files), exclude=set())
    assert len(pool) == lines  # every line has a text, and no text repeats


def _batches(bundle, texts):
    enc = bundle.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    return [{"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}]


def test_pruning_drops_the_neurons_that_contribute_nothing(tiny_bundle):
    """Neurons whose output weights are zero rank last, and dropping them leaves every output
    exactly as it was; keeping all neurons also changes nothing."""
    from training.distill import ffn_importance, prune_ffn

    bundle = load_bundle(tiny_bundle)
    model = bundle.model.eval()
    size = model.encoder.config.intermediate_size
    dead = torch.arange(0, size, 4)  # a quarter of the neurons, spread out
    with torch.no_grad():
        for layer in model.encoder.encoder.layer:
            layer.output.dense.weight[:, dead] = 0.0
    batch = _batches(bundle, ["the refund took three weeks", "客服态度很好", "ok"])[0]
    with torch.no_grad():
        before = model(batch["input_ids"], batch["attention_mask"])
    importance = ffn_importance(model, [batch])
    assert len(importance) == model.encoder.config.num_hidden_layers
    for scores in importance:
        assert scores.shape == (size,)
        assert torch.all(scores[dead] == 0) and torch.all(scores.sum() > 0)

    pruned = copy.deepcopy(model)
    prune_ffn(pruned, size - len(dead), importance)
    assert pruned.encoder.config.intermediate_size == size - len(dead)
    for layer in pruned.encoder.encoder.layer:
        assert layer.intermediate.dense.weight.shape == (size - len(dead), 32)
        assert layer.output.dense.weight.shape == (32, size - len(dead))
    unchanged = copy.deepcopy(model)
    prune_ffn(unchanged, size, importance)
    with torch.no_grad():
        for other in (pruned, unchanged):
            after = other(batch["input_ids"], batch["attention_mask"])
            for key in ("theme_logits", "sentiment_logits"):
                assert torch.allclose(after[key], before[key], atol=1e-5), key
        # Dropping live neurons does change the outputs (the test above is not vacuous).
        cut = copy.deepcopy(model)
        prune_ffn(cut, size // 4, importance)
        changed = cut(batch["input_ids"], batch["attention_mask"])["theme_logits"]
        assert not torch.allclose(changed, before["theme_logits"], atol=1e-4)
    with pytest.raises(ValueError, match="student_ffn"):
        prune_ffn(copy.deepcopy(model), size + 1, importance)


def test_distill_with_a_smaller_feed_forward_writes_a_loadable_student(
    tiny_bundle, small_labels, tmp_path
):
    models = tmp_path / "models"
    models.mkdir()
    path, _ = distill(
        _config(tiny_bundle, small_labels, models, student_ffn=24, max_steps=2, make_current=False)
    )
    d = read_meta(path)["distillation"]
    assert (d["teacher_ffn"], d["student_ffn"]) == (64, 24)
    assert "24 of the 64 feed-forward neurons" in (path / "README.md").read_text(encoding="utf-8")
    student = load_bundle(path)
    assert student.model.encoder.config.intermediate_size == 24
    assert student.model.encoder.encoder.layer[0].intermediate.dense.out_features == 24
    rows = Predictor(student).predict(["refund me now", "你们的客服太慢了"])
    assert len(rows) == 2 and all(set(r.scores) == set(student.theme_ids) for r in rows)


def test_gold_labels_are_blended_into_the_labelled_rows_only():
    import numpy as np

    from service.taxonomy import load_taxonomy
    from training.data import Item
    from training.distill import blend_gold_labels

    taxonomy = load_taxonomy("labels/taxonomy.yaml")
    k = len(taxonomy.theme_ids)
    targets = {
        "themes": np.full((3, k), 0.5, dtype=np.float32),
        "sentiment": np.full((3, 3), 1 / 3, dtype=np.float32),
    }
    theme = taxonomy.theme_ids[1]
    item = Item(id="a", text="t", lang="en", themes=(theme,), sentiment="negative", source="s")
    blend_gold_labels(targets, [item], taxonomy, 0.4)
    expected = np.full(k, 0.3, dtype=np.float32)  # 0.6 * 0.5 + 0.4 * 0
    expected[1] = 0.7  # 0.6 * 0.5 + 0.4 * 1
    np.testing.assert_allclose(targets["themes"][0], expected, rtol=1e-6)
    negative = list(taxonomy.sentiments).index("negative")
    assert targets["sentiment"][0, negative] == pytest.approx(0.6 / 3 + 0.4)
    assert targets["sentiment"][0].sum() == pytest.approx(1.0)
    # the unlabelled rows keep the teacher's targets
    np.testing.assert_allclose(targets["themes"][1:], 0.5)
    np.testing.assert_allclose(targets["sentiment"][1:], 1 / 3, rtol=1e-6)


def test_a_label_weight_outside_zero_to_one_is_refused():
    import numpy as np

    from service.taxonomy import load_taxonomy
    from training.distill import blend_gold_labels

    targets = {"themes": np.zeros((1, 9)), "sentiment": np.zeros((1, 3))}
    with pytest.raises(ValueError, match="label_weight"):
        blend_gold_labels(targets, [], load_taxonomy("labels/taxonomy.yaml"), 1.5)


def test_the_student_trains_on_blended_targets_and_records_the_weight(
    tiny_bundle, small_labels, tmp_path, monkeypatch
):
    import training.distill as distill_module

    seen = {}

    def fit_spy(wrapped, tokenizer, train_ds, *args, **kwargs):
        seen["themes"] = [list(row) for row in train_ds["theme_labels"]]
        return None

    monkeypatch.setattr(distill_module, "fit", fit_spy)
    assert distill(_config(tiny_bundle, small_labels, tmp_path, label_weight=1.0)) is None
    hard = seen["themes"]
    labelled = [row for row in hard if all(v in (0.0, 1.0) for v in row)]
    assert labelled, "with label_weight 1 the labelled rows' targets are the gold labels"
    assert distill(_config(tiny_bundle, small_labels, tmp_path, label_weight=0.0)) is None
    assert seen["themes"] != hard


def _other_seed(tiny_bundle, tmp_path, **meta_changes):
    """A copy of the tiny bundle with different head weights (standing in for another seed)
    and, optionally, other bundle.json values."""
    import shutil

    from safetensors.torch import load_file, save_file

    copy_path = tmp_path / "other-seed"
    shutil.copytree(tiny_bundle, copy_path)
    weights = load_file(copy_path / "model.safetensors")
    weights["theme_head.bias"] = weights["theme_head.bias"] + torch.linspace(-2, 2, 9)
    weights["sentiment_head.bias"] = weights["sentiment_head.bias"] + torch.tensor([1.0, 0, -1])
    save_file(weights, copy_path / "model.safetensors")
    meta = read_meta(copy_path)
    meta.update(version="tiny-other-seed", **meta_changes)
    (copy_path / "bundle.json").write_text(json.dumps(meta), encoding="utf-8")
    return copy_path


def test_averaged_targets_are_the_mean_of_the_teachers_and_keep_the_first_embedding(
    tiny_bundle, tmp_path
):
    from training.distill import averaged_targets, teacher_targets

    other = _other_seed(tiny_bundle, tmp_path)
    tokenizer = load_bundle(tiny_bundle).tokenizer
    texts = ["prices went up again", "短", "the agent was kind and quick to refund me"]
    one = teacher_targets(tiny_bundle, texts, "query: ", tokenizer, 64)
    two = teacher_targets(other, texts, "query: ", tokenizer, 64)
    assert not abs(one["themes"] - two["themes"]).max() < 1e-3  # the copy really differs
    both = averaged_targets([tiny_bundle, other], texts, "query: ", tokenizer, 64)
    assert both["themes"] == pytest.approx((one["themes"] + two["themes"]) / 2, abs=1e-6)
    assert both["sentiment"] == pytest.approx((one["sentiment"] + two["sentiment"]) / 2, abs=1e-6)
    assert both["sentiment"].sum(-1) == pytest.approx([1.0] * 3, abs=1e-5)
    assert both["pooled"] == pytest.approx(one["pooled"], abs=1e-6)


def test_distill_with_an_extra_teacher_learns_the_averaged_targets_and_records_it(
    tiny_bundle, small_labels, tmp_path, monkeypatch
):
    import training.distill as distill_module

    other = _other_seed(tiny_bundle, tmp_path)
    seen = {}
    real_average = distill_module.averaged_targets

    def spy(paths, *args, **kwargs):
        seen["paths"] = [str(p) for p in paths]
        return real_average(paths, *args, **kwargs)

    monkeypatch.setattr(distill_module, "averaged_targets", spy)
    models = tmp_path / "models"
    models.mkdir()
    config = _config(tiny_bundle, small_labels, models, extra_teachers=[str(other)], max_steps=2)
    path, _ = distill(config)
    assert seen["paths"] == [str(tiny_bundle), str(other)]
    d = read_meta(path)["distillation"]
    assert d["teacher"] == read_meta(tiny_bundle)["version"]
    assert d["extra_teachers"] == ["tiny-other-seed"]
    card = (path / "README.md").read_text(encoding="utf-8")
    assert "probabilities averaged with those of `tiny-other-seed` on" in card


@pytest.mark.parametrize(
    "change", [{"max_length": 32}, {"text_prefix": "passage: "}, {"theme_ids": ["a", "b"]}]
)
def test_an_extra_teacher_with_other_inputs_is_refused_before_any_work(
    tiny_bundle, small_labels, tmp_path, change
):
    other = _other_seed(tiny_bundle, tmp_path, **change)
    key = next(iter(change))
    with pytest.raises(ValueError, match=f"its {key} .* differs from the teacher's"):
        distill(_config(tiny_bundle, small_labels, tmp_path, extra_teachers=[str(other)]))


def test_labels_changed_since_the_teacher_was_trained_are_scored_for_it(
    tiny_bundle, small_labels, tmp_path
):
    """The teacher's card figures are for its own test split: with other labels the teacher
    is scored on the current one, so the gate can still pass (it could never, before)."""
    from training.data import find_label_files, load_items, split_items
    from training.train import evaluate_predictor

    labels = tmp_path / "labels.jsonl"
    extra = {
        "id": "new-1",
        "text": "A brand new labelled complaint about refunds that never arrive",
        "lang": "en",
        "themes": ["service_quality"],
        "sentiment": "negative",
        "source": "written",
    }
    labels.write_text(small_labels.read_text() + json.dumps(extra) + "\n", encoding="utf-8")
    models = tmp_path / "models"
    models.mkdir()
    path, ships = distill(
        _config(tiny_bundle, labels, models, max_steps=2, max_f1_loss=1.0, max_sentiment_loss=1.0)
    )
    d = read_meta(path)["distillation"]
    taxonomy = load_taxonomy()
    items, _ = load_items(find_label_files(labels), taxonomy)
    expected = evaluate_predictor(Predictor(load_bundle(tiny_bundle)), split_items(items)["test"])
    assert d["teacher_macro_f1"] == pytest.approx(expected["macro_f1"])
    assert d["teacher_sentiment_accuracy"] == pytest.approx(expected["sentiment"]["accuracy"])
    assert ships is True and d["ships"] is True


def test_near_copies_of_labelled_texts_stay_out_of_the_unlabelled_pool(tmp_path):
    """README: dev and test texts are never unlabelled texts; near copies neither (the
    teacher's outputs on "Top!! 👍" would teach the student its answer for a test "top")."""
    from service.text import normalise_for_dedup
    from training.distill import unlabelled_texts
    from training.label_import import near_key

    labelled = ["top", "Meh."]
    exclude = {normalise_for_dedup(t) for t in labelled} | {near_key(t) for t in labelled}
    path = tmp_path / "pool.jsonl"
    pool = ["Top!! 👍", "meh", "Top demais", "great", "👍👍", "👍👍"]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in pool), encoding="utf-8")
    kept = unlabelled_texts(DistillConfig(unlabelled=[path]), exclude=exclude)
    assert kept == ["Top demais", "great", "👍👍"]


def test_a_teacher_whose_sentiments_are_ordered_otherwise_is_refused(
    tiny_bundle, small_labels, tmp_path
):
    """The gold labels are indices in the taxonomy's order and the teacher's outputs in its
    own: mixed, the student would learn negative as positive."""
    import yaml

    from tests.conftest import ROOT

    taxonomy = yaml.safe_load((ROOT / "labels" / "taxonomy.yaml").read_text(encoding="utf-8"))
    taxonomy["sentiments"].reverse()
    reordered = tmp_path / "taxonomy.yaml"
    reordered.write_text(yaml.safe_dump(taxonomy, allow_unicode=True), encoding="utf-8")
    models = tmp_path / "models"
    models.mkdir()
    with pytest.raises(ValueError, match="orders its sentiments"):
        distill(_config(tiny_bundle, small_labels, models, taxonomy_path=reordered))


def test_splits_changed_since_the_teacher_was_trained_are_scored_for_it(
    tiny_bundle, small_labels, tmp_path, monkeypatch
):
    """The same labels split otherwise (a changed labels/splits.tsv): the teacher's card
    figures are for another test split, so it is scored on the current one."""
    import training.data
    from training.data import find_label_files, load_items, split_items
    from training.splits import load_manifest, text_key
    from training.train import evaluate_predictor

    items, _ = load_items(find_label_files(small_labels), load_taxonomy())
    test = split_items(items)["test"]
    moved = {**load_manifest(), **{text_key(i.text): "train" for i in test[: len(test) // 2]}}
    monkeypatch.setattr(training.data, "load_manifest", lambda: moved)
    models = tmp_path / "models"
    models.mkdir()
    path, _ = distill(
        _config(
            tiny_bundle, small_labels, models, max_steps=2, max_f1_loss=1.0, max_sentiment_loss=1.0
        )
    )
    d = read_meta(path)["distillation"]
    expected = evaluate_predictor(Predictor(load_bundle(tiny_bundle)), split_items(items)["test"])
    card = read_meta(tiny_bundle)["metrics"]["model"]
    figures = (expected["macro_f1"], expected["sentiment"]["accuracy"])
    assert figures != (card["macro_f1"], card["sentiment"]["accuracy"])  # the split matters
    assert d["teacher_macro_f1"] == pytest.approx(expected["macro_f1"])
    assert d["teacher_sentiment_accuracy"] == pytest.approx(expected["sentiment"]["accuracy"])
    assert read_meta(path)["training_data"]["n_test"] == len(test) - len(test) // 2


@pytest.mark.parametrize("teacher", ["challenger", "champion"])
def test_only_a_student_of_the_current_model_replaces_it(
    teacher, tiny_bundle, small_labels, tmp_path
):
    """A student is gated against its teacher: of the champion, it may replace the champion;
    of a challenger, it was never compared with the champion, so like any new model (train's
    rule) it stays a challenger for models promote."""
    import shutil

    models = tmp_path / "models"
    models.mkdir()
    for version in ("champion", "challenger"):
        shutil.copytree(tiny_bundle, models / version)
    set_current_version(models, "champion", "promote")
    config = _config(
        tiny_bundle, small_labels, models, max_steps=2, max_f1_loss=1.0, max_sentiment_loss=1.0
    )
    config.teacher = str(models / teacher)
    path, ships = distill(config)
    assert ships is True
    assert current_version(models) == ("champion" if teacher == "challenger" else path.name)


def test_a_student_does_not_replace_a_model_made_current_while_it_was_distilled(tmp_path):
    """Gated against its teacher, the champion when the run began: if another model became
    current meanwhile, the student was never compared with that one and stays a challenger."""
    from training.distill import _make_current

    models = tmp_path / "models"
    for version in ("teacher", "other", "student"):
        (models / version).mkdir(parents=True)
        (models / version / "bundle.json").write_text(json.dumps({"version": version}))
    set_current_version(models, "teacher", "train")
    set_current_version(models, "other", "promote")  # while the student was trained
    _make_current(models, models / "student", "teacher", models / "teacher")
    assert current_version(models) == "other"
    set_current_version(models, "teacher", "promote")
    _make_current(models, models / "student", "teacher", models / "teacher")
    assert current_version(models) == "student"
