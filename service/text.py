"""Text helpers: sentence splitting (for evidence and long texts) and duplicate keys."""

from __future__ import annotations

import re
import unicodedata

# Full stops of scripts that need no space after them: CJK and full/half-width forms, Arabic
# and Urdu, the Devanagari danda and double danda (Hindi), Ethiopic, Armenian and Myanmar.
# ASCII "!" and "?" are not among them: without a space they sit inside URLs ("order?id=1").
# "…" is (the Chinese ellipsis "……" runs straight into the next sentence).
_NO_SPACE_STOPS = "。！？；…؟۔।॥።։။．｡"
# What may close a sentence after its stop and still belong to it: closing quotes and
# brackets ('"Too slow!" Support...', "(really!) Then") and emoji ("Bad app!😡 Support"),
# with their joiners, variation selectors, skin tones, flags and keycaps.
_CLOSERS = (
    "\"'”’»›)\\]}」』》〉】〕〗〙〛）］｝＂＇｣"
    "\u200d\u20e3\ufe0e\ufe0f\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff"
    "\U0001f000-\U0001faff\U000e0020-\U000e007f"
)
_DIGITS = "0-9０-９"
# Thai, Lao and Khmer put no space between words and no stop after sentences: a space there
# separates sentences or phrases ("แอปช้ามาก ฝ่ายบริการลูกค้าไม่ตอบ").
_SPACE_SEPARATED = "\u0e00-\u0eff\u1780-\u17ff\u19e0-\u19ff"
# A sentence ends at Western punctuation followed by a space, after a run of the stops above
# (with or without a space; not the full-width point of a decimal, "３．５"), either of them
# with what closes it (_CLOSERS), at a line break, or at a space between Thai, Lao or Khmer
# letters. The sentence ends where the named group of the alternative starts (after its
# closers), else where the match starts.
_SENTENCE_BREAK = re.compile(
    rf"(?<=[.!?…])[{_CLOSERS}]*(?P<western>\s+)"
    rf"|(?<=[{_NO_SPACE_STOPS}])(?![{_NO_SPACE_STOPS}])(?!(?<=[{_DIGITS}]．)[{_DIGITS}])"
    rf"[{_CLOSERS}]*(?P<stop>\s*)"
    r"|\s*[\r\n]+\s*"
    rf"|(?<=[{_SPACE_SEPARATED}])\s+(?=[{_SPACE_SEPARATED}])"
)
# A point after these does not end a sentence: titles ("Dr. Lee", "Mme. Roy"), Latin
# abbreviations ("e.g. the app", "vs. last year") and, before a number, "No. 5", "Nr. 5".
# Only as whole words and in the case shown, bar a capital first letter; "etc." is left out
# (it ends sentences as often as not), and so are single initials ("Plan B. Then...").
_ABBREVIATION_BEFORE = re.compile(
    r"(?<![^\W\d_])(?:"
    r"[Dd]rs?|[MmSs]rs?|[Mm]s|[Mm]me|[Mm]lle|[Pp]rof|[Ss]ra|[Ss]rta|[Dd]ott|[Ii]ng|[Hh]r|[Jj]r|Mt"
    r"|[Ee]\.g|[Ii]\.e|[Vv]s|[Cc]f|[Aa]pprox|[Cc]a|[Zz]\.\s?B|[Dd]\.\s?h|[Bb]zw|[Uu]sw|[Ii]nkl"
    r")\.\Z"
)
_NUMBER_ABBREVIATION_BEFORE = re.compile(r"(?<![^\W\d_])(?:[Nn]o|[Nn]r|[Nn]º|[Nn]°)\.\Z")
_ABBREVIATION_REACH = 8  # characters before a point that the two patterns above may need
_MIN_SENTENCE_CHARS = 2
# A single Latin letter with a dot or parenthesis ("a.", "B)") is a list marker, not a sentence.
_LETTER_MARKER = re.compile(r"[A-Za-z][.)]")


def _invisible_characters() -> str:
    """A regex character class body of the characters that show nothing on their own:
    separators (Z*), controls (Cc), format characters (Cf: zero-width spaces and joiners,
    BOM, bidi marks, tags), combining marks without a base (Mn, Me), and the blank fillers
    that are letters or symbols by category (Hangul fillers, the blank Braille pattern)."""
    categories = {"Zs", "Zl", "Zp", "Cc", "Cf", "Mn", "Me"}
    # Every character of these categories lies in planes 0-1 and the special-purpose plane
    # 14 (tags, variation selectors); scanning only those keeps the import at ~20 ms.
    code_points = [
        cp
        for block in (range(0x20000), range(0xE0000, 0xE1000))
        for cp in block
        if unicodedata.category(chr(cp)) in categories
    ]
    code_points += [0x115F, 0x1160, 0x2800, 0x3164, 0xFFA0]
    ranges: list[list[int]] = []
    for cp in sorted(code_points):
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )


# One character that shows something: a letter, digit, punctuation, symbol or emoji.
_VISIBLE = re.compile(f"[^{_invisible_characters()}]")


def has_visible_text(text: str) -> bool:
    """Whether ``text`` has anything to classify: False when it is empty or only whitespace,
    control or format characters (zero-width spaces and joiners, BOM), combining marks
    without a base, or blank fillers (U+3164, U+2800...). Emoji and punctuation alone are
    visible ("👍", "!!!"): they are real feedback."""
    return _VISIBLE.search(text) is not None


def lstrip_invisible(text: str) -> str:
    """``text`` from its first visible character on (see :func:`has_visible_text`): what a
    text cut to a length must start with, or it could be cut to nothing visible."""
    match = _VISIBLE.search(text)
    return text[match.start() :] if match else ""


def _is_marker(fragment: str) -> bool:
    """Whether ``fragment`` only leads into what follows it: a list marker ("1.", "2)",
    "a.") or anything else without letters ("-", "**")."""
    return not any(c.isalpha() for c in fragment) or _LETTER_MARKER.fullmatch(fragment) is not None


def _after_abbreviation(text: str, match: re.Match[str]) -> bool:
    """Whether the break ``match`` follows an abbreviation's point rather than a sentence's
    (see _ABBREVIATION_BEFORE): "Dr. Lee", "e.g. refunds", "No. 5"."""
    if match.lastgroup != "western" or match.start() == 0 or text[match.start() - 1] != ".":
        return False
    before = text[max(0, match.start() - _ABBREVIATION_REACH) : match.start()]
    if _ABBREVIATION_BEFORE.search(before):
        return True
    after = text[match.end() : match.end() + 1]
    return after.isdigit() and _NUMBER_ABBREVIATION_BEFORE.search(before) is not None


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
        if match is not None and _after_abbreviation(text, match):
            continue  # the sentence goes on
        if match is None:
            end = len(text)
        else:  # after the closers of its stop, if any
            end = match.start(match.lastgroup) if match.lastgroup else match.start()
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
