"""GET /v1/themes: the taxonomy the served model was trained on."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.api.deps import AUTH_ERRORS, AnyKey
from service.api.schemas import TaxonomyOut, ThemeInfo

router = APIRouter(prefix="/v1", tags=["taxonomy"])


@router.get("/themes", response_model=TaxonomyOut, dependencies=[AnyKey], responses=AUTH_ERRORS)
def themes(request: Request) -> TaxonomyOut:
    """Theme ids with names and descriptions in English and Chinese, and the sentiments."""
    taxonomy = request.app.state.taxonomy
    return TaxonomyOut(
        version=taxonomy.version,
        themes=[
            ThemeInfo(
                id=t.id, name=t.name, description=t.description, report_figure=t.report_figure
            )
            for t in taxonomy.themes
        ],
        sentiments=list(taxonomy.sentiments),
    )
