"""``cxthemes distill``: a smaller, faster student of a trained model.

The student starts as a copy of the teacher with only some of its transformer layers (evenly
spaced, first and last kept), and optionally only the feed-forward neurons that contribute
most on real texts (the feed-forward block is two thirds of a layer's arithmetic). It is
trained to reproduce the teacher's outputs: its theme probabilities and sentiment
distribution (soft targets) on the training split and on unlabelled real feedback; with
``label_weight`` the training split's gold labels are blended into its targets. With
``extra_teachers`` the soft targets are the mean of several trained models' outputs (an
ensemble, usually seeds of one recipe): the student is still cut from ``teacher`` and judged
against it, but learns from targets that are better than any one model's. The dev split
serves early stopping and thresholds, the frozen test split the final figures, which the
student's card shows beside its teacher's.

A student ships only if it stays within ``max_f1_loss`` (0.01) of its teacher's test macro
F1 and within ``max_sentiment_loss`` (0.01) of its sentiment accuracy; otherwise its bundle is
written for inspection and the current model stays. A student that ships becomes current only
by the rule every new model follows (:func:`service.registry.may_become_current`): its teacher
was the current model (so it was gated against the champion) or no model is current. The
student of a challenger stays a challenger, for ``models promote`` to compare with the champion.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import set_seed

from service.bundle import load_bundle, read_meta, resolve_model_path
from service.modeling import mean_pool
from service.predictor import Predictor
from service.registry import (
    check_new_version,
    current_version,
    list_models,
    may_become_current,
    set_current_unless_changed,
)
from service.taxonomy import load_taxonomy
from service.text import normalise_for_dedup
from training.data import find_label_files, label_arrays, load_items, split_items
from training.label_import import near_key
from training.train import (
    TrainConfig,
    _dataset,
    _finite,
    check_schedule,
    evaluate_predictor,
    fit,
    same_evaluation_data,
    token_dataset,
    version_run,
    write_bundle,
)

log = logging.getLogger(__name__)


@dataclass
class DistillConfig(TrainConfig):
    """A training run whose targets come from ``teacher`` (a bundle path or version)."""

    base_model: str = ""  # the teacher's, filled in by distill()
    labels: Path = Path("labels")
    teacher: str = ""
    # More trained models (same themes, base model and text prefix) whose outputs are
    # averaged with the teacher's into the soft targets. The student is cut from ``teacher``
    # and gated against it. Two seeds of cx-default-v7 averaged: dev macro F1 +0.004 over the
    # better seed, sentiment accuracy +0.014 on test.
    extra_teachers: list[str] = field(default_factory=list)
    student_layers: int = 8
    # Feed-forward neurons each student layer keeps (None: all of the teacher's).
    student_ffn: int | None = None
    # Texts whose activations rank the feed-forward neurons.
    ffn_ranking_texts: int = 512
    # Unlabelled texts: files the batch readers take (their ``text_column``) and/or a number
    # of real texts from the offline corpora (half Chinese reviews, half English tweets).
    unlabelled: list[Path] = field(default_factory=list)
    text_column: str = "text"
    corpus_texts: int = 0
    max_unlabelled: int = 50_000
    max_f1_loss: float = 0.01
    # The themes' gate alone let an 8-layer student of cx-default-v4 through while it lost
    # 0.020 sentiment accuracy; sentiment is half of what a user reads.
    max_sentiment_loss: float = 0.01
    # The theme loss sums 9 soft binary targets and the sentiment loss is one 3-way target, so
    # at weight 1 sentiment gets a small share of the student's gradient; the 8-layer student
    # of cx-default-v4 lost 0.020 sentiment accuracy at weight 1 and 0.003 macro F1.
    sentiment_loss_weight: float = 2.0
    # Weight of also matching the teacher's mean-pooled text embedding (relative squared
    # error): 384 numbers per text instead of 12. Off by default: at 1.0 it did not help the
    # 6-layer student of cx-default-v3 (test macro F1 0.742 against 0.744 without).
    pooled_loss_weight: float = 0.0
    # Share of the gold labels in the targets of the labelled training items (the rest is
    # the teacher's): a student then also learns where its teacher is wrong. 0: teacher only.
    label_weight: float = 0.0
    epochs: float = 3.0
    learning_rate: float = 1e-4
    head_learning_rate: float = 1e-4  # the heads start from the teacher's, not from scratch


def layers_to_keep(n_layers: int, n_keep: int) -> list[int]:
    """``n_keep`` evenly spaced layer indices out of ``n_layers``, the first and last included."""
    if not 1 <= n_keep <= n_layers:
        raise ValueError(f"student_layers must be between 1 and {n_layers}, got {n_keep}")
    if n_keep == 1:
        return [n_layers - 1]
    return sorted({int(round(x)) for x in np.linspace(0, n_layers - 1, n_keep)})


def make_student(teacher: nn.Module, n_keep: int) -> tuple[nn.Module, list[int]]:
    """A deep copy of a BERT-style ``ThemeClassifier`` keeping ``n_keep`` of its layers."""
    student = copy.deepcopy(teacher)
    stack = getattr(getattr(student.encoder, "encoder", None), "layer", None)
    if stack is None:
        raise ValueError(f"cannot take layers from {type(student.encoder).__name__}")
    keep = layers_to_keep(len(stack), n_keep)
    student.encoder.encoder.layer = nn.ModuleList([stack[i] for i in keep])
    student.encoder.config.num_hidden_layers = len(keep)
    for new_index, layer in enumerate(student.encoder.encoder.layer):
        # transformers 5 layers know their index (attention caches); keep it consistent.
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    return student, keep


@torch.no_grad()
def ffn_importance(model: nn.Module, batches: list[dict[str, torch.Tensor]]) -> list[torch.Tensor]:
    """For each transformer layer, each feed-forward neuron's contribution on the batches: its
    mean absolute activation over real (unpadded) tokens times the norm of its output weights,
    i.e. how far it moves the layer's output on average."""
    layers = model.encoder.encoder.layer
    sums = [torch.zeros(layer.intermediate.dense.out_features) for layer in layers]
    mask: list[torch.Tensor] = []  # the batch's token mask, read by the hooks

    def hook(index: int):
        def record(_module, _inputs, output):
            sums[index].add_((output.abs() * mask[0]).sum((0, 1)))

        return record

    handles = [layer.intermediate.register_forward_hook(hook(k)) for k, layer in enumerate(layers)]
    tokens = 0
    try:
        for batch in batches:
            mask[:] = [batch["attention_mask"].unsqueeze(-1).float()]
            model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            tokens += int(batch["attention_mask"].sum())
    finally:
        for handle in handles:
            handle.remove()
    return [
        total / max(tokens, 1) * layer.output.dense.weight.norm(dim=0)
        for total, layer in zip(sums, layers, strict=True)
    ]


def prune_ffn(model: nn.Module, n_keep: int, importance: list[torch.Tensor]) -> None:
    """Keep the ``n_keep`` most important feed-forward neurons of every layer (in place)."""
    config = model.encoder.config
    if not 1 <= n_keep <= config.intermediate_size:
        raise ValueError(
            f"student_ffn must be between 1 and {config.intermediate_size}, got {n_keep}"
        )
    for layer, scores in zip(model.encoder.encoder.layer, importance, strict=True):
        keep = torch.topk(scores, n_keep).indices.sort().values
        up, down = layer.intermediate.dense, layer.output.dense
        new_up = nn.Linear(up.in_features, n_keep, dtype=up.weight.dtype)
        new_down = nn.Linear(n_keep, down.out_features, dtype=down.weight.dtype)
        with torch.no_grad():
            new_up.weight.copy_(up.weight[keep])
            new_up.bias.copy_(up.bias[keep])
            new_down.weight.copy_(down.weight[:, keep])
            new_down.bias.copy_(down.bias)
        layer.intermediate.dense, layer.output.dense = new_up, new_down
    config.intermediate_size = n_keep  # the bundle's config.json rebuilds this shape


def unlabelled_texts(config: DistillConfig, exclude: set[str]) -> list[str]:
    """The unlabelled pool: de-duplicated, without any labelled text or a near copy of one
    (``exclude`` holds their normalised and near keys: dev and test stay unseen), capped at
    ``max_unlabelled``."""
    from service.batch.readers import Reader

    texts: list[str] = []
    for path in config.unlabelled:
        reader = Reader(path)
        if config.text_column not in reader.columns:
            raise ValueError(f"{path}: no column {config.text_column!r} (has {reader.columns})")
        for chunk in reader.chunks(4096):
            texts += [
                str(r.values.get(config.text_column) or "") for r in chunk if r.problem is None
            ]
    if config.corpus_texts:
        from training.corpora import real_texts

        texts += real_texts(config.corpus_texts, seed=config.seed)
    seen = set(exclude)
    pool = []
    for text in texts:
        key = normalise_for_dedup(text)
        # Near copies too ("Top!! 👍" of a test text "top"): the teacher's outputs on them
        # would teach the student its answers for dev and test texts.
        near = near_key(text)
        if key and key not in seen and (not near or near not in exclude):
            seen.add(key)
            pool.append(text)
    return pool[: config.max_unlabelled]


def existing_student(models_dir: str | Path, teacher: str | None, layers: int) -> str | None:
    """Why ``distill --if-missing`` has nothing to do, or None when a student should be made:
    the teacher (the current model when none is given) is itself a student, or a student of it
    with ``layers`` layers is already in ``models_dir``, current or a challenger that did not
    ship (distilling again would spend half an hour on the same recipe)."""
    teacher_path = resolve_model_path(teacher or None, models_dir)
    teacher_meta = read_meta(teacher_path)
    own = teacher_meta.get("distillation")
    if isinstance(own, dict):
        return f"{teacher_path.name} is itself a student (of {own.get('teacher')})"
    for entry in list_models(models_dir):
        made = entry.distillation
        if made.get("teacher") == teacher_meta.get("version") and (
            len(made.get("layers_kept") or []) == layers
        ):
            where = "current" if entry.current else "a challenger: cxthemes models compare"
            return f"{entry.version} is already a {layers}-layer student of it ({where})"
    return None


def distill(config: DistillConfig) -> tuple[Path, bool] | None:
    """Train a student of ``config.teacher``; return its bundle path and whether it shipped
    (None on non-main ranks of a distributed run)."""
    started = time.monotonic()
    check_schedule(config)
    models_dir = Path(config.models_dir)
    # The champion when the run begins: the student may replace it only if its teacher is it.
    champion = current_version(models_dir) if config.make_current else None
    teacher_path = resolve_model_path(config.teacher or None, models_dir)
    teacher_bundle = load_bundle(teacher_path, backend="torch")
    teacher_meta = teacher_bundle.meta
    extra_paths = [resolve_model_path(t, models_dir) for t in config.extra_teachers]
    extra_versions = [check_same_inputs(teacher_meta, path) for path in extra_paths]
    config.base_model = teacher_meta["base_model"]
    config.max_length = int(teacher_meta.get("max_length", config.max_length))
    taxonomy = load_taxonomy(config.taxonomy_path)
    if list(taxonomy.theme_ids) != list(teacher_bundle.theme_ids):
        raise ValueError(f"{teacher_path} was trained on other themes than {taxonomy.theme_ids}")
    # The gold labels are indices in the taxonomy's order, the teacher's outputs in its own.
    if list(taxonomy.sentiments) != teacher_bundle.sentiment_labels:
        raise ValueError(
            f"{teacher_path} orders its sentiments {teacher_bundle.sentiment_labels}, the "
            f"taxonomy {list(taxonomy.sentiments)}: distil with the taxonomy it was trained with"
        )
    items, problems = load_items(find_label_files(Path(config.labels)), taxonomy)
    if problems.errors:
        raise ValueError("labelled data has errors:\n" + "\n".join(problems.errors[:50]))
    if problems.unavailable:  # trained without them: say so, and which
        log.warning(
            "%d labelled texts left out: their source package is not installed (%s, ...)",
            len(problems.unavailable),
            problems.unavailable[0],
        )
    splits = split_items(items)
    if not splits["train"] or not splits["dev"]:
        raise ValueError(f"need train and dev items, got {[len(v) for v in splits.values()]}")
    set_seed(config.seed)
    version = config.version or f"{teacher_bundle.version}-student{config.student_layers}"
    protected = (Path(teacher_path).resolve().name,)
    # Checked before the teacher's targets are computed, and again once this run owns the
    # version (another run may have made it current meanwhile).
    check_new_version(models_dir, version, protected=protected)
    with version_run(models_dir, version) as work_dir:
        bundle_path = check_new_version(models_dir, version, protected=protected)

        labelled = {normalise_for_dedup(i.text) for i in items}
        labelled |= {near for i in items if (near := near_key(i.text))}
        pool = [i.text for i in splits["train"]] + unlabelled_texts(config, labelled)
        log.info("teacher %s: soft targets for %d texts", teacher_bundle.version, len(pool))
        # The teacher's fastest exact backend (fp32 ONNX when exported) labels the pool.
        prefix = teacher_meta.get("text_prefix", "")
        tokenizer = teacher_bundle.tokenizer
        targets = averaged_targets(
            [teacher_path, *extra_paths], pool, prefix, tokenizer, config.max_length
        )
        blend_gold_labels(targets, splits["train"], taxonomy, config.label_weight)

        student, kept = make_student(teacher_bundle.model, config.student_layers)
        teacher_ffn = teacher_bundle.model.encoder.config.intermediate_size
        if config.student_ffn and config.student_ffn != teacher_ffn:
            ranking = pool[:: max(1, len(pool) // config.ffn_ranking_texts)][
                : config.ffn_ranking_texts
            ]
            batches = [
                _encode(tokenizer, ranking[start : start + 32], prefix, config.max_length)
                for start in range(0, len(ranking), 32)
            ]
            prune_ffn(student, config.student_ffn, ffn_importance(student.eval(), batches))
        student.sentiment_loss_weight = config.sentiment_loss_weight
        if config.encoder_dropout is not None:
            student.set_encoder_dropout(config.encoder_dropout)
        frozen = student.freeze_embeddings() if config.freeze_embeddings else 0
        log.info(
            "student: layers %s of %d, feed-forward %d of %d, %d trainable parameters (frozen %d)",
            kept,
            teacher_bundle.model.encoder.config.num_hidden_layers,
            student.encoder.config.intermediate_size,
            teacher_ffn,
            sum(p.numel() for p in student.parameters() if p.requires_grad),
            frozen,
        )
        train_ds = token_dataset(
            pool,
            tokenizer,
            prefix,
            config.max_length,
            theme_labels=targets["themes"].tolist(),
            sentiment_labels=targets["sentiment"].tolist(),
            teacher_pooled=targets["pooled"].tolist(),
        )
        dev_ds = _dataset(splits["dev"], taxonomy, tokenizer, prefix, config.max_length)
        wrapped = _Student(student, config.pooled_loss_weight)
        trainer = fit(wrapped, tokenizer, train_ds, dev_ds, config, work_dir)
        if trainer is None:
            return None

        teacher_metrics = teacher_meta.get("metrics", {})
        same_data = same_evaluation_data(teacher_meta, items, splits)
        baselines = (
            {k: v for k, v in teacher_metrics.items() if k != "model"}
            if same_data
            else config.baselines
        )
        if same_data:
            teacher_model = teacher_metrics.get("model", {})
        else:
            # The labels or the splits changed since the teacher's card: its figures are for
            # another test split. Score it on this one, or the gate could never pass (or
            # would pass on figures from other items).
            log.info("teacher %s: scoring it on the current test split", teacher_bundle.version)
            teacher_model = evaluate_predictor(
                Predictor(teacher_bundle, max_length=config.max_length), splits["test"]
            )
        teacher_f1 = teacher_model.get("macro_f1")
        teacher_sentiment = teacher_model.get("sentiment", {}).get("accuracy")
        distillation = {
            "teacher": teacher_bundle.version,
            "extra_teachers": extra_versions,
            "teacher_layers": teacher_bundle.model.encoder.config.num_hidden_layers,
            "layers_kept": kept,
            "teacher_ffn": teacher_ffn,
            "student_ffn": student.encoder.config.intermediate_size,
            "soft_target_texts": len(pool),
            "unlabelled_texts": len(pool) - len(splits["train"]),
            "teacher_macro_f1": teacher_f1,
            "teacher_sentiment_accuracy": teacher_sentiment,
            "max_f1_loss": config.max_f1_loss,
            "max_sentiment_loss": config.max_sentiment_loss,
            "sentiment_loss_weight": config.sentiment_loss_weight,
            "label_weight": config.label_weight,
        }

        def gate(meta: dict) -> None:
            """Record the student's figures and whether it ships, before the bundle is written."""
            student = meta["metrics"].get("model", {})
            student_f1 = student.get("macro_f1")
            student_sentiment = student.get("sentiment", {}).get("accuracy")
            distillation["student_macro_f1"] = student_f1
            distillation["student_sentiment_accuracy"] = student_sentiment
            distillation["ships"] = (
                None not in (teacher_f1, student_f1, teacher_sentiment, student_sentiment)
                and teacher_f1 - student_f1 <= config.max_f1_loss
                and teacher_sentiment - student_sentiment <= config.max_sentiment_loss
            )

        write_bundle(
            trainer.model.student.to("cpu").eval(),
            tokenizer,
            config,
            taxonomy,
            items,
            splits,
            prefix,
            bundle_path,
            train_seconds=time.monotonic() - started,
            best_metric=_finite(trainer.state.best_metric),
            baselines=baselines,
            extra_meta={"distillation": distillation},
            before_save=gate,
        )
        ships, student_f1 = distillation["ships"], distillation["student_macro_f1"]
        if ships and config.make_current:
            _make_current(models_dir, bundle_path, champion, teacher_path)
        log.info(
            "wrote %s in %.0f s: macro F1 %s (teacher %s); %s",
            bundle_path,
            time.monotonic() - started,
            student_f1,
            teacher_f1,
            "ships" if ships else "does not ship",
        )
        return bundle_path, ships


def _make_current(models_dir: Path, bundle_path: Path, champion: str | None, teacher: Path) -> None:
    """Make a student that ships current if the champion rule allows it (its teacher was the
    champion ``champion``, or there was none) and no other model became current meanwhile;
    otherwise it stays a challenger."""
    if not may_become_current(models_dir, champion, teacher):
        log.info(
            "%s stays a challenger: its teacher is not the current model %s; compare and "
            "promote it with cxthemes models promote %s",
            bundle_path.name,
            champion,
            bundle_path.name,
        )
        return
    if not set_current_unless_changed(models_dir, bundle_path.name, "distill", champion):
        log.warning(
            "%s stays a challenger: the current model changed while it was distilled",
            bundle_path.name,
        )


def check_same_inputs(teacher_meta: dict, path: Path) -> str:
    """The version of the bundle at ``path`` if its outputs can be averaged with the
    teacher's: the same themes and sentiments, base model (tokenizer), text prefix and
    maximum length; a ValueError naming the difference otherwise."""
    meta = read_meta(path)
    for key in ("theme_ids", "sentiment_labels", "base_model", "text_prefix", "max_length"):
        if meta.get(key) != teacher_meta.get(key):
            raise ValueError(
                f"{path}: its {key} {meta.get(key)!r} differs from the teacher's "
                f"{teacher_meta.get(key)!r}; only models of the same inputs can be averaged"
            )
    return meta["version"]


def averaged_targets(
    teacher_paths: list[Path], texts: list[str], prefix: str, tokenizer, max_length: int
) -> dict[str, np.ndarray]:
    """The mean of the teachers' theme probabilities and sentiment distributions for each
    text (see :func:`teacher_targets`). The pooled embedding stays the first teacher's: the
    student is cut from it, and other models' embedding spaces need not line up with it."""
    targets = teacher_targets(teacher_paths[0], texts, prefix, tokenizer, max_length)
    for path in teacher_paths[1:]:
        more = teacher_targets(path, texts, prefix, tokenizer, max_length)
        targets["themes"] += more["themes"]
        targets["sentiment"] += more["sentiment"]
    targets["themes"] /= len(teacher_paths)
    targets["sentiment"] /= len(teacher_paths)
    return targets


def _encode(tokenizer, texts: list[str], prefix: str, max_length: int):
    """One padded batch of prefixed, truncated texts, as the student trains on them."""
    return tokenizer(
        [prefix + t for t in texts],
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )


def blend_gold_labels(
    targets: dict[str, np.ndarray], labelled: list, taxonomy, weight: float
) -> None:
    """Mix the gold labels of ``labelled`` (the first rows of ``targets``) into the teacher's
    theme probabilities and sentiment distributions, in place, with share ``weight``."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"label_weight must be between 0 and 1, got {weight}")
    if not weight or not labelled:
        return
    themes, sentiments = label_arrays(labelled, taxonomy)
    n = len(labelled)
    gold_sentiment = np.eye(targets["sentiment"].shape[1], dtype=np.float32)[sentiments]
    targets["themes"][:n] = (1 - weight) * targets["themes"][:n] + weight * themes
    targets["sentiment"][:n] = (1 - weight) * targets["sentiment"][:n] + weight * gold_sentiment


@torch.no_grad()
def teacher_targets(
    teacher_path: Path, texts: list[str], prefix: str, tokenizer, max_length: int
) -> dict[str, np.ndarray]:
    """The teacher's theme probabilities, sentiment distribution and mean-pooled embedding
    for each text, on the same truncated tokens the student trains on. Uses the exact fp32
    ONNX graph when the bundle has one (faster on a CPU), else the torch model."""
    from service.backends import ONNX_DIR, ONNX_FP32

    backend = "onnx-fp32" if (teacher_path / ONNX_DIR / ONNX_FP32).is_file() else "torch"
    model = load_bundle(teacher_path, backend=backend).model
    order = np.argsort([len(t) for t in texts], kind="stable")
    parts: dict[str, list] = {"themes": [], "sentiment": [], "pooled": []}
    for start in tqdm(range(0, len(texts), 32), desc="teacher targets", unit="batch"):
        idx = order[start : start + 32]
        enc = _encode(tokenizer, [texts[i] for i in idx], prefix, max_length)
        res = model(enc["input_ids"], enc["attention_mask"], return_hidden=True)
        parts["themes"].append(torch.sigmoid(res["theme_logits"]).numpy())
        parts["sentiment"].append(torch.softmax(res["sentiment_logits"], -1).numpy())
        parts["pooled"].append(mean_pool(res["hidden"], enc["attention_mask"]).numpy())
    inverse = np.argsort(order, kind="stable")
    return {k: np.concatenate(v).astype(np.float32)[inverse] for k, v in parts.items()}


class _Student(nn.Module):
    """The student during training: its own losses against the soft targets, plus the
    relative squared distance of its pooled embedding to the teacher's."""

    def __init__(self, student: nn.Module, pooled_weight: float) -> None:
        super().__init__()
        self.student = student
        self.pooled_weight = pooled_weight

    def heads(self) -> nn.ModuleList:
        """The student's output layers (the optimizer's parameter groups ask for them)."""
        return self.student.heads()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        theme_labels: torch.Tensor | None = None,
        sentiment_labels: torch.Tensor | None = None,
        teacher_pooled: torch.Tensor | None = None,
        **_: object,
    ) -> dict[str, torch.Tensor]:
        out = self.student(
            input_ids=input_ids,
            attention_mask=attention_mask,
            theme_labels=theme_labels,
            sentiment_labels=sentiment_labels,
            return_hidden=True,
        )
        hidden = out.pop("hidden")
        if teacher_pooled is not None and "loss" in out and self.pooled_weight:
            pooled = mean_pool(hidden, attention_mask)
            error = (pooled - teacher_pooled).pow(2).sum(-1) / teacher_pooled.pow(2).sum(-1)
            out["loss"] = out["loss"] + self.pooled_weight * error.mean()
        return out
