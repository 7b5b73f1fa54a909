"""``cxthemes labels import``: new labels from CSV, JSONL or a Label Studio JSON export.

All rows are validated against the taxonomy first; any bad row stops the import and every
bad row is listed (nothing is half-imported). Texts that are already labelled (exactly, or
the same once case, spacing, punctuation and digits are ignored) are reported and skipped;
those labelled differently are reported as conflicts to resolve. What is imported goes to a
new file under ``labels/data/imported/`` with its provenance (file, time, who).
"""

from __future__ import annotations

import contextlib
import csv
import getpass
import hashlib
import json
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from service.taxonomy import Taxonomy
from service.text import is_unicode, normalise_for_dedup
from training.data import find_label_files, load_items

_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")


class LabelImportError(ValueError):
    """The file cannot be imported; the message lists every bad row."""


@dataclass
class ImportResult:
    imported: int = 0
    out_path: Path | None = None
    texts: list[str] = field(default_factory=list)  # the imported texts
    duplicates: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    unannotated: int = 0


def near_key(text: str) -> str:
    """Letters only, case-folded: catches copies that differ in spacing, punctuation, digits."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] in "LM")


def _split_themes(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [t.strip() for t in re.split(r"[;|,]", str(value)) if t.strip()]


def read_rows(path: Path) -> tuple[list[tuple[int, dict]], int]:
    """``(row number, {id, text, lang, themes, sentiment})`` rows, and how many Label Studio
    tasks had no annotation yet (not an error: skipped)."""
    try:
        return _read_rows(path)
    except UnicodeDecodeError as exc:
        where = _where_undecodable(path)
        raise LabelImportError(f"{path}: {where}: not valid UTF-8 ({exc.reason})") from None
    except json.JSONDecodeError as exc:  # a Label Studio export is one JSON document
        raise LabelImportError(
            f"{path}: not a Label Studio JSON export: invalid JSON at line {exc.lineno} "
            f"column {exc.colno} ({exc.msg})"
        ) from None


def _where_undecodable(path: Path) -> str:
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return f"line {number}"
    return "somewhere"


def _read_rows(path: Path) -> tuple[list[tuple[int, dict]], int]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        with path.open(encoding="utf-8-sig") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        row = {"__error__": f"invalid JSON ({exc.msg})"}
                    if not isinstance(row, dict):
                        row = {"__error__": "not a JSON object"}
                    rows.append((number, row))
        return rows, 0
    if suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            return [(n, dict(r)) for n, r in enumerate(csv.DictReader(fh), 1)], 0
    if suffix == ".json":
        return _label_studio_rows(json.loads(path.read_text(encoding="utf-8-sig")))
    raise LabelImportError(f"{path}: use .csv, .jsonl or a Label Studio .json export")


def _label_studio_rows(tasks) -> tuple[list[tuple[int, dict]], int]:
    if not isinstance(tasks, list):
        raise LabelImportError("a Label Studio export is a JSON list of tasks")
    rows, unannotated = [], 0
    for number, task in enumerate(tasks, 1):
        if not isinstance(task, dict):
            rows.append((number, {"__error__": "not a Label Studio task (a JSON object)"}))
            continue
        data = task.get("data") if isinstance(task.get("data"), dict) else {}
        annotations = task.get("annotations") or []
        results = [a.get("result") for a in annotations if isinstance(a, dict)]
        if not isinstance(annotations, list) or not all(
            isinstance(r, list | None) and all(isinstance(x, dict) for x in r or [])
            for r in results
        ):
            rows.append((number, {"__error__": "malformed annotations"}))
            continue
        annotations = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
        if not annotations:
            unannotated += 1
            continue
        latest = max(
            annotations, key=lambda a: str(a.get("updated_at") or a.get("created_at") or "")
        )
        choices = {
            r.get("from_name"): (r.get("value") or {}).get("choices", [])
            for r in latest.get("result") or []
            if r.get("type") == "choices" and isinstance(r.get("value") or {}, dict)
        }
        sentiment = choices.get("sentiment") or [None]
        who = latest.get("completed_by")
        rows.append(
            (
                number,
                {
                    "id": data.get("id", task.get("id")),
                    "text": data.get("text"),
                    "lang": data.get("lang"),
                    "themes": choices.get("themes", []),
                    "sentiment": sentiment[0],
                    "labelled_by": who.get("email") if isinstance(who, dict) else who,
                },
            )
        )
    return rows, unannotated


def import_labels(
    path: Path,
    labels_dir: Path,
    taxonomy: Taxonomy,
    by: str | None = None,
    source: str | None = None,
) -> ImportResult:
    """Validate, de-duplicate and write the labels in ``path`` (see the module docstring)."""
    from service.language import detect_language

    rows, unannotated = read_rows(path)
    errors, clean = [], []
    for number, row in rows:
        where = f"{path}: row {number}"
        if "__error__" in row:
            errors.append(f"{where}: {row['__error__']}")
            continue
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            errors.append(f"{where}: empty or missing text")
            continue
        if not is_unicode(text):
            errors.append(f"{where}: text holds a lone surrogate (\\ud800-\\udfff): not Unicode")
            continue
        themes = _split_themes(row.get("themes"))
        unknown = sorted(set(themes) - set(taxonomy.theme_ids))
        if unknown:
            errors.append(f"{where}: unknown theme ids {unknown}")
        sentiment = row.get("sentiment")
        if sentiment not in taxonomy.sentiments:
            errors.append(
                f"{where}: unknown sentiment {sentiment!r} (use {list(taxonomy.sentiments)})"
            )
        lang = row.get("lang") or detect_language(text)[0]
        if not isinstance(lang, str) or not _LANG.match(lang):
            errors.append(f"{where}: bad language code {lang!r}")
        if not unknown and sentiment in taxonomy.sentiments:
            ordered = [t for t in taxonomy.theme_ids if t in themes]
            clean.append((number, row, text.strip(), lang, ordered, sentiment))
    if errors:
        raise LabelImportError(
            f"{path}: {len(errors)} bad rows; nothing was imported:\n" + "\n".join(errors)
        )

    existing, _ = load_items(find_label_files(labels_dir), taxonomy)
    known: dict[str, tuple] = {}
    for item in existing:
        labels = (tuple(item.themes), item.sentiment)
        known[normalise_for_dedup(item.text)] = (labels, f"{item.file}:{item.line}")
        known.setdefault(near_key(item.text) or item.text, (labels, f"{item.file}:{item.line}"))

    result = ImportResult(unannotated=unannotated)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    who = by or _user()
    out_items = []
    for number, row, text, lang, themes, sentiment in clean:
        labels = (tuple(themes), sentiment)
        match = known.get(normalise_for_dedup(text)) or known.get(near_key(text) or text)
        if match is not None:
            (old_labels, where) = match
            if old_labels == labels:
                result.duplicates.append(f"{path}: row {number}: already labelled at {where}")
            else:
                result.conflicts.append(
                    f"{path}: row {number}: labelled {list(labels[0])}/{labels[1]} here but "
                    f"{list(old_labels[0])}/{old_labels[1]} at {where}; resolve it there"
                )
            continue
        known[normalise_for_dedup(text)] = (labels, f"{path}:{number}")
        known.setdefault(near_key(text) or text, (labels, f"{path}:{number}"))
        digest = hashlib.sha1(text.encode()).hexdigest()[:12]
        out_items.append(
            {
                "id": f"imp-{digest}",
                "text": text,
                "lang": lang.split("-")[0],
                "themes": themes,
                "sentiment": sentiment,
                "source": source or f"import:{path.name}",
                "provenance": {
                    "file": path.name,
                    "row": number,
                    "imported_at": now,
                    "by": who,
                    **({"labelled_by": row["labelled_by"]} if row.get("labelled_by") else {}),
                    **({"original_id": str(row["id"])} if row.get("id") is not None else {}),
                },
            }
        )
    if out_items:
        folder = labels_dir / "imported"
        folder.mkdir(parents=True, exist_ok=True)
        content = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in out_items)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        # The content's hash in the name: two imports of same-named files in the same second
        # (two labellers' batch.csv) must not replace each other.
        digest = hashlib.sha256(content.encode("utf-8")).hexdigest()[:10]
        stem = re.sub(r"[^A-Za-z0-9_-]+", "-", path.stem)
        out = folder / f"{stamp}-{stem}-{digest}.jsonl"
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".import-", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
            # All rows or none, and never over another file; FileExistsError: the very same
            # rows, imported at the same moment, are already there.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        result.out_path = out
    result.imported = len(out_items)
    result.texts = [item["text"] for item in out_items]
    return result


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return "unknown"
