"""GET /v1/model: the served model's card."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import AUTH_ERRORS, AnyKey, ModelDep
from service.api.schemas import ModelCard

router = APIRouter(prefix="/v1", tags=["model"])


@router.get("/model", response_model=ModelCard, dependencies=[AnyKey], responses=AUTH_ERRORS)
def model_card(model: ModelDep) -> ModelCard:
    """Version, base model, thresholds, languages and evaluation figures of the served model."""
    bundle = model.predictor.bundle
    meta = bundle.meta
    card_path = bundle.path / "README.md"
    return ModelCard(
        version=meta["version"],
        backend=bundle.backend_detail,
        created_at=meta.get("created_at"),
        base_model=meta.get("base_model"),
        taxonomy_version=meta.get("taxonomy_version"),
        theme_ids=meta["theme_ids"],
        sentiment_labels=meta["sentiment_labels"],
        thresholds=meta["thresholds"],
        languages=meta.get("languages") or [],
        training_data={k: v for k, v in (meta.get("training_data") or {}).items() if k != "files"},
        hyperparameters=meta.get("hyperparameters") or {},
        metrics=meta.get("metrics") or {},
        card=card_path.read_text(encoding="utf-8") if card_path.is_file() else None,
    )
