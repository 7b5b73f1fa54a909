"""All settings in one place: ``CXTHEMES_``-prefixed environment variables or a .env file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


Scope = Literal["classify", "metrics", "admin"]


class ApiKey(BaseModel):
    """One API key as configured: only its SHA-256 is kept (``cxthemes keys create`` makes one)."""

    name: str = Field(..., min_length=1, description="Who holds the key; appears in logs.")
    sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the key.")
    scopes: list[Scope] = Field(..., min_length=1)


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
    backend: Literal["auto", "torch", "torch-bf16", "onnx"] = Field(
        "auto",
        description="auto, on a CPU: the bundle's int8 ONNX graph if it passed its accuracy "
        "gate, else bf16 torch if the bundle passed its bf16 check and the CPU computes bf16 "
        "natively, else the fp32 ONNX graph, else torch.",
    )
    torch_threads: int | None = Field(None, ge=1, description="Intra-op threads; default: torch's.")
    batch_size: int = Field(
        32,
        ge=1,
        le=1024,
        description="Rows per forward pass at most (scoring); a row is one text, or several "
        "short ones packed (pack_tokens). Passes are cut where padding and per-pass overhead "
        "cost least.",
    )
    api_batch_size: int = Field(
        24,
        ge=1,
        le=1024,
        description="Rows per forward pass in the API at most. Its micro-batches are a few dozen "
        "short texts: at 32 clients, 32 texts in about 17 packed rows, one pass instead of two "
        "(+3% against 16 rows, bench/RESULTS.md).",
    )
    pack_tokens: int = Field(
        64,
        ge=0,
        le=512,
        description="Short texts share rows of this many tokens, each text masked off from the "
        "others and with its own positions (torch backends, BERT encoders): exactly as if it "
        "ran alone in fp32; in bf16 rounding still follows the pass's width (scores within "
        "~0.03). Less padding and fewer passes; 0: one text per row.",
    )
    max_length: int = Field(256, ge=16, le=512, description="Tokens per window, specials included.")
    review_margin: float = Field(
        0.1, ge=0.0, le=0.5, description="A theme score this close to its threshold needs review."
    )
    evidence: bool = Field(True, description="Find the sentence that carries each theme.")
    watch_models_s: float = Field(
        0.0, ge=0.0, description="Poll the registry every N s and reload on change (0: off)."
    )

    # Promotion of a challenger
    promote_max_macro_drop: float = Field(
        0.005, ge=0.0, description="A challenger may lose at most this much macro F1."
    )
    promote_max_theme_drop: float = Field(
        0.03, ge=0.0, description="... and at most this much F1 on any one theme."
    )

    # API
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, description="uvicorn worker processes (each loads the model).")
    max_items_per_request: int = Field(256, ge=1)
    max_text_chars: int = Field(20_000, ge=1)
    truncate_long_texts: bool = Field(
        False, description="Cut texts over max_text_chars instead of answering 413."
    )
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Request body limit.")
    api_keys: list[ApiKey] = Field(
        default_factory=list,
        description='JSON list of {"name", "sha256", "scopes"}; none: loopback only, no auth.',
    )
    cors_origins: list[str] = Field(default_factory=list, description="Empty: CORS off.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Micro-batching of concurrent requests
    microbatch_max_items: int = Field(64, ge=1, description="Texts per model call at most.")
    microbatch_max_wait_ms: float = Field(
        5.0,
        ge=0.0,
        description="How long the first text waits at most for others to join its batch; the "
        "batch starts sooner once the clients the last batch answered are back.",
    )
    api_model_workers: int = Field(
        1,
        ge=1,
        le=16,
        description="Model calls the API runs at once. More than one overlaps gathering and "
        "answering one micro-batch with scoring another; give each fewer threads "
        "(api_onnx_threads for ONNX, torch_threads for torch and bf16) so together they do "
        "not exceed the cores. On 2 cores (bf16 student, packed rows), 2 workers of 1 torch "
        "thread served about 30% fewer texts at 32 clients than 1 worker of 2 threads.",
    )
    api_onnx_threads: int | None = Field(
        None, ge=1, le=256, description="ONNX Runtime intra-op threads per API model call."
    )
    queue_max_items: int = Field(
        2048, ge=1, description="Texts queued or in the model at most; beyond: 503."
    )
    queue_max_wait_s: float = Field(
        5.0,
        ge=0.0,
        description="503 when the texts queued would take longer than this to score at the "
        "measured rate (0: off; then only queue_max_items bounds the wait).",
    )

    # Metrics store
    database_url: str = Field(
        "sqlite:///var/cxthemes.db",
        description="SQLAlchemy URL: the embedded SQLite file, or postgresql+psycopg://...",
    )
    auto_migrate: bool = Field(True, description="Apply Alembic migrations at start-up.")
    store_text: bool = Field(
        False, description="Also store the text and evidence (PII masked). Off: never stored."
    )
    metrics_default_days: int = Field(30, ge=1, description="Default metrics window.")

    @field_validator("database_url")
    @classmethod
    def _driver(cls, value: str) -> str:
        # psycopg 3 is the driver we ship; a bare postgresql:// would look for psycopg2.
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        return value


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    return Settings()
