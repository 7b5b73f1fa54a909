"""Text helpers: sentence splitting (for evidence and long texts) and duplicate keys."""

from __future__ import annotations

import re

# Full stops of scripts that need no space after them: CJK and full/half-width forms, Arabic
# and Urdu, the Devanagari danda and double danda (Hindi), Ethiopic, Armenian and Myanmar.
# ASCII "!" and "?" are not among them: without a space they sit inside URLs ("order?id=1").
# "…" is (the Chinese ellipsis "……" runs straight into the next sentence).
_NO_SPACE_STOPS = "。！？；…؟۔।॥።։။．｡"
# A sentence ends at Western punctuation followed by a space, after a run of the stops above
# (with or without a space), or at a line break.
_SENTENCE_BREAK = re.compile(
    rf"(?<=[.!?…])\s+|(?<=[{_NO_SPACE_STOPS}])(?![{_NO_SPACE_STOPS}])\s*|\s*[\r\n]+\s*"
)
_MIN_SENTENCE_CHARS = 2
# A single Latin letter with a dot or parenthesis ("a.", "B)") is a list marker, not a sentence.
_LETTER_MARKER = re.compile(r"[A-Za-z][.)]")


def _is_marker(fragment: str) -> bool:
    """Whether ``fragment`` only leads into what follows it: a list marker ("1.", "2)",
    "a.") or anything else without letters ("-", "**")."""
    return not any(c.isalpha() for c in fragment) or _LETTER_MARKER.fullmatch(fragment) is not None


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences, each a piece of ``text`` as written (so it can be found
    and highlighted there). Fragments that only lead into a sentence (list markers such as
    "1." and anything else without letters) join the sentence after them, or the last one
    when none follows; other fragments too short to mean anything join the previous sentence.
    Joined pieces keep what separates them."""
    spans: list[list[int]] = []
    lead: int | None = None  # where the markers waiting for the next sentence start
    lead_end = 0
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
        if _is_marker(text[a:b]):
            lead = a if lead is None else lead
            lead_end = b
            continue
        if lead is not None:  # "1." then "The price is too high": one sentence
            spans.append([lead, b])
            lead = None
        elif spans and b - a < _MIN_SENTENCE_CHARS:
            spans[-1][1] = b
        else:
            spans.append([a, b])
    if lead is not None:  # markers or symbols at the end ("10/10", ":)") or nothing else
        if spans:
            spans[-1][1] = lead_end
        else:
            spans.append([lead, lead_end])
    return [text[a:b] for a, b in spans]


def normalise_for_dedup(text: str) -> str:
    """Whitespace- and case-folded form used to detect duplicate texts."""
    return " ".join(text.casefold().split())


def is_unicode(text: str) -> bool:
    """False if ``text`` holds a lone surrogate, which no Unicode encoding can carry (and the
    tokenizer refuses)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
