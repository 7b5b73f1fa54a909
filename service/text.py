"""Text helpers: sentence splitting (for evidence and long texts) and duplicate keys."""

from __future__ import annotations

import re

# A sentence ends at Western punctuation followed by a space, at CJK/Arabic full stops (which
# need no space), or at a line break.
_SENTENCE_BREAK = re.compile(
    r"(?<=[.!?…])\s+|(?<=[。！？；!?…؟۔])(?=\S)|(?<=[。！？；؟۔])\s*|\s*[\r\n]+\s*"
)
_MIN_SENTENCE_CHARS = 2


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences; fragments too short to mean anything join the previous one."""
    parts = [p.strip() for p in _SENTENCE_BREAK.split(text)]
    sentences: list[str] = []
    for part in parts:
        if not part:
            continue
        if sentences and len(part) < _MIN_SENTENCE_CHARS:
            sentences[-1] += part
        else:
            sentences.append(part)
    return sentences or ([text.strip()] if text.strip() else [])


def normalise_for_dedup(text: str) -> str:
    """Whitespace- and case-folded form used to detect duplicate texts."""
    return " ".join(text.casefold().split())
