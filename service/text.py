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
    """Split ``text`` into sentences, each a piece of ``text`` as written (so it can be found
    and highlighted there); fragments too short to mean anything join the previous sentence
    together with what separates them."""
    spans: list[list[int]] = []
    start = 0
    for match in [*_SENTENCE_BREAK.finditer(text), None]:
        end = match.start() if match else len(text)
        part = text[start:end]
        a = start + len(part) - len(part.lstrip())
        b = end - (len(part) - len(part.rstrip()))
        if match:
            start = match.end()
        if a >= b:
            continue
        if spans and b - a < _MIN_SENTENCE_CHARS:
            spans[-1][1] = b
        else:
            spans.append([a, b])
    return [text[a:b] for a, b in spans]


def normalise_for_dedup(text: str) -> str:
    """Whitespace- and case-folded form used to detect duplicate texts."""
    return " ".join(text.casefold().split())
