"""Shared dependencies of the routes: settings and the loaded predictor."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, Request

from service.core.config import Settings
from service.predictor import Predictor


class ModelHolder:
    """Holds the predictor; one lock keeps concurrent requests from oversubscribing the CPU."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.lock = threading.Lock()


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_model(request: Request) -> ModelHolder:
    return request.app.state.model


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ModelDep = Annotated[ModelHolder, Depends(get_model)]
