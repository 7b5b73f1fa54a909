import pytest

from service.predictor import Predictor


@pytest.fixture(scope="session")
def predictor(tiny_bundle):
    return Predictor.from_path(tiny_bundle)
