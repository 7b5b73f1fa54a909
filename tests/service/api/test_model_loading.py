"""The API loads and smoke-tests its model on a thread that ends with the load, so the
micro-batch thread's model calls are the process's only OpenMP team (service/fresh_thread.py)."""

from __future__ import annotations

import threading

import pytest

from service.api.main import load_predictor
from service.core.config import Settings
from service.predictor import Predictor


def test_load_and_smoke_test_run_on_a_thread_that_ended(tiny_bundle, monkeypatch):
    seen: dict[str, threading.Thread] = {}
    from_path, predict = Predictor.from_path, Predictor.predict

    def spy_from_path(*args, **kwargs):
        seen["load"] = threading.current_thread()
        return from_path(*args, **kwargs)

    def spy_predict(self, texts, *args, **kwargs):
        seen.setdefault("smoke", threading.current_thread())
        return predict(self, texts, *args, **kwargs)

    monkeypatch.setattr(Predictor, "from_path", spy_from_path)
    monkeypatch.setattr(Predictor, "predict", spy_predict)
    predictor = load_predictor(Settings(model=str(tiny_bundle)))
    assert predictor.model_version
    assert seen["load"] is seen["smoke"]
    assert seen["load"] is not threading.current_thread()
    assert not seen["load"].is_alive()


def test_a_model_that_cannot_answer_is_refused_at_load(tiny_bundle, monkeypatch):
    def broken(self, texts, *args, **kwargs):
        raise RuntimeError("cannot answer")

    monkeypatch.setattr(Predictor, "predict", broken)
    with pytest.raises(RuntimeError, match="cannot answer"):
        load_predictor(Settings(model=str(tiny_bundle)))
