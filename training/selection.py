"""``cxthemes labels select``: which unlabelled texts to label next.

Most of a batch is the texts the model is least sure about: those whose nearest theme score
lies closest to that theme's threshold (uncertainty sampling, how labels v2.5 were chosen).
The rest is drawn at random from the others, so the batch also says how the model does on
ordinary traffic and any figures computed on it are not only about hard cases. Each task
records why it was chosen (``uncertain`` or ``random``), so the two parts can be told apart
after labelling. Texts that are already labelled, empty, or repeated (as `labels import`
compares them: with personal data masked, and case, spacing and punctuation ignored) are
left out.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.privacy import mask_pii
from training.label_import import near_key

UNCERTAIN = "uncertain"
RANDOM = "random"


@dataclass
class Candidates:
    """Unlabelled texts read from a file, and the rows left out with the reason."""

    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "FILE row N: why"


def read_candidates(
    path: Path,
    text_column: str,
    id_column: str | None,
    labelled_texts: Iterable[str],
    encoding: str = "utf-8",
) -> Candidates:
    """Texts of ``path`` (JSONL, CSV, Parquet, XLSX; CSV and JSONL in ``encoding``) that are not
    labelled yet, once each. A row without an id gets ``row-N``; rows that cannot be used are
    listed in ``skipped``."""
    from service.batch.readers import InputError, Reader

    reader = Reader(path, encoding=encoding)
    if text_column not in reader.columns:
        raise InputError(
            f"{path}: no column {text_column!r} (columns: {', '.join(reader.columns) or 'none'})"
        )
    # The key `labels import` matches on (it masks personal data first, and the labelled texts
    # are masked), so nothing chosen here is skipped there as a copy.
    seen = {_key(t) for t in labelled_texts}
    out = Candidates()
    for chunk in reader.chunks(10_000):
        for record in chunk:
            where = f"{path} row {record.number}"
            if record.problem:
                out.skipped.append(f"{where}: {record.problem}")
                continue
            text = record.values.get(text_column)
            if not isinstance(text, str) or not text.strip():
                out.skipped.append(f"{where}: empty or missing {text_column!r}")
                continue
            key = _key(text)
            if key in seen:
                out.skipped.append(f"{where}: already labelled or a repeat")
                continue
            seen.add(key)
            raw_id = record.values.get(id_column) if id_column else None
            out.ids.append(str(raw_id) if raw_id not in (None, "") else f"row-{record.number}")
            out.texts.append(text)
    return out


def _key(text: str) -> str:
    masked = mask_pii(text)
    return near_key(masked) or masked


def margins(theme_scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Per text, how far its nearest theme score lies from that theme's threshold."""
    return np.abs(np.asarray(theme_scores) - np.asarray(thresholds)[None, :]).min(axis=1)


def select(margin: np.ndarray, n: int, random_share: float, seed: int = 0) -> list[tuple[int, str]]:
    """``n`` indices (fewer if there are fewer texts): ``round(n * (1 - random_share))`` with
    the smallest margins, the rest drawn at random (``seed``) from the others; each with why
    it was chosen. Ties in margin keep input order."""
    if not 0.0 <= random_share <= 1.0:
        raise ValueError(f"random_share must lie in [0, 1], got {random_share}")
    n = max(0, min(n, len(margin)))
    n_uncertain = round(n * (1.0 - random_share))
    order = np.argsort(margin, kind="stable")
    chosen = [(int(i), UNCERTAIN) for i in order[:n_uncertain]]
    rest = sorted(int(i) for i in order[n_uncertain:])
    chosen += [(i, RANDOM) for i in random.Random(seed).sample(rest, n - n_uncertain)]
    return chosen
