"""``cxthemes labels import``: new labels from CSV, JSONL or a Label Studio export (JSON,
JSON-MIN or CSV).

Personal data in the texts (emails, cards, national IDs, phone numbers) is masked with
:func:`service.privacy.mask_pii` before anything else: the labelled files are committed, and
masked is how the store keeps texts (review exports are masked already), so duplicates are
found against what is kept.

All rows are validated against the taxonomy first; any bad row stops the import and every
bad row is listed (nothing is half-imported), each by its row and, in a Label Studio export,
its task. A Label Studio result the importer cannot read (a control other than the ``themes``
and ``sentiment`` Choices or Taxonomy) is such an error, not a task without themes. Where
annotators disagree, a ground-truth annotation wins, else the newest complete one; how many
tasks had disagreeing annotators is reported. Language codes are read as the service reads
them (``EN``, ``en_US`` and ``eng`` are ``en``) and must name an ISO 639-1 language.

Texts that are already labelled (exactly, or the same once case, spacing and punctuation are
ignored) are reported and skipped; those labelled differently are reported as conflicts to
resolve. What is imported goes to a new file under ``labels/data/imported/`` with its
provenance (file, time, who).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
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

from service.privacy import mask_pii
from service.taxonomy import Taxonomy
from service.text import has_visible_text, is_unicode, normalise_for_dedup
from training.data import find_label_files, language_code, load_items

# The controls of the labelling interface (service/labelstudio.py) and the result types read.
_FIELDS = ("themes", "sentiment")
_RESULT_TYPES = ("choices", "taxonomy")


class LabelImportError(ValueError):
    """The file cannot be imported; the message lists every bad row."""


@dataclass
class ImportResult:
    imported: int = 0
    out_path: Path | None = None
    texts: list[str] = field(default_factory=list)  # the imported texts (masked)
    duplicates: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    unannotated: int = 0
    # One line per Label Studio task whose annotators chose different labels, naming the
    # annotation that was used.
    disagreements: list[str] = field(default_factory=list)
    masked: int = 0  # imported texts in which personal data was masked
    # Texts of rows matched (as duplicates or conflicts) to a copy an earlier import wrote
    # under ``imported/``: a re-run with --train-only records these too.
    imported_before: list[str] = field(default_factory=list)


@dataclass
class _Rows:
    rows: list[tuple[int, dict]]
    unannotated: int = 0
    disagreements: list[tuple[int, dict, str]] = field(default_factory=list)  # row, what


class _BadValue(ValueError):
    """A themes or sentiment value that cannot be read."""


def near_key(text: str) -> str:
    """Letters, marks and digits only, case-folded: catches copies that differ in spacing or
    punctuation. Digits stay: "Rated 1/10" and "Rated 10/10" are different feedback."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] in "LMN")


def _split_themes(value) -> list[str]:
    """Theme ids from a list, a Label Studio value (``{"choices": [...]}``, a taxonomy's
    ``{"taxonomy": [[...]]}``), such a value or list written as JSON in a CSV cell, or a
    string of ids separated by ``;``, ``|`` or ``,``."""
    if value is None:
        return []
    if isinstance(value, dict):
        if isinstance(value.get("choices"), list):
            return _split_themes(value["choices"])
        if isinstance(value.get("taxonomy"), list):
            return _split_themes(value["taxonomy"])
        raise _BadValue(f"cannot read themes {value!r}")
    if isinstance(value, list):
        out = []
        for v in value:
            if isinstance(v, list):  # a taxonomy path: its leaf is the theme
                v = v[-1] if v else ""
            if not isinstance(v, str | int | float):
                raise _BadValue(f"cannot read themes {value!r}")
            if str(v).strip():
                out.append(str(v).strip())
        return out
    text = str(value).strip()
    if text[:1] in ("{", "["):  # Label Studio's CSV export writes several choices as JSON
        try:
            return _split_themes(json.loads(text))
        except json.JSONDecodeError:
            raise _BadValue(f"cannot read themes {text!r}: not valid JSON") from None
    return [t.strip() for t in re.split(r"[;|,]", text) if t.strip()]


def _sentiment(value):
    """The one sentiment of a string, list or ``{"choices": [...]}`` (also as JSON text)."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
    if isinstance(value, dict | list):
        chosen = _split_themes(value)
        if len(chosen) > 1:
            raise _BadValue(f"several sentiments {chosen}")
        return chosen[0] if chosen else None
    return value.strip() if isinstance(value, str) else value


def _codec(encoding: str) -> str:
    """The codec to read with, as `score` reads (:func:`service.batch.readers.reading_codec`)."""
    from service.batch.readers import InputError, reading_codec

    try:
        return reading_codec(encoding)
    except InputError as exc:
        raise LabelImportError(f"{exc} (e.g. utf-8, gbk, cp1252)") from None


def _read(path: Path, encoding: str = "utf-8") -> _Rows:
    """The rows of ``path`` (``(row number, {id, text, lang, themes, sentiment})``; a row that
    cannot be read holds ``__error__``, one whose labels cannot be read ``__problem__``) and
    how many Label Studio tasks had no annotation yet (not an error: skipped)."""
    codec = _codec(encoding)
    try:
        return _read_rows(path, codec)
    except UnicodeDecodeError as exc:
        utf8 = codec == "utf-8-sig"
        where = f"{path}: {_where_undecodable(path)}" if utf8 else str(path)
        raise LabelImportError(
            f"{where}: not valid {'UTF-8' if utf8 else codec} ({exc.reason}); if the file is "
            f"in another encoding, pass --encoding (e.g. {'gbk' if utf8 else 'utf-8'})"
        ) from None
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


def _read_rows(path: Path, encoding: str) -> _Rows:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        with path.open(encoding=encoding) as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        row = {"__error__": f"invalid JSON ({exc.msg})"}
                    if not isinstance(row, dict):
                        row = {"__error__": "not a JSON object"}
                    rows.append((number, row))
        return _Rows(rows)
    if suffix == ".csv":
        with path.open(encoding=encoding, newline="") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            if columns and "text" not in columns:
                hint = "; separated by ';'? use commas" if ";" in "".join(columns) else ""
                raise LabelImportError(
                    f"{path}: no 'text' column (found: {', '.join(map(repr, columns))}{hint}); "
                    "the header names text, themes, sentiment and optionally id and lang, "
                    "in lower case"
                )
            records = [(n, dict(r)) for n, r in enumerate(reader, 1)]
        return _flat_rows(records)
    if suffix == ".json":
        return _json_rows(path, json.loads(path.read_text(encoding=encoding)))
    raise LabelImportError(f"{path}: use .csv, .jsonl or a Label Studio .json export")


def _json_rows(path: Path, tasks) -> _Rows:
    """A Label Studio JSON export (tasks with ``data`` and ``annotations``) or JSON-MIN export
    (flat records with ``text``, one per annotation); a list may hold both."""
    if not isinstance(tasks, list):
        raise LabelImportError(
            f"{path}: a Label Studio export is a JSON list of tasks (JSON or JSON-MIN); this "
            f"file holds a JSON {type(tasks).__name__}"
        )
    out = _Rows([])
    flat = []
    for number, task in enumerate(tasks, 1):
        if not isinstance(task, dict):
            out.rows.append((number, {"__error__": "not a Label Studio task (a JSON object)"}))
        elif "annotations" in task or "data" in task:
            row = _task_row(number, task, out)
            if row is not None:
                out.rows.append((number, row))
        elif "text" in task:
            flat.append((number, task))
        else:
            out.rows.append(
                (
                    number,
                    {
                        "__error__": "neither a Label Studio task (data, annotations) nor a "
                        "JSON-MIN record (text)"
                    },
                )
            )
    flat_rows = _flat_rows(flat)
    out.rows = sorted(out.rows + flat_rows.rows, key=lambda r: r[0])
    out.disagreements += flat_rows.disagreements
    return out


def _task_name(task_id, data_id) -> str | None:
    """``Label Studio task 101, data.id fb-1``: what names a task in Label Studio and in the
    exported data (the row number alone has to be counted out in the file)."""
    names = [f"Label Studio task {task_id}"] if task_id is not None else []
    names += [f"data.id {data_id}"] if data_id is not None else []
    return ", ".join(names) or None


def _at(path: Path, number: int, row: dict, message: str) -> str:
    """``FILE: row N: message`` and, in a Label Studio export, ``(the task's names)``."""
    task = row.get("__task__")
    return f"{path}: row {number}: {message}" + (f" ({task})" if task else "")


def _when(annotation: dict) -> _dt.datetime:
    """When an annotation was last changed (timestamps compared as times, not strings:
    "10:00:01Z" is later than "10:00:00.5Z"); the earliest time when it does not say."""
    for key in ("updated_at", "created_at"):
        value = annotation.get(key)
        if isinstance(value, str):
            try:
                when = _dt.datetime.fromisoformat(value)
            except ValueError:
                continue
            return when if when.tzinfo else when.replace(tzinfo=UTC)
    return _dt.datetime.min.replace(tzinfo=UTC)


def _annotation_labels(annotation: dict) -> tuple[list[str], str | None]:
    """Themes and sentiment of one annotation's results; _BadValue for a result that is not
    a ``themes`` or ``sentiment`` Choices or Taxonomy control (its labels would be lost)."""
    chosen: dict[str, list[str]] = {name: [] for name in _FIELDS}
    for result in annotation.get("result") or []:
        name, kind, value = result.get("from_name"), result.get("type"), result.get("value")
        if (
            name not in _FIELDS
            or kind not in _RESULT_TYPES
            or not isinstance(value, dict)
            or not isinstance(value.get(kind), list)
        ):
            raise _BadValue(
                f"annotation {annotation.get('id')}: cannot read a result from_name={name!r} "
                f"type={kind!r} (the labelling interface names Choices or Taxonomy controls "
                "'themes' and 'sentiment', see `labels select`)"
            )
        chosen[name] += _split_themes({kind: value[kind]})
    if len(chosen["sentiment"]) > 1:
        raise _BadValue(
            f"annotation {annotation.get('id')}: several sentiments {chosen['sentiment']}"
        )
    return chosen["themes"], (chosen["sentiment"] or [None])[0]


def _task_row(number: int, task: dict, out: _Rows) -> dict | None:
    """The row of one task of a JSON export; None (counted) when it is not annotated yet."""
    data = task.get("data") if isinstance(task.get("data"), dict) else {}
    task_name = _task_name(task.get("id"), data.get("id"))
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list) or not all(
        isinstance(a, dict)
        and isinstance(a.get("result"), list | None)
        and all(isinstance(x, dict) for x in a.get("result") or [])
        for a in annotations
    ):
        return {"__error__": "malformed annotations", "__task__": task_name}
    annotations = [a for a in annotations if not a.get("was_cancelled")]
    if not annotations:
        out.unannotated += 1
        return None
    row = {
        "id": data.get("id", task.get("id")),
        "text": data.get("text"),
        "lang": data.get("lang"),
        "__task__": task_name,
    }
    try:
        labelled = [(a, *_annotation_labels(a)) for a in annotations]
    except _BadValue as exc:
        return {**row, "__problem__": str(exc)}
    complete = [x for x in labelled if x[2] is not None]
    if not complete:
        return {
            **row,
            "__problem__": f"{len(annotations)} annotations, none of them chooses a sentiment",
        }
    truth = [x for x in complete if x[0].get("ground_truth")]
    # The ground truth, else the newest complete one; the later in the list among equals.
    _, (annotation, themes, sentiment) = max(
        enumerate(truth or complete), key=lambda ix: (_when(ix[1][0]), ix[0])
    )
    who = annotation.get("completed_by")
    row |= {
        "themes": themes,
        "sentiment": sentiment,
        "labelled_by": who.get("email") if isinstance(who, dict) else who,
    }
    if len({(frozenset(t), s) for _, t, s in complete}) > 1:
        used = "the ground truth" if truth else "the newest"
        out.disagreements.append(
            (
                number,
                row,
                f"{len(complete)} annotations disagree; used {used} "
                f"(annotation {annotation.get('id')}: {themes}/{sentiment})",
            )
        )
    return row


def _flat_rows(records: list[tuple[int, dict]]) -> _Rows:
    """Rows of a CSV, or of a JSON-MIN export. A Label Studio export of these (it has
    ``annotation_id``) holds one record per annotation: the records of one task (one ``id``)
    are chosen between as a JSON export's annotations are (there is no ground truth in them:
    the newest complete one)."""
    out = _Rows([])
    groups: dict[str, list[tuple[int, dict]]] = {}
    for number, record in records:
        row = dict(record)
        if "annotation_id" in record:
            has_id = record.get("id") not in (None, "")
            row["__task__"] = f"id {record['id']}" if has_id else None
            row.setdefault("labelled_by", record.get("annotator"))
            if has_id:
                groups.setdefault(str(record["id"]), []).append((number, row))
                continue
        out.rows.append((number, row))
    for group in groups.values():
        if len(group) == 1:
            out.rows.extend(group)
            continue
        try:
            labelled = [
                (n, r, _split_themes(r.get("themes")), _sentiment(r.get("sentiment")))
                for n, r in group
            ]
        except _BadValue:
            out.rows.extend(group)  # each bad value is reported with its row
            continue
        complete = [x for x in labelled if x[3] is not None]
        if not complete:
            out.rows.extend(group)  # reported as without a sentiment
            continue
        number, row, themes, sentiment = max(complete, key=lambda x: (_when(x[1]), x[0]))
        if len({(frozenset(t), s) for _, _, t, s in complete}) > 1:
            rows = ", ".join(str(x[0]) for x in complete)
            out.disagreements.append(
                (
                    number,
                    row,
                    f"{len(complete)} annotations (rows {rows}) disagree; used the newest "
                    f"({themes}/{sentiment})",
                )
            )
        out.rows.append((number, row))
    out.rows.sort(key=lambda r: r[0])
    return out


def check_labels(
    path: Path, taxonomy: Taxonomy, encoding: str = "utf-8"
) -> tuple[list[tuple[int, dict]], int]:
    """The rows of ``path`` and its count of tasks not annotated (see :func:`_read`) if
    :func:`import_labels` would accept the file, else :class:`LabelImportError` naming every
    bad row. Writes nothing."""
    read, _ = _checked(path, taxonomy, encoding)
    return read.rows, read.unannotated


def _checked(path: Path, taxonomy: Taxonomy, encoding: str = "utf-8") -> tuple[_Rows, list[tuple]]:
    """The rows read and, for each labelled one, ``(number, row, masked text, whether it was
    masked, lang, themes in taxonomy order, sentiment)``; :class:`LabelImportError` if any row
    is bad."""
    from service.language import detect_language

    read = _read(path, encoding)
    errors, clean = [], []
    valid_themes = ", ".join(taxonomy.theme_ids)
    for number, row in read.rows:

        def bad(message: str, number: int = number, row: dict = row) -> None:
            errors.append(_at(path, number, row, message))  # the row's file, number and task

        if "__error__" in row:
            bad(row["__error__"])
            continue
        if "__problem__" in row:
            bad(row["__problem__"])
            continue
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            bad("empty or missing text")
            continue
        if not has_visible_text(text):  # zero-width spaces, a Hangul filler: nothing to label
            bad("empty text (only invisible characters)")
            continue
        if not is_unicode(text):
            bad("text holds a lone surrogate (\\ud800-\\udfff): not Unicode")
            continue
        raw = text.strip()
        text = mask_pii(raw)  # before the comparisons: the store keeps (and exports) it masked
        try:
            themes = _split_themes(row.get("themes"))
            sentiment = _sentiment(row.get("sentiment"))
        except _BadValue as exc:
            bad(str(exc))
            continue
        unknown = sorted(set(themes) - set(taxonomy.theme_ids))
        if unknown:
            bad(f"unknown theme ids {unknown} (valid: {valid_themes})")
        if sentiment not in taxonomy.sentiments:
            none = ": none chosen" if sentiment in (None, "") else ""
            bad(f"unknown sentiment {sentiment!r}{none} (use {list(taxonomy.sentiments)})")
        given = row.get("lang")
        if given is None or (isinstance(given, str) and not given.strip()):
            detected = detect_language(text)[0]
            lang = language_code(detected)
            if lang is None:  # emoji or numbers only, or a language without an ISO 639-1 code
                bad(
                    f"no lang given and the text's language cannot be told "
                    f"(detected {detected!r}): give its ISO 639-1 code"
                )
        else:
            lang = language_code(given)
            if lang is None:
                bad(
                    f"bad language code {given!r} (use an ISO 639-1 code such as en "
                    "or zh; und, mul and zxx name no language)"
                )
        if not unknown and sentiment in taxonomy.sentiments and lang is not None:
            ordered = [t for t in taxonomy.theme_ids if t in themes]
            clean.append((number, row, text, raw != text, lang, ordered, sentiment))
    if errors:
        raise LabelImportError(
            f"{path}: {len(errors)} bad rows; nothing was imported:\n" + "\n".join(errors)
        )
    return read, clean


def import_labels(
    path: Path,
    labels_dir: Path,
    taxonomy: Taxonomy,
    by: str | None = None,
    source: str | None = None,
    encoding: str = "utf-8",
) -> ImportResult:
    """Validate, mask, de-duplicate and write the labels in ``path``, a file in ``encoding``
    (see the module docstring)."""
    read, clean = _checked(path, taxonomy, encoding)
    existing, _ = load_items(find_label_files(labels_dir), taxonomy)
    imported_dir = (labels_dir / "imported").resolve()
    # key -> (labels, where, whether that is a row of this file, its text if an earlier
    # import wrote it)
    known: dict[str, tuple[tuple, str, bool, str | None]] = {}
    for item in existing:
        labels = (tuple(item.themes), item.sentiment)
        ours = Path(item.file).resolve().is_relative_to(imported_dir)
        here = (labels, f"{item.file}:{item.line}", False, item.text if ours else None)
        known[normalise_for_dedup(item.text)] = here
        known.setdefault(near_key(item.text) or item.text, here)

    result = ImportResult(
        unannotated=read.unannotated,
        disagreements=[_at(path, n, row, message) for n, row, message in read.disagreements],
    )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    who = by or _user()
    out_items = []
    for number, row, text, masked, lang, themes, sentiment in clean:
        labels = (tuple(themes), sentiment)
        match = known.get(normalise_for_dedup(text)) or known.get(near_key(text) or text)
        if match is not None:
            (old_labels, where, same_file, imported_text) = match
            if imported_text is not None:
                result.imported_before.append(imported_text)
            where = f"at row {where} of the same file" if same_file else f"at {where}"
            if old_labels == labels:
                seen = "repeated" if same_file else "already labelled"
                result.duplicates.append(_at(path, number, row, f"{seen} {where}"))
            else:
                # A conflict inside the file is resolved in it, not in the labelled data.
                fix = "resolve it in the file being imported" if same_file else "resolve it there"
                result.conflicts.append(
                    _at(
                        path,
                        number,
                        row,
                        f"labelled {list(labels[0])}/{labels[1]} here but "
                        f"{list(old_labels[0])}/{old_labels[1]} {where}; {fix}",
                    )
                )
            continue
        here = (labels, str(number), True, None)
        known[normalise_for_dedup(text)] = here
        known.setdefault(near_key(text) or text, here)
        result.masked += masked
        digest = hashlib.sha1(text.encode()).hexdigest()[:12]
        out_items.append(
            {
                "id": f"imp-{digest}",
                "text": text,
                "lang": lang,
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
