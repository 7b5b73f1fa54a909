"""Train/dev/test splits that never move.

The items present when the splits were frozen are assigned by iterative stratification over
(language, theme) cells, so the 15% test and 15% dev shares hold for every theme and language,
and recorded in ``labels/splits.tsv`` (one line per item: its text key, a tab, its split).
Items added later are assigned by a hash of their normalised text, so their split is fixed the
moment they exist and adding data never moves an item.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from service.locks import exclusive_lock
from service.text import normalise_for_dedup

SPLITS_FILE = Path(__file__).resolve().parents[1] / "labels" / "splits.tsv"
SHARES = {"test": 0.15, "dev": 0.15}
SPLITS = ("train", "dev", "test")


class Labelled(Protocol):
    text: str
    lang: str
    themes: tuple[str, ...]


def text_key(text: str) -> str:
    """A short stable key for a text: sha256 of its whitespace- and case-folded form."""
    return hashlib.sha256(normalise_for_dedup(text).encode("utf-8")).hexdigest()[:16]


def hash_split(text: str) -> str:
    """The split of a text that is not in the frozen manifest: a fixed function of its hash."""
    u = int(text_key(text), 16) / 16**16
    if u < SHARES["test"]:
        return "test"
    if u < SHARES["test"] + SHARES["dev"]:
        return "dev"
    return "train"


@lru_cache(maxsize=4)
def load_manifest(path: Path = SPLITS_FILE) -> dict[str, str]:
    """``{text key: split}`` for the items present at freezing (empty if never frozen)."""
    return _read_manifest(path)


def _read_manifest(path: Path) -> dict[str, str]:
    """The manifest as it is on disk now (``load_manifest`` caches it)."""
    if not path.is_file():
        return {}
    manifest = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            fields = line.split("\t")
            # A merge conflict or a hand edit must not move items between splits unnoticed.
            if len(fields) != 2 or fields[1] not in SPLITS:
                raise ValueError(
                    f"{path}:{n}: expected '<text key>\\t<{'|'.join(SPLITS)}>', got {line[:80]!r}"
                )
            manifest[fields[0]] = fields[1]
    return manifest


def check_manifest(path: Path = SPLITS_FILE) -> None:
    """Raise ``ValueError`` if the manifest is damaged or its folder cannot be written: for a
    caller that must record splits after other work, to fail before that work."""
    _read_manifest(path)
    folder = path.parent
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{folder}: cannot write the splits manifest there (no permission)")


def split_of(text: str, manifest: dict[str, str] | None = None) -> str:
    """The split of ``text``: frozen if it was present at freezing, else by hash."""
    manifest = load_manifest() if manifest is None else manifest
    return manifest.get(text_key(text)) or hash_split(text)


def _cells(item: Labelled) -> list[tuple[str, str]]:
    return [(item.lang, theme) for theme in item.themes] or [(item.lang, "")]


def stratified_assignment(items: Iterable[Labelled]) -> dict[str, str]:
    """Assign every item to a split so each (language, theme) cell gets the target shares.

    Iterative stratification (Sechidis et al., 2011): items whose rarest cell is rarest go
    first, each to the split that still most lacks that cell; ties go by text hash, so the
    result is deterministic.
    """
    items = list(items)
    totals = Counter(cell for item in items for cell in _cells(item))
    wanted = {
        split: {cell: n * share for cell, n in totals.items()} for split, share in SHARES.items()
    }
    wanted["train"] = {cell: n * (1 - sum(SHARES.values())) for cell, n in totals.items()}
    order = sorted(items, key=lambda i: (min(totals[c] for c in _cells(i)), text_key(i.text)))
    assignment = {}
    for item in order:
        cells = _cells(item)
        rarest = min(cells, key=lambda c: totals[c])

        def need(split: str, cells: list = cells, rarest: tuple = rarest) -> tuple:
            return (wanted[split][rarest], sum(wanted[split][c] for c in cells))

        split = max(SPLITS, key=lambda s: (*need(s), text_key(item.text + s)))
        for cell in cells:
            wanted[split][cell] -= 1
        assignment[text_key(item.text)] = split
    return assignment


def write_manifest(assignment: dict[str, str], path: Path = SPLITS_FILE) -> int:
    """Write every entry of ``assignment`` (train too); returns how many were written."""
    with _locked(path):
        return _write(assignment, path)


def _locked(path: Path) -> contextlib.AbstractContextManager[None]:
    """Hold an exclusive lock on the manifest's folder: two imports recording splits at once
    would each read the manifest, add their items and write it, and the second write would drop
    the first one's items. The folder, not the file, because the file is replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return exclusive_lock(path.parent)


def _write(assignment: dict[str, str], path: Path) -> int:
    """Replace the manifest atomically: a reader, or a crash half-way, sees the old file or
    the new one, never a truncated one."""
    rows = sorted(assignment.items())
    header = "# frozen splits (see training/splits.py): text key, tab, split\n"
    content = header + "".join(f"{k}\t{s}\n" for k, s in rows)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, mode)  # mkstemp makes it private; keep the manifest's own mode
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    finally:
        load_manifest.cache_clear()
    return len(rows)


def extend_manifest(items: Iterable[Labelled], path: Path = SPLITS_FILE) -> int:
    """Record in the manifest every item it lacks, with the split the item already has (its
    hash split), so nothing moves; returns how many were added."""
    return _record_missing((item.text for item in items), hash_split, path)


def record_split(texts: Iterable[str], split: str, path: Path = SPLITS_FILE) -> int:
    """Record in the manifest each of ``texts`` it lacks, under ``split``; texts it already
    has keep theirs. For a batch that must not reach dev or test, such as texts chosen for the
    model's uncertainty (they would make those splits harder than real traffic). Returns how
    many were recorded."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; one of {', '.join(SPLITS)}")
    return _record_missing(texts, lambda _: split, path)


def _record_missing(texts: Iterable[str], split_for: Callable[[str], str], path: Path) -> int:
    """Add the texts the manifest lacks, each under ``split_for(text)``; frozen entries never
    move. Returns how many were added."""
    texts = list(texts)
    with _locked(path):
        # Read under the lock, not from the cache: another process may have added items since.
        manifest = _read_manifest(path)
        new = {text_key(t): split_for(t) for t in texts if text_key(t) not in manifest}
        if new:
            _write({**manifest, **new}, path)
    return len(new)
