"""All settings in one place: ``CXTHEMES_``-prefixed environment variables or a .env file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    """Settings for the service, the CLI and training. Paths are relative to the working dir."""

    model_config = SettingsConfigDict(env_prefix="CXTHEMES_", env_file=".env", extra="ignore")

    # Models
    models_dir: Path = Field(Path("models"), description="Where bundles and models/current live.")
    model: str | None = Field(None, description="Bundle path to serve; default: models/current.")
    base_model: str = Field(
        "models/base/multilingual-e5-small",
        description="Base encoder: a local folder or any Hugging Face model id.",
    )
    taxonomy_path: Path | None = Field(None, description="Override for labels/taxonomy.yaml.")
    labels_dir: Path = Field(PROJECT_ROOT / "labels" / "data", description="Labelled JSONL files.")

    # Inference
    device: str = "cpu"
    torch_threads: int | None = Field(None, description="Intra-op threads; default: torch's.")
    batch_size: int = Field(32, ge=1, le=1024)
    max_length: int = Field(256, ge=16, le=512, description="Tokens per window, specials included.")
    review_margin: float = Field(
        0.1, ge=0.0, le=0.5, description="A theme score this close to its threshold needs review."
    )
    evidence: bool = Field(True, description="Find the sentence that carries each theme.")

    # API
    host: str = "127.0.0.1"
    port: int = 8000
    max_items_per_request: int = Field(256, ge=1)
    max_text_chars: int = Field(20_000, ge=1)
    log_level: Literal["debug", "info", "warning", "error"] = "info"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    return Settings()
