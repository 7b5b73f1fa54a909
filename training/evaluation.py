"""``cxthemes evaluate``: a model and both baselines on the same data, side by side."""

from __future__ import annotations

import logging
from pathlib import Path

from service.bundle import load_bundle
from service.predictor import Predictor
from service.taxonomy import load_taxonomy
from training.base_model import looks_local
from training.card import comparison_table, language_table, origin_table
from training.data import find_label_files, load_items, split_items
from training.train import evaluate_predictor

log = logging.getLogger(__name__)


def evaluate(
    model_path: str | Path,
    data: Path | None,
    labels: Path,
    baselines: bool = True,
    batch_size: int = 32,
    taxonomy_path: Path | None = None,
    base_model: str | None = None,
) -> dict:
    """Figures for the model on ``data`` (default: the frozen test split of ``labels``).

    The baselines are trained on the train split of ``labels``, tuned on its dev split, and
    scored on the same evaluation items as the model; the zero-shot one embeds with the
    model's base model (``base_model``, the setting, where the bundle's is not found here).
    Texts that ``data`` repeats are evaluated once, and listed under ``duplicates``.
    """
    taxonomy = load_taxonomy(taxonomy_path)
    items, problems = load_items(find_label_files(labels), taxonomy)
    if problems.errors:
        raise ValueError("labelled data has errors:\n" + "\n".join(problems.errors[:20]))
    splits = split_items(items)
    duplicates: list[str] = []
    if data is not None:
        eval_items, eval_problems = load_items([data], taxonomy)
        if eval_problems.errors:
            raise ValueError(f"{data} has errors:\n" + "\n".join(eval_problems.errors[:20]))
        duplicates = eval_problems.duplicates
    else:
        eval_items = splits["test"]
    if not eval_items:
        raise ValueError("nothing to evaluate on")
    bundle = load_bundle(model_path)
    predictor = Predictor(bundle, batch_size=batch_size, evidence=False)
    metrics = {"model": evaluate_predictor(predictor, eval_items)}
    if baselines:
        from training.baselines import run_baselines

        encoder = baseline_base_model(bundle.meta.get("base_model"), base_model)
        try:
            metrics.update(
                run_baselines(
                    {"train": splits["train"], "dev": splits["dev"], "test": eval_items},
                    taxonomy,
                    encoder,
                    bundle.meta.get("text_prefix", ""),
                )
            )
        except OSError as exc:  # not found locally, and no hub to download it from
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(
                f"the zero-shot baseline cannot load the base model {encoder} ({first}); set "
                "CXTHEMES_BASE_MODEL to it, or pass --no-baselines"
            ) from exc
    result = {
        "model_version": bundle.version,
        "data": str(data) if data else "frozen test split",
        "n": len(eval_items),
        "theme_ids": taxonomy.theme_ids,
        "metrics": metrics,
    }
    if duplicates:
        result["duplicates"] = duplicates
    return result


def baseline_base_model(recorded: str | None, setting: str | None) -> str:
    """The base model for the zero-shot baseline: the one the bundle records, unless that is
    a local path not found here (it was relative to where training ran), then ``setting``."""
    if not recorded:
        return setting or ""
    if setting and setting != recorded and looks_local(recorded) and not Path(recorded).exists():
        log.warning(
            "the bundle's base model %s is not found here; the zero-shot baseline uses %s",
            recorded,
            setting,
        )
        return setting
    return recorded


def format_result(result: dict) -> str:
    """The evaluation as Markdown tables (per theme, per language, per origin)."""
    origins = origin_table(result["metrics"])
    return "\n".join(
        [
            f"model {result['model_version']} on {result['data']} ({result['n']} items)",
            "",
            comparison_table(result["metrics"], result["theme_ids"]),
            "",
            "macro F1 per language:",
            "",
            language_table(result["metrics"]),
        ]
        + (["", "macro F1 per origin of the texts:", "", origins] if origins else [])
    )
