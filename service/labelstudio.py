"""Label Studio: the labelling config for the taxonomy, and review-queue items as tasks with
the model's answers as pre-annotations (a labeller corrects instead of starting from zero).
``cxthemes labels import`` reads the export of these tasks back."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.sax.saxutils import quoteattr

from service.taxonomy import Taxonomy


def label_config(taxonomy: Taxonomy) -> str:
    """The labelling interface: the text, theme choices (several), sentiment (one)."""
    themes = "\n".join(
        f"    <Choice value={quoteattr(t.id)} hint={quoteattr(t.name.get('en', t.id))}/>"
        for t in taxonomy.themes
    )
    sentiments = "\n".join(f"    <Choice value={quoteattr(s)}/>" for s in taxonomy.sentiments)
    return (
        "<View>\n"
        '  <Text name="text" value="$text"/>\n'
        '  <Choices name="themes" toName="text" choice="multiple" showInLine="true">\n'
        f"{themes}\n  </Choices>\n"
        '  <Choices name="sentiment" toName="text" choice="single" required="true">\n'
        f"{sentiments}\n  </Choices>\n"
        "</View>\n"
    )


def _utc_iso(value: datetime) -> str:
    """RFC 3339 in UTC with ``Z``, as the API sends datetimes (the store keeps naive UTC)."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


def review_task(row: dict) -> dict:
    """One recorded item as a Label Studio task with the model's prediction."""
    result = [
        {
            "from_name": "themes",
            "to_name": "text",
            "type": "choices",
            "value": {"choices": row["themes"]},
        },
        {
            "from_name": "sentiment",
            "to_name": "text",
            "type": "choices",
            "value": {"choices": [row["sentiment"]]},
        },
    ]
    margin = row.get("review_margin")
    return {
        "data": {"id": row["id"], "text": row.get("text"), "lang": row.get("lang")},
        "predictions": [
            {
                "model_version": row["model_version"],
                # Label Studio sorts by this score: the model's confidence (low = uncertain).
                "score": None if margin is None else round(margin, 4),
                "result": result,
            }
        ],
        "meta": {
            "review_reasons": row.get("review_reasons") or [],
            "review_margin": margin,
            "created_at": _utc_iso(row["created_at"]) if row.get("created_at") else None,
            "reviewed_at": _utc_iso(row["reviewed_at"]) if row.get("reviewed_at") else None,
        },
    }


def task_item_id(task: dict) -> str | None:
    """The recorded item a task stands for: its ``data.id``, as :func:`review_task` writes it;
    ``None`` when it has none. Never Label Studio's own task ``id``: a number it gave the task,
    which may equal the id of an unrelated recorded item."""
    data = task.get("data") if isinstance(task, dict) else None
    value = data.get("id") if isinstance(data, dict) else None
    return None if value in (None, "") else str(value)


def chosen_by_model(tasks: object) -> bool:
    """Whether any task carries ``meta.review_reasons``: :func:`review_task` writes them for the
    items `review export` flagged and the texts `labels select` chose, both picked by how close
    the model's scores lie to a threshold (Label Studio keeps a task's ``meta`` in its export).
    """
    return isinstance(tasks, list) and any(
        isinstance(task, dict)
        and isinstance(task.get("meta"), dict)
        and bool(task["meta"].get("review_reasons"))
        for task in tasks
    )
