"""POST /v1/classify."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from service.api.deps import ModelDep, SettingsDep
from service.api.schemas import ClassifyRequest, ClassifyResponse, ResultRow

router = APIRouter(prefix="/v1", tags=["classify"])


@router.post("/classify", response_model=ClassifyResponse)
def classify(body: ClassifyRequest, settings: SettingsDep, model: ModelDep) -> ClassifyResponse:
    """Themes, sentiment, review flag and evidence for each item, in the request's order."""
    if len(body.items) > settings.max_items_per_request:
        raise HTTPException(
            413,
            detail={
                "field": "items",
                "message": f"at most {settings.max_items_per_request} items per request, "
                f"got {len(body.items)}",
            },
        )
    for k, item in enumerate(body.items):
        if len(item.text) > settings.max_text_chars:
            raise HTTPException(
                413,
                detail={
                    "field": f"items[{k}].text",
                    "id": item.id,
                    "message": f"text has {len(item.text)} characters; "
                    f"the limit is {settings.max_text_chars}",
                },
            )
    langs = [(item.metadata or {}).get("lang") for item in body.items]
    langs = [lang if isinstance(lang, str) and lang else None for lang in langs]
    with model.lock:
        predictions = model.predictor.predict([i.text for i in body.items], langs=langs)
    rows = [ResultRow(**p.as_row(item.id)) for item, p in zip(body.items, predictions, strict=True)]
    return ClassifyResponse(model_version=model.predictor.model_version, results=rows)
