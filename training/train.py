"""Fine-tuning: one encoder, a multi-label theme head and a sentiment head, trained together.

Built on the Hugging Face ``Trainer`` so the same code runs on one CPU, one GPU, or several
GPUs and nodes under ``accelerate launch`` / ``torchrun``. The dev split drives early stopping
and the per-theme thresholds; the test split is never seen until the final evaluation.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoTokenizer,
    EarlyStoppingCallback,
    PrinterCallback,
    ProgressCallback,
    Trainer,
    TrainingArguments,
    set_seed,
)

from service.bundle import Bundle, save_bundle
from service.locks import claim
from service.modeling import ThemeClassifier, load_encoder
from service.predictor import Predictor
from service.registry import check_new_version, set_current_unless_changed
from service.taxonomy import Taxonomy, load_taxonomy, taxonomy_text
from training.base_model import is_e5
from training.data import (
    Item,
    find_label_files,
    fingerprint,
    label_arrays,
    load_items,
    origin_of,
    split_items,
    theme_matrix,
)
from training.metrics import full_report, macro_f1_present, sentiment_report, tune_thresholds
from training.splits import text_key

log = logging.getLogger(__name__)

# e5 was trained with these prefixes; other encoders get none.
E5_PREFIX = "query: "
_MIN_TEST_ITEMS_FOR_LANGUAGE = 10


@dataclass
class TrainConfig:
    """Hyper-parameters and paths of one training run (recorded in the bundle)."""

    base_model: str
    labels: Path
    models_dir: Path = Path("models")
    epochs: float = 4.0
    learning_rate: float = 1.5e-4
    head_learning_rate: float = 3e-3
    batch_size: int = 16
    max_length: int = 128
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    dropout: float = 0.1
    # Encoder dropout: 0 trains ~20% faster on a CPU and fits better in 4 epochs; None keeps it.
    encoder_dropout: float | None = 0.0
    # 29, not 13: of the two seeds tried on labels v2.3, 29 had the better dev score (test
    # macro F1 0.805 against 0.791, bench/RESULTS.md), so `make run` trains the served model.
    seed: int = 29
    # Several seeds: train one model per seed and keep the one with the best dev selection
    # score (seed variance is about 0.014 test macro F1 here; bench/RESULTS.md). Empty: ``seed``.
    seeds: tuple[int, ...] = ()
    freeze_embeddings: bool = True
    freeze_layers: int = 0
    patience: int = 2
    max_steps: int = -1
    text_prefix: str | None = None
    version: str | None = None
    make_current: bool = True
    # The current model when the run began, which the new one may replace (None: there was
    # none, so this is the first model). Ellipsis: replace whatever is current (`--promote`).
    replacing: str | None | object = ...
    baselines: bool = True
    taxonomy_path: Path | None = None  # default: labels/taxonomy.yaml
    extra: dict = field(default_factory=dict)


class VersionBusyError(ValueError):
    """Another process is training (or distilling) the same version right now."""


def _is_main_process() -> bool:
    """Not a secondary rank of a ``torchrun`` / ``accelerate launch`` run (those share the
    main process's version and work folder, which only the main process owns)."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def version_run(models_dir: Path, version: str) -> Iterator[Path]:
    """Own ``version`` for one training run: hold its lock (a second run of the same version
    fails at once with :class:`VersionBusyError`), yield the run's work folder
    (``.checkpoints/<version>``) and, however the run ends (done, failed or interrupted),
    remove the work folder, a half-written ``<version>.partial`` bundle and the lock.
    A secondary rank of a distributed run takes no lock and removes nothing."""
    checkpoints = Path(models_dir) / ".checkpoints"
    work_dir = checkpoints / version
    if not _is_main_process():
        yield work_dir
        return

    def busy() -> VersionBusyError:
        return VersionBusyError(
            f"version {version} is being trained by another process; wait for it to "
            "finish or choose another --version"
        )

    try:
        with claim(checkpoints / f"{version}.lock", busy, make_parent=True):
            try:
                yield work_dir
            finally:
                shutil.rmtree(work_dir, ignore_errors=True)
                shutil.rmtree(Path(models_dir) / f"{version}.partial", ignore_errors=True)
    finally:
        with contextlib.suppress(OSError):  # not empty: other runs' work or locks
            checkpoints.rmdir()


def check_schedule(config: TrainConfig) -> None:
    """``ValueError`` for a run that would train nothing or not as asked: no steps and no
    positive number of epochs, a step limit that is neither positive nor -1 (not set), or
    batches of fewer than one item (the CLI refuses these as it parses)."""
    if config.batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {config.batch_size}")
    # The Trainer takes any max_steps <= 0 as "no limit" and trains by epochs: a 0 meant as
    # "no steps" (or a typo) would silently train for hours.
    if config.max_steps == 0 or config.max_steps < -1:
        raise ValueError(
            f"max_steps must be at least 1 (or -1: train by epochs), got {config.max_steps}"
        )
    if config.max_steps <= 0 and not config.epochs > 0:
        raise ValueError(f"epochs must be more than 0, got {config.epochs}")


def _finite(value: float | None) -> float | None:
    """``value`` if it is a finite number, else None (bundle.json is JSON: no NaN or inf)."""
    return value if value is not None and math.isfinite(value) else None


class LossProgressCallback(ProgressCallback):
    """The training bar shows the latest loss beside tqdm's ETA instead of printing dicts."""

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D102
        if state.is_world_process_zero and self.training_bar is not None and logs:
            shown = {k: f"{v:.4g}" for k, v in logs.items() if k in ("loss", "eval_selection")}
            if shown:
                self.training_bar.set_postfix(shown, refresh=False)


def _prefix_for(base_model: str, configured: str | None) -> str:
    """The text prefix for ``base_model``: the configured one, else e5's for an e5 model (by
    what the model says it is, not by the name of its folder), else none. A bundle records
    the prefix it was trained with, so this never changes how a trained model is served."""
    if configured is not None:
        return configured
    return E5_PREFIX if is_e5(base_model) else ""


class _Collator:
    """Pads token ids per batch and stacks every other column (labels, teacher targets)."""

    _TOKENS = ("input_ids", "attention_mask", "length")

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer.pad(
            [
                {"input_ids": f["input_ids"], "attention_mask": f["attention_mask"]}
                for f in features
            ],
            return_tensors="pt",
        )
        for key in features[0]:
            if key not in self._TOKENS:
                batch[key] = torch.tensor([f[key] for f in features])
        return batch


def token_dataset(texts: list[str], tokenizer, prefix: str, max_length: int, **columns):
    """A ``datasets.Dataset`` of the texts' token ids (truncated) and the given columns."""
    from datasets import Dataset

    enc = tokenizer([prefix + t for t in texts], truncation=True, max_length=max_length)
    return Dataset.from_dict(
        {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "length": [len(x) for x in enc["input_ids"]],
            **columns,
        }
    )


def _dataset(items: list[Item], taxonomy: Taxonomy, tokenizer, prefix: str, max_length: int):
    themes, sentiments = label_arrays(items, taxonomy)
    return token_dataset(
        [i.text for i in items],
        tokenizer,
        prefix,
        max_length,
        theme_labels=themes.astype(np.float32).tolist(),
        sentiment_labels=sentiments.tolist(),
    )


def _optimizer(model: ThemeClassifier, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with a higher learning rate for the freshly initialised heads.

    Adam moves each weight by about the learning rate per step, so at the encoder's 1e-4 the
    heads would need thousands of steps to reach useful logits.
    """
    head_ids = {id(p) for p in model.heads().parameters()}
    decay, no_decay, heads = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if id(param) in head_ids:
            heads.append(param)
        elif param.ndim < 2 or "LayerNorm" in name:
            no_decay.append(param)
        else:
            decay.append(param)
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
            {"params": heads, "lr": config.head_learning_rate, "weight_decay": 0.0},
        ],
        lr=config.learning_rate,
    )


def _selection_metrics(eval_pred) -> dict[str, float]:
    """Dev figures for early stopping: theme macro F1 at tuned thresholds and sentiment F1."""
    (theme_logits, sent_logits), (theme_true, sent_true) = (
        eval_pred.predictions,
        eval_pred.label_ids,
    )
    probs = 1 / (1 + np.exp(-theme_logits))
    thresholds = tune_thresholds(theme_true, probs)
    theme_f1 = macro_f1_present(theme_true.astype(int), (probs >= thresholds).astype(int))
    sent = sentiment_report(sent_true, sent_logits.argmax(-1), ["0", "1", "2"])
    return {
        "theme_macro_f1": theme_f1,
        "sentiment_macro_f1": sent["macro_f1"],
        "selection": 0.7 * theme_f1 + 0.3 * sent["macro_f1"],
    }


def predict_decisions(predictor: Predictor, items: list[Item]) -> tuple[np.ndarray, np.ndarray]:
    """The predictor's theme decisions (items x its themes, 0/1, its thresholds) and
    sentiment indices on ``items``."""
    return decide(predictor, *predictor.predict_proba([i.text for i in items]))


def decide(
    predictor: Predictor, probs: np.ndarray, sent_probs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Theme decisions at the predictor's thresholds and sentiment indices from its scores."""
    return (probs >= predictor.thresholds).astype(int), sent_probs.argmax(-1)


def dev_tuned_predictor(
    bundle: Bundle, dev: list[Item], taxonomy: Taxonomy, max_length: int
) -> Predictor:
    """A predictor of ``bundle`` with each theme's threshold tuned for its F1 on ``dev``."""
    predictor = Predictor(bundle, batch_size=64, max_length=max_length, evidence=False)
    dev_true, _ = label_arrays(dev, taxonomy)
    dev_probs, _ = predictor.predict_proba([i.text for i in dev])
    predictor.thresholds = tune_thresholds(dev_true, dev_probs)
    return predictor


def evaluate_predictor(
    predictor: Predictor,
    items: list[Item],
    decisions: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Full figures for a predictor (thresholds from its bundle) on ``items``, over the
    predictor's own themes (an older model may not know a theme added since) and its own
    sentiment labels, matched to the gold ones by name. ``decisions`` (from
    :func:`predict_decisions`) saves predicting again."""
    theme_pred, sent_pred = decisions or predict_decisions(predictor, items)
    return full_report(
        theme_matrix(items, predictor.theme_ids),
        theme_pred,
        sentiment_indices(items, predictor.sentiments),
        sent_pred,
        [i.lang for i in items],
        predictor.theme_ids,
        list(predictor.sentiments),
        [origin_of(i.source) for i in items],
    )


def sentiment_indices(items: list[Item], labels: list[str]) -> np.ndarray:
    """The items' gold sentiments as indices into ``labels``, a model's own order (its
    ``sentiment_labels``), which need not be the current taxonomy's: predictions are indices
    in the model's order, so gold must be too. ``ValueError`` for a sentiment it lacks."""
    unknown = sorted({i.sentiment for i in items} - set(labels))
    if unknown:
        raise ValueError(f"the model has no sentiment {unknown} (it knows {labels})")
    return np.array([labels.index(i.sentiment) for i in items], dtype=np.int64)


def train(config: TrainConfig) -> Path | None:
    """Train, tune thresholds, evaluate on the frozen test split and write a bundle.

    Returns the bundle's path; in a distributed run only the main process writes the bundle,
    and the other processes return None.
    """
    started = time.monotonic()
    check_schedule(config)
    taxonomy = load_taxonomy(config.taxonomy_path)
    items, problems = load_items(find_label_files(Path(config.labels)), taxonomy)
    if problems.errors:
        raise ValueError("labelled data has errors:\n" + "\n".join(problems.errors[:50]))
    if problems.unavailable:  # trained without them: say so, and which
        log.warning(
            "%d labelled texts left out: their source package is not installed (%s, ...)",
            len(problems.unavailable),
            problems.unavailable[0],
        )
    for duplicate in problems.duplicates:
        log.warning("%s", duplicate)
    splits = split_items(items)
    if not splits["train"] or not splits["dev"]:
        raise ValueError(f"need train and dev items, got {[len(v) for v in splits.values()]}")
    prefix = _prefix_for(config.base_model, config.text_prefix)
    version = config.version or datetime.now(UTC).strftime("cx-%Y%m%d-%H%M%S")
    models_dir = Path(config.models_dir)
    # save_bundle replaces a folder by removing it first: checked before hours of training,
    # and again once this run owns the version (another may have made it current meanwhile).
    check_new_version(models_dir, version)
    with version_run(models_dir, version) as work_dir:
        bundle_path = check_new_version(models_dir, version)

        tokenizer = AutoTokenizer.from_pretrained(config.base_model)
        train_ds = _dataset(splits["train"], taxonomy, tokenizer, prefix, config.max_length)
        dev_ds = _dataset(splits["dev"], taxonomy, tokenizer, prefix, config.max_length)
        seeds = list(config.seeds) or [config.seed]
        if len(seeds) > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ValueError("a seed search runs on one process; launch one run per seed instead")

        best: tuple[float, int, torch.nn.Module] | None = None
        runs: list[dict] = []
        for seed in seeds:
            set_seed(seed)
            model = _new_model(config, taxonomy, splits["train"])
            run_dir = work_dir / f"seed-{seed}" if len(seeds) > 1 else work_dir
            trainer = fit(model, tokenizer, train_ds, dev_ds, replace(config, seed=seed), run_dir)
            if trainer is None:
                return None
            model, score = trainer.model.to("cpu").eval(), _finite(trainer.state.best_metric)
            if len(seeds) > 1:
                run = {"seed": seed, "best_dev_selection": score}
                run.update(_test_figures(model, tokenizer, splits, taxonomy, prefix, config))
                runs.append(run)
                log.info("seed %d: %s", seed, run)
            if best is None or (score is not None and score > best[0]):
                best = (score if score is not None else float("-inf"), seed, model)
            del trainer
        assert best is not None
        _, chosen_seed, model = best
        extra_meta = {}
        if runs:
            extra_meta["seed_search"] = {
                "chosen_seed": chosen_seed,
                "chosen_by": "dev",
                "runs": runs,
            }
        write_bundle(
            model,
            tokenizer,
            replace(config, seed=chosen_seed),
            taxonomy,
            items,
            splits,
            prefix,
            bundle_path,
            train_seconds=time.monotonic() - started,
            best_metric=_finite(best[0]),
            baselines=config.baselines,
            extra_meta=extra_meta,
        )
        if config.make_current and not set_current_unless_changed(
            models_dir, bundle_path.name, "train", config.replacing
        ):
            log.warning(
                "%s stays a challenger: the current model changed while it trained",
                bundle_path.name,
            )
        log.info("wrote %s in %.0f s", bundle_path, time.monotonic() - started)
        return bundle_path


def _new_model(config: TrainConfig, taxonomy: Taxonomy, train_items: list[Item]) -> ThemeClassifier:
    """A fresh classifier on the base encoder, with the configured dropout and frozen parts
    (the heads' initialisation draws from the current random seed)."""
    encoder = load_encoder(config.base_model)
    model = ThemeClassifier(
        encoder, len(taxonomy.theme_ids), len(taxonomy.sentiments), dropout=config.dropout
    )
    if config.encoder_dropout is not None:
        model.set_encoder_dropout(config.encoder_dropout)
    model.init_theme_bias(label_arrays(train_items, taxonomy)[0].mean(0))
    frozen = model.freeze_embeddings() if config.freeze_embeddings else 0
    frozen += model.freeze_lower_layers(config.freeze_layers)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("trainable parameters: %d (frozen: %d)", trainable, frozen)
    return model


def _test_figures(
    model: torch.nn.Module,
    tokenizer,
    splits: dict[str, list[Item]],
    taxonomy: Taxonomy,
    prefix: str,
    config: TrainConfig,
) -> dict[str, float]:
    """Test macro F1 and sentiment accuracy of one run of a seed search, at thresholds tuned
    on dev as its bundle would have them: reported beside the choice, never used for it."""
    if not splits["test"]:
        return {}
    meta = {
        "version": "seed-run",
        "theme_ids": taxonomy.theme_ids,
        "sentiment_labels": list(taxonomy.sentiments),
        "thresholds": {t: 0.5 for t in taxonomy.theme_ids},
        "text_prefix": prefix,
        "max_length": config.max_length,
        "pooling": "mean",
    }
    bundle = Bundle(path=Path("."), meta=meta, model=model, tokenizer=tokenizer)
    predictor = dev_tuned_predictor(bundle, splits["dev"], taxonomy, config.max_length)
    report = evaluate_predictor(predictor, splits["test"])
    return {
        "test_macro_f1": report["macro_f1"],
        "test_sentiment_accuracy": report["sentiment"]["accuracy"],
    }


def fit(model, tokenizer, train_ds, dev_ds, config: TrainConfig, work_dir: Path) -> Trainer | None:
    """Run the Trainer (early stopping on dev, best epoch kept); None on non-main ranks.

    ``train_ds`` labels may be hard (0/1 themes, a sentiment index) or soft (probabilities
    for each theme and sentiment, as a teacher gives them): the model's losses take both.
    """
    args = TrainingArguments(
        output_dir=str(work_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=64,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_only_model=True,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="selection",
        greater_is_better=True,
        train_sampling_strategy="group_by_length",
        label_names=["theme_labels", "sentiment_labels"],
        logging_steps=5,
        report_to=[],
        seed=config.seed,
        data_seed=config.seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        # Under torchrun/accelerate without GPUs the processes talk over gloo (NCCL needs CUDA).
        ddp_backend=None if torch.cuda.is_available() or "LOCAL_RANK" not in os.environ else "gloo",
        disable_tqdm=True,  # LossProgressCallback draws the bar
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=dev_ds,
        data_collator=_Collator(tokenizer),
        compute_metrics=_selection_metrics,
        optimizers=(_optimizer(model, config), None),  # Trainer adds the warm-up/decay schedule
        callbacks=[EarlyStoppingCallback(config.patience), LossProgressCallback()],
    )
    trainer.remove_callback(PrinterCallback)  # the bar shows the loss; no dict per log step
    trainer.train()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # Training was the only collective work: release NCCL/gloo so every rank exits cleanly
        # while the main process goes on to evaluate and write the bundle alone.
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return trainer if trainer.is_world_process_zero() else None


def _plain(value):
    """Paths (alone or in lists) as strings, for bundle.json."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _label_file_names(labels: Path) -> list[str]:
    """The label files training read, as paths relative to ``labels`` (its name if a file)."""
    if labels.is_file():
        return [labels.name]
    return [p.relative_to(labels).as_posix() for p in find_label_files(labels)]


def split_fingerprint(splits: dict[str, list[Item]]) -> str:
    """A hash of which split each item is in (not of the order): ``labels/splits.tsv`` can
    move items between splits without changing the labelled content, which is all
    :func:`fingerprint` covers."""
    digest = hashlib.sha256()
    keys = (f"{text_key(i.text)}\t{split}" for split, part in splits.items() for i in part)
    for key in sorted(keys):
        digest.update(key.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def same_evaluation_data(meta: dict, items: list[Item], splits: dict[str, list[Item]]) -> bool:
    """Whether the figures recorded in a bundle's ``meta`` (its test figures, its baselines)
    were computed on exactly ``items`` split exactly as ``splits``, so they can be reused:
    the same labelled content and the same split of every item. A bundle written before its
    split was recorded never matches."""
    data = meta.get("training_data") or {}
    return data.get("fingerprint") == fingerprint(items) and data.get(
        "splits_fingerprint"
    ) == split_fingerprint(splits)


def write_bundle(
    model: torch.nn.Module,
    tokenizer,
    config: TrainConfig,
    taxonomy: Taxonomy,
    items: list[Item],
    splits: dict[str, list[Item]],
    prefix: str,
    bundle_path: Path,
    train_seconds: float,
    best_metric: float | None,
    baselines: bool | dict = True,
    extra_meta: dict | None = None,
    before_save: Callable[[dict], None] | None = None,
) -> dict:
    """Tune thresholds on dev, evaluate on the frozen test split, write the bundle and its
    card; return the bundle's metadata. ``baselines``: run them, skip them, or reuse the
    given figures (a distilled student shares its teacher's data and baselines).
    ``before_save`` may amend the metadata once the figures are in (a student's gate)."""
    meta = {
        "version": bundle_path.name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "taxonomy_version": taxonomy.version,
        "theme_ids": taxonomy.theme_ids,
        "sentiment_labels": list(taxonomy.sentiments),
        "thresholds": {t: 0.5 for t in taxonomy.theme_ids},
        "base_model": config.base_model,
        "text_prefix": prefix,
        "max_length": config.max_length,
        "pooling": "mean",
        "training_data": {
            "fingerprint": fingerprint(items),
            "splits_fingerprint": split_fingerprint(splits),
            # Relative to the labels folder: a shared bundle should not carry the trainer's
            # directory layout.
            "files": _label_file_names(Path(config.labels)),
            "n_items": len(items),
            **{f"n_{k}": len(v) for k, v in splits.items()},
        },
        "hyperparameters": {
            k: _plain(v)
            for k, v in asdict(config).items()
            if k
            not in (
                "labels",
                "models_dir",
                "version",
                "make_current",
                "replacing",
                "baselines",
                "taxonomy_path",
            )
        },
        "training_seconds": round(train_seconds, 1),
        "best_dev_selection": best_metric,
        **(extra_meta or {}),
    }
    bundle = Bundle(path=bundle_path, meta=meta, model=model, tokenizer=tokenizer)
    predictor = dev_tuned_predictor(bundle, splits["dev"], taxonomy, config.max_length)
    thresholds = predictor.thresholds
    meta["thresholds"] = {t: float(thresholds[k]) for k, t in enumerate(taxonomy.theme_ids)}

    test = splits["test"]
    metrics: dict = {}
    if test:
        metrics["model"] = evaluate_predictor(predictor, test)
    meta["languages"] = sorted(
        lang
        for lang, n in Counter(i.lang for i in test).items()
        if n >= _MIN_TEST_ITEMS_FOR_LANGUAGE
    )
    if isinstance(baselines, dict):
        metrics.update(baselines)
    elif baselines and test:
        from training.baselines import run_baselines

        metrics.update(run_baselines(splits, taxonomy, config.base_model, prefix))
    meta["metrics"] = metrics
    if before_save is not None:
        before_save(meta)

    from training.card import render_card

    save_bundle(
        bundle_path,
        model,
        tokenizer,
        meta,
        card=render_card(meta),
        taxonomy_text=taxonomy_text(config.taxonomy_path),
    )
    return meta
