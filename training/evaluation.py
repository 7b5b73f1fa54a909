"""``cxthemes evaluate``: a model and both baselines on the same data, side by side."""

from __future__ import annotations

from pathlib import Path

from service.bundle import load_bundle
from service.predictor import Predictor
from service.taxonomy import load_taxonomy
from training.card import comparison_table, language_table, origin_table
from training.data import find_label_files, load_items, split_items
from training.train import evaluate_predictor


def evaluate(
    model_path: str | Path,
    data: Path | None,
    labels: Path,
    baselines: bool = True,
    batch_size: int = 32,
    taxonomy_path: Path | None = None,
) -> dict:
    """Figures for the model on ``data`` (default: the frozen test split of ``labels``).

    The baselines are trained on the train split of ``labels``, tuned on its dev split, and
    scored on the same evaluation items as the model.
    """
    taxonomy = load_taxonomy(taxonomy_path)
    items, problems = load_items(find_label_files(labels), taxonomy)
    if problems.errors:
        raise ValueError("labelled data has errors:\n" + "\n".join(problems.errors[:20]))
    splits = split_items(items)
    if data is not None:
        eval_items, eval_problems = load_items([data], taxonomy)
        if eval_problems.errors:
            raise ValueError(f"{data} has errors:\n" + "\n".join(eval_problems.errors[:20]))
    else:
        eval_items = splits["test"]
    if not eval_items:
        raise ValueError("nothing to evaluate on")
    bundle = load_bundle(model_path)
    predictor = Predictor(bundle, batch_size=batch_size, evidence=False)
    metrics = {"model": evaluate_predictor(predictor, eval_items, taxonomy)}
    if baselines:
        from training.baselines import run_baselines

        metrics.update(
            run_baselines(
                {"train": splits["train"], "dev": splits["dev"], "test": eval_items},
                taxonomy,
                bundle.meta["base_model"],
                bundle.meta.get("text_prefix", ""),
            )
        )
    return {
        "model_version": bundle.version,
        "data": str(data) if data else "frozen test split",
        "n": len(eval_items),
        "theme_ids": taxonomy.theme_ids,
        "metrics": metrics,
    }


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
