"""Labelled data: loading, validation, the deterministic splits and the data fingerprint.

Items are JSONL lines ``{"id", "text", "lang", "themes": [...], "sentiment", "source"}``.
Splits come from ``training/splits.py``: frozen and stratified for the items present when they
were frozen, by a hash of the normalised text for later ones; the same text can never sit in
two splits.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.language import normalise_language
from service.taxonomy import Taxonomy
from service.text import normalise_for_dedup
from training.corpora import EXTRACTORS, TextResolver
from training.splits import SPLITS, load_manifest, split_of

# ISO 639-1: the labelled data and the bundle's evaluated languages use these codes.
_ISO_639_1 = (
    "aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv "
    "cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho "
    "hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku "
    "kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn "
    "no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm "
    "sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi "
    "vo wa wo xh yi yo za zh zu"
)
ISO_639_1 = frozenset(_ISO_639_1.split())


def language_code(code: object) -> str | None:
    """The ISO 639-1 code a labelled item's ``lang`` stands for, read as the service reads
    codes (:func:`service.language.normalise_language`: ``"EN"``, ``"en_US"``, ``"en-GB"``
    and ``"eng"`` are ``"en"``); None for anything else: not a string, blank, a code that
    names no language (``"und"``, ``"mul"``, ``"zxx"``) or no known one (``"xx"``, ``"ace"``).
    One rule for the labelled files and ``labels import``."""
    if not isinstance(code, str):
        return None
    lang = normalise_language(code)
    return lang if lang in ISO_639_1 else None


@dataclass(frozen=True)
class Item:
    """One labelled feedback text."""

    id: str
    text: str
    lang: str
    themes: tuple[str, ...]
    sentiment: str
    source: str
    file: str = ""
    line: int = 0


@dataclass
class Problems:
    """Validation problems found while loading, each naming the file and line."""

    errors: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)

    def add(self, file: str, line: int, message: str) -> None:
        self.errors.append(f"{file}:{line}: {message}")

    def add_duplicate(self, file: str, line: int, message: str) -> None:
        self.duplicates.append(f"{file}:{line}: {message}")

    def __bool__(self) -> bool:
        return bool(self.errors or self.duplicates or self.unavailable)


def _text_of(raw: dict, resolver: TextResolver, where: tuple[str, int], problems: Problems):
    """The item's text: inline, or rebuilt from its source package by sha256."""
    text = raw.get("text")
    sha = raw.get("text_sha256")
    if text is not None or not isinstance(sha, str):
        return text
    source = str(raw.get("source", ""))
    package = source.split(":", 1)[0]
    if package not in EXTRACTORS:  # a typo, not a package that is missing here
        problems.add(
            *where, f"text_sha256 needs a source from {sorted(EXTRACTORS)}, got {source!r}"
        )
        return None
    if not resolver.available(source):
        problems.unavailable.append(f"{where[0]}:{where[1]}: {source}")
        return None
    text = resolver.resolve(source, sha)
    if text is None:
        problems.add(*where, f"no text with sha256 {sha[:12]} in {source}")
    return text


def read_jsonl_items(
    path: Path, taxonomy: Taxonomy, problems: Problems, resolver: TextResolver | None = None
) -> list[Item]:
    """Read one labelled JSONL file, recording every malformed line in ``problems``."""
    resolver = resolver or TextResolver()
    items = []
    theme_ids = set(taxonomy.theme_ids)
    with path.open("rb") as fh:
        for line_no, raw_line in enumerate(fh, 1):
            try:
                # utf-8-sig: a byte order mark (Excel and Notepad write one) is no JSON error.
                line = raw_line.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                problems.add(str(path), line_no, f"not valid UTF-8 (byte {exc.start})")
                continue
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.add(str(path), line_no, f"invalid JSON: {exc.msg}")
                continue
            if not isinstance(raw, dict):
                problems.add(str(path), line_no, "not a JSON object")
                continue
            n_unavailable, n_errors = len(problems.unavailable), len(problems.errors)
            text = _text_of(raw, resolver, (str(path), line_no), problems)
            if len(problems.unavailable) > n_unavailable or len(problems.errors) > n_errors:
                continue  # said once, not again as "empty or missing text"
            if not isinstance(text, str) or not text.strip():
                problems.add(str(path), line_no, "empty or missing text")
                continue
            themes = raw.get("themes")
            if not isinstance(themes, list) or not all(isinstance(t, str) for t in themes):
                problems.add(str(path), line_no, "themes must be a list of theme ids")
                continue
            unknown = sorted(set(themes) - theme_ids)
            if unknown:
                problems.add(str(path), line_no, f"unknown theme ids {unknown}")
                continue
            if len(set(themes)) != len(themes):
                problems.add(str(path), line_no, "a theme is listed twice")
            sentiment = raw.get("sentiment")
            if sentiment not in taxonomy.sentiments:
                problems.add(str(path), line_no, f"bad sentiment {sentiment!r}")
                continue
            lang = language_code(raw.get("lang"))
            if lang is None:
                problems.add(str(path), line_no, f"bad language code {raw.get('lang')!r}")
                continue
            item_id = raw.get("id")
            if not isinstance(item_id, str) or not item_id:
                problems.add(str(path), line_no, "missing id")
                continue
            items.append(
                Item(
                    id=item_id,
                    text=text,
                    lang=lang,
                    themes=tuple(t for t in taxonomy.theme_ids if t in themes),
                    sentiment=sentiment,
                    source=str(raw.get("source", "")),
                    file=str(path),
                    line=line_no,
                )
            )
    return items


def origin_of(source: str) -> str:
    """Where an item's text comes from: ``written`` (by the project's labellers),
    ``imported`` (a team's labelled export, ``import:FILE``) or ``real`` (a public corpus in
    an installed package, ``PACKAGE:PATH``)."""
    if source == "written" or source.startswith("written:"):
        return "written"
    if source.startswith("import:"):
        return "imported"
    return "real"


def find_label_files(root: Path) -> list[Path]:
    """All ``*.jsonl`` files under ``root`` (or ``root`` itself if it is a file), sorted.
    A ``root`` that does not exist is an error, not an empty set of labels: a mistyped
    ``--labels`` or ``CXTHEMES_LABELS_DIR`` must not train, evaluate or import against nothing."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ValueError(
            f"labels folder {root} does not exist (check --labels or CXTHEMES_LABELS_DIR)"
        )
    return sorted(p for p in root.rglob("*.jsonl") if p.is_file())


def load_items(paths: Iterable[Path], taxonomy: Taxonomy) -> tuple[list[Item], Problems]:
    """Load and validate items; a duplicate id is an error, a duplicate text is skipped."""
    problems = Problems()
    resolver = TextResolver()
    items: list[Item] = []
    for path in paths:
        items.extend(read_jsonl_items(path, taxonomy, problems, resolver))
    seen_ids: dict[str, Item] = {}
    seen_texts: dict[str, Item] = {}
    unique = []
    for item in items:
        if item.id in seen_ids:
            first = seen_ids[item.id]
            problems.add(
                item.file, item.line, f"duplicate id {item.id} (first: {first.file}:{first.line})"
            )
            continue
        key = normalise_for_dedup(item.text)
        if key in seen_texts:
            first = seen_texts[key]
            problems.add_duplicate(
                item.file, item.line, f"duplicate text (first: {first.file}:{first.line}), skipped"
            )
            continue
        seen_ids[item.id] = item
        seen_texts[key] = item
        unique.append(item)
    return unique, problems


def split_items(
    items: Iterable[Item], manifest: dict[str, str] | None = None
) -> dict[str, list[Item]]:
    """Group items by split: frozen (``labels/splits.tsv``) or, for newer items, by hash."""
    manifest = load_manifest() if manifest is None else manifest
    out: dict[str, list[Item]] = {s: [] for s in SPLITS}
    for item in items:
        out[split_of(item.text, manifest)].append(item)
    return out


def theme_matrix(items: list[Item], theme_ids: list[str]) -> np.ndarray:
    """Multi-hot gold themes, items x ``theme_ids`` (0/1 ints)."""
    return np.array(
        [[int(t in i.themes) for t in theme_ids] for i in items], dtype=np.int64
    ).reshape(len(items), len(theme_ids))


def label_arrays(items: list[Item], taxonomy: Taxonomy) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot theme matrix (items x themes, 0/1 ints) and sentiment indices."""
    themes = theme_matrix(items, list(taxonomy.theme_ids))
    sentiments = np.array([taxonomy.sentiments.index(i.sentiment) for i in items], dtype=np.int64)
    return themes, sentiments


def fingerprint(items: Iterable[Item]) -> str:
    """A hash of the labelled content (not of file names or order)."""
    digest = hashlib.sha256()
    for key in sorted(
        f"{normalise_for_dedup(i.text)}\t{','.join(i.themes)}\t{i.sentiment}\t{i.lang}"
        for i in items
    ):
        digest.update(key.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def counts_table(items: Iterable[Item], taxonomy: Taxonomy) -> str:
    """A plain-text table of item counts per theme (rows) and language (columns)."""
    items = list(items)
    langs = sorted(Counter(i.lang for i in items))
    rows = [("theme", *langs, "all")]
    for theme in [*taxonomy.theme_ids, "(none)"]:

        def has(i: Item, theme: str = theme) -> bool:
            return (not i.themes) if theme == "(none)" else theme in i.themes

        per_lang = Counter(i.lang for i in items if has(i))
        rows.append((theme, *(str(per_lang[lang]) for lang in langs), str(sum(per_lang.values()))))
    rows.append(
        (
            "items",
            *(str(sum(1 for i in items if i.lang == lang)) for lang in langs),
            str(len(items)),
        )
    )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in rows)
