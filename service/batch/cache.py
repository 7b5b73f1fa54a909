"""A run's cache of predictions by text, on disk (SQLite), so identical texts are scored once
per run, memory stays flat, and a resumed run reuses what was scored before."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path


def text_key(text: str, lang: str | None) -> str:
    """The same key for the same text with the same given language. Exact, not folded: the
    model is cased, and each row's evidence must be a sentence of its own text."""
    return hashlib.sha1(f"{lang or ''}\0{text}".encode()).hexdigest()


class PredictionCache:
    """Prediction rows (without an id) by :func:`text_key`."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a chunk's file is written after this
        self._db.execute("CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, row TEXT)")

    def get_many(self, keys: Iterable[str]) -> dict[str, dict]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, dict] = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            for key, row in self._db.execute(
                f"SELECT key, row FROM cache WHERE key IN ({marks})", part
            ):
                found[key] = json.loads(row)
        return found

    def put_many(self, rows: dict[str, dict]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO cache VALUES (?, ?)",
                ((k, json.dumps(v, ensure_ascii=False)) for k, v in rows.items()),
            )

    def close(self) -> None:
        self._db.close()
