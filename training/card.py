"""The model card (``README.md`` in each bundle) and the evaluation tables shared with
``cxthemes evaluate``."""

from __future__ import annotations

from typing import Any

SYSTEMS = (("model", "model"), ("tfidf", "TF-IDF"), ("zero_shot", "zero-shot"))


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def comparison_table(metrics: dict[str, Any], theme_ids: list[str]) -> str:
    """Per-theme F1 (and model P/R/support), then the summary rows, as a Markdown table."""
    systems = [(key, name) for key, name in SYSTEMS if key in metrics]
    head = ["theme", "P", "R", "support"] + [f"F1 {name}" for _, name in systems]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    model = metrics.get("model") or next(iter(metrics.values()))
    for t in theme_ids:
        # A model older than the taxonomy has no figures for a theme added since: "-".
        m = model["per_theme"].get(t)
        if m is None:
            cells = [t, "-", "-", "-"]
        else:
            cells = [t, _f(m["precision"]), _f(m["recall"]), str(m["support"])]
        cells += [_f(metrics[k]["per_theme"].get(t, {}).get("f1")) for k, _ in systems]
        lines.append("| " + " | ".join(cells) + " |")
    for label, getter in (
        ("**macro F1**", lambda r: r["macro_f1"]),
        ("micro F1", lambda r: r["micro_f1"]),
        ("sentiment accuracy", lambda r: r["sentiment"]["accuracy"]),
        ("sentiment macro F1", lambda r: r["sentiment"]["macro_f1"]),
    ):
        cells = [label, "", "", str(model["n"])] + [_f(getter(metrics[k])) for k, _ in systems]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def language_table(metrics: dict[str, Any]) -> str:
    """Macro F1 and sentiment accuracy per language, for each system."""
    systems = [(key, name) for key, name in SYSTEMS if key in metrics]
    model = metrics.get("model") or next(iter(metrics.values()))
    head = ["lang", "n"] + [f"macro F1 {name}" for _, name in systems] + ["sentiment acc (model)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lang, row in sorted(model["per_language"].items(), key=lambda kv: -kv[1]["n"]):
        cells = [lang, str(row["n"])]
        cells += [_f(metrics[k]["per_language"][lang]["macro_f1"]) for k, _ in systems]
        cells.append(_f(row["sentiment_accuracy"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def origin_table(metrics: dict[str, Any]) -> str:
    """Macro and micro F1 and sentiment accuracy per origin of the texts (real, written,
    imported), for each system; empty when the figures predate origins."""
    systems = [(key, name) for key, name in SYSTEMS if key in metrics]
    model = metrics.get("model") or next(iter(metrics.values()))
    if "per_origin" not in model:
        return ""
    head = ["origin", "n"] + [f"macro F1 {name}" for _, name in systems]
    head += ["micro F1 (model)", "sentiment acc (model)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for origin, row in sorted(model["per_origin"].items(), key=lambda kv: -kv[1]["n"]):
        cells = [origin, str(row["n"])]
        cells += [
            _f(metrics[k].get("per_origin", {}).get(origin, {}).get("macro_f1")) for k, _ in systems
        ]
        cells += [_f(row["micro_f1"]), _f(row["sentiment_accuracy"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_card(meta: dict[str, Any]) -> str:
    """The model card for a bundle's metadata."""
    data = meta.get("training_data", {})
    hp = meta.get("hyperparameters", {})
    metrics = meta.get("metrics", {})
    lines = [
        f"# cxthemes model `{meta['version']}`",
        "",
        "Assigns customer-feedback texts zero or more of the taxonomy's themes (multi-label) and",
        "one overall sentiment. One encoder, mean pooling, a sigmoid head with a tuned threshold",
        "per theme, and a 3-way softmax head.",
        "",
        "## Details",
        f"- created: {meta.get('created_at')}",
        f"- base model: `{meta.get('base_model')}` (text prefix `{meta.get('text_prefix', '')}`)",
        f"- taxonomy version: {meta.get('taxonomy_version')}; themes: "
        + ", ".join(f"`{t}`" for t in meta["theme_ids"]),
        f"- training data: {data.get('n_items')} items (train {data.get('n_train')}, "
        f"dev {data.get('n_dev')}, test {data.get('n_test')}), fingerprint "
        f"`{str(data.get('fingerprint', ''))[:16]}`",
        f"- hyper-parameters: epochs {hp.get('epochs')}, lr {hp.get('learning_rate')}, "
        f"batch {hp.get('batch_size')}, max length {hp.get('max_length')}, "
        f"frozen word embeddings {hp.get('freeze_embeddings')}, seed {hp.get('seed')}",
        f"- training time: {meta.get('training_seconds')} s",
        f"- languages evaluated (>= 10 test items): {', '.join(meta.get('languages', [])) or '-'};"
        " texts in other languages are flagged `needs_review`",
        "",
        "## Thresholds (tuned on dev for each theme's F1)",
        "",
        "| theme | threshold |",
        "|---|---|",
        *(f"| {t} | {v:.2f} |" for t, v in meta["thresholds"].items()),
        "",
    ]
    search = meta.get("seed_search")
    if search:
        lines += [
            "## Seed search",
            "",
            f"One model was trained per seed; seed {search['chosen_seed']} was kept for its dev "
            "selection score. The test figures of every run show how much the seed alone moves "
            "them; they played no part in the choice.",
            "",
            "| seed | dev selection | test macro F1 | test sentiment accuracy |",
            "|---|---|---|---|",
            *(
                f"| {r['seed']}{' (kept)' if r['seed'] == search['chosen_seed'] else ''} | "
                f"{_f(r.get('best_dev_selection'))} | {_f(r.get('test_macro_f1'))} | "
                f"{_f(r.get('test_sentiment_accuracy'))} |"
                for r in search["runs"]
            ),
            "",
        ]
    distilled = meta.get("distillation")
    if distilled:
        lines += [
            "## Distillation",
            f"- teacher: `{distilled.get('teacher')}` ({distilled.get('teacher_layers')} layers);"
            f" this student keeps layers {distilled.get('layers_kept')}"
            + (
                f" and {distilled['student_ffn']} of the {distilled['teacher_ffn']}"
                " feed-forward neurons of each (the most active on the soft-target texts)"
                if distilled.get("student_ffn") != distilled.get("teacher_ffn")
                else ""
            ),
            "- soft targets: the teacher's theme and sentiment probabilities"
            + (
                " averaged with those of "
                + ", ".join(f"`{v}`" for v in distilled["extra_teachers"])
                if distilled.get("extra_teachers")
                else ""
            )
            + f" on {distilled.get('soft_target_texts')} texts (the training split and "
            f"{distilled.get('unlabelled_texts')} unlabelled ones)",
            f"- test macro F1: student {_f(distilled.get('student_macro_f1'))}, teacher "
            f"{_f(distilled.get('teacher_macro_f1'))}; sentiment accuracy: student "
            f"{_f(distilled.get('student_sentiment_accuracy'))}, teacher "
            f"{_f(distilled.get('teacher_sentiment_accuracy'))}",
            f"- ships only within {distilled.get('max_f1_loss')} of the teacher's macro F1 and "
            f"{distilled.get('max_sentiment_loss')} of its sentiment accuracy: "
            + ("**ships**" if distilled.get("ships") else "**does not ship**"),
            "",
        ]
    if metrics:
        lines += [
            "## Evaluation on the frozen test split",
            "",
            "Baselines are trained on the same training split and tuned on the same dev split.",
            "",
            comparison_table(metrics, meta["theme_ids"]),
            "",
            "### Per language",
            "",
            language_table(metrics),
            "",
        ]
        if origins := origin_table(metrics):
            lines += [
                "### Per origin of the texts",
                "",
                "`real`: public customer texts (English airline and self-driving-car tweets,",
                "Chinese product and hotel reviews); `written`: texts written for this data set;",
                "`imported`: a team's own labelled export. Real texts lack some themes almost",
                "entirely, which lowers their macro F1; micro F1 compares the origins fairly.",
                "",
                origins,
                "",
            ]
    lines += [
        "## Intended use and limits",
        "- Measuring theme shares and sentiment over many feedback texts; single predictions",
        "  near a threshold are flagged `needs_review` for a person to check.",
        "- Labelled data is partly written to resemble real feedback; figures on a team's own",
        "  data will differ. Languages with few test items have uncertain figures.",
        "- Sarcasm, code-mixing and very short texts are the usual sources of error.",
        "",
    ]
    return "\n".join(lines)
