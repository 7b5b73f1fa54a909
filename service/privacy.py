"""Mask personal data (emails, cards, national IDs, phone numbers) in free text before storage.

Everything is located on the original text first and replaced afterwards in a single pass, so
the offsets of one finding never shift because of another. Structured identifiers are claimed
first, in the order email, Chinese resident ID, payment card, US SSN, Canadian SIN (an 18-digit
number that passes both the ID and the Luhn check is far likelier an ID); phone numbers found by
``phonenumbers`` are dropped where they overlap one of those. An SSN without dashes ("123456789",
"123 45 6789") and a SIN ("046 454 286") count only next to a word naming them, before or after
("SSN 123456789", "123456789 is my SSN", "NAS 046 454 286").

A text that has to be cut is cut with ``truncate_text``, never by slicing: a slice can end in
the first digits of a phone number or card, or half an email, which no longer look like one.

All detectors read an ASCII view of the text, of the same length: any decimal digit (full-width
"１３８", Arabic-Indic, ...) as its ASCII digit and any space (no-break, narrow no-break, thin,
ideographic) as " ". Offsets in the view are offsets in the text, where the replacing is done.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import functools
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from phonenumbers import (
    Leniency,
    PhoneMetadata,
    PhoneNumberMatcher,
    region_codes_for_country_code,
)

EMAIL = "[EMAIL]"
CARD = "[CARD]"
ID = "[ID]"
PHONE = "[PHONE]"

# Regions whose national (no "+CC") formats are tried; "+CC" numbers match under any of them.
PHONE_REGIONS: tuple[str, ...] = (
    "CN", "US", "GB", "DE", "FR", "ES", "IT", "NL", "JP", "KR", "BR", "IN",
)  # fmt: skip
# Below this many digits in a text (or in one cluster of digits) no phone number is looked for:
# it bounds phonenumbers' cost and keeps prices, times and short codes out of reach.
MIN_PHONE_DIGITS = 6

# Local part and labels are bounded (RFC 5321 limits) so a long run of word characters, e.g.
# unspaced CJK text, costs linear rather than quadratic time. ``\w`` admits unicode local parts
# and IDN labels; an ASCII TLD is tried first so that CJK text glued after ".cn" stays outside.
_EMAIL_RE = re.compile(
    r"[\w!#$%&'*+=?^~-][\w.!#$%&'*+=?^~-]{0,63}@"
    r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.){1,8}"
    r"(?:[A-Za-z]{2,63}|[^\W\d_]{2,63})"
)

# 6-digit area code, birth date, 3-digit sequence, check character; optionally written 6-8-4.
_CN_ID_RE = re.compile(
    r"(?<![0-9])[1-9][0-9]{5}[ -]?(?:18|19|20)[0-9]{6}[ -]?[0-9]{3}[0-9Xx](?![0-9])"
)
_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10X98765432"

# Runs of digit groups joined by up to three spaces, a dash, a slash (spaces around either
# allowed), a dot or an underscore, as cards are written ("4111 1111", "4111 - 1111",
# "4111.1111", "4111/1111", "4111_1111" from a form field); card candidates are cut from them,
# and only Luhn-valid candidates of a card's group shape are kept (dates like "12/25/2026" have
# neither).
_DIGIT_GROUPS_RE = re.compile(
    r"[0-9]+(?:(?: {1,3}| ?[-/\u2010-\u2013\u2212\uff0d\uff0f] ?|[._])[0-9]+)*"
)
_CARD_MIN, _CARD_MAX = 13, 19

# Hyphens as typed, or as word processors and phones replace them (en dash, minus sign...).
_DASHES = r"\-\u2010-\u2013\u2212\ufe63\uff0d"
# Area 000, 666 and 900-999, group 00 and serial 0000 are never issued.
_SSN_RE = re.compile(
    rf"(?<![0-9{_DASHES}])(?!000|666|9)[0-9]{{3}}(?P<dash>[{_DASHES}])(?!00)[0-9]{{2}}(?P=dash)"
    rf"(?!0000)[0-9]{{4}}(?![0-9]|[{_DASHES}][0-9])"
)
# Nine bare digits ("123456789") or 3-2-4 groups split by spaces or dots are an SSN, and a
# Canadian SIN ("046 454 286", "046-454-286", "046454286") is one, only next to a word that says
# so ("SSN", "social security no.", "SIN", "NAS"), before or after the number, with at most
# _ID_KEYWORD_GAP characters, none a digit, in between: without one they are far likelier an
# order number, an amount or a phone number. Only the number is masked; "SSN #123456789" becomes
# "SSN #[ID]", "123456789 is my SSN" becomes "[ID] is my SSN". Bare 3-3-3 groups ("room 123 456
# 789") are not IDs (the phone matcher may still take them).
_ID_KEYWORD_GAP = 20
# A number glued to other digits, or to a "-"/"." and more digits, is part of something longer.
_NUMBER_START = rf"(?<![0-9])(?<![0-9][.{_DASHES}])"
_NUMBER_END = rf"(?![0-9]|[.{_DASHES}][0-9])"
_SSN_KEYWORD_RE = re.compile(
    r"(?<![^\W\d_])(?:ssns?|social[ -]?security|soc\.? ?sec)(?![^\W\d_])|社会安全号",
    re.IGNORECASE,
)
# 3-2-4 digits, one separator throughout; which of them were ever issued is checked apart
# (_ssn_issued), so that a never-issued number after a keyword still belongs to it.
_SSN_NUMBER = rf"(?P<number>[0-9]{{3}}(?P<sep>[ .{_DASHES}]?)[0-9]{{2}}(?P=sep)[0-9]{{4}})"
# "sin" is a word (and Spanish for "without"), "nas" a storage box: as abbreviations only in
# capitals ("SIN", "S.I.N.", "NAS"), or lower case with "#"/"number"/"no" after ("sin #").
_SIN_KEYWORD_RE = re.compile(
    r"(?<![^\W\d_])(?:"
    r"S\.?I\.?N\.?|N\.?A\.?S\.?"
    r"|(?i:sin)(?= ?(?:#|(?i:number|no)(?![^\W\d_])))"
    r"|(?i:social[ -]?insurance|assurance[ -]sociale)"
    r")(?![^\W\d_])"
)
_SIN_NUMBER = rf"(?P<number>[0-9]{{3}}(?P<sep>[ .{_DASHES}]?)[0-9]{{3}}(?P=sep)[0-9]{{3}})"


class _KeywordId(NamedTuple):
    """An ID recognised by a keyword near it: the keyword, the number right after a keyword
    (gap first; matched at the keyword's end) or right before one (gap last; searched in the
    text that ends at the keyword), and the check the number's digits must pass."""

    keyword: re.Pattern[str]
    after: re.Pattern[str]
    before: re.Pattern[str]
    valid: Callable[[str], bool]


def _keyword_id(keyword: re.Pattern[str], number: str, valid: Callable[[str], bool]) -> _KeywordId:
    gap = rf"[^0-9]{{0,{_ID_KEYWORD_GAP}}}"
    return _KeywordId(
        keyword,
        re.compile(gap + _NUMBER_START + number + _NUMBER_END),
        re.compile(_NUMBER_START + number + _NUMBER_END + gap + r"\Z"),
        valid,
    )


# Spans hidden from the phone matcher: dates and times (a common false "number"), and numbers
# introduced by "#"/"№", which are order or ticket references, not phones.
_NOT_PHONE_RE = re.compile(
    r"(?<![0-9])(?<![0-9][./-])(?:"
    r"(?:1[89]|20)[0-9]{2}([./-])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12][0-9]|3[01])"
    r"|(?:0?[1-9]|[12][0-9]|3[01])([./-])(?:0?[1-9]|1[0-2])\2(?:(?:19|20)[0-9]{2}|[0-9]{2})"
    r"|(?:0?[1-9]|1[0-2])([./-])(?:0?[1-9]|[12][0-9]|3[01])\3(?:(?:19|20)[0-9]{2}|[0-9]{2})"
    r"|[0-2]?[0-9]:[0-5][0-9](?::[0-5][0-9])?"
    r")(?![./:-]?[0-9])"
    r"|[#№]\s?[0-9][0-9-]*"
)
# Phone labels written glued to the number ("Tel13812345678", "WeChat13812345678"): the matcher
# rejects a number right after a Latin letter (part of a code like "SKU12345678"), so these are
# hidden from it. Other glued letters still make a number a code.
_GLUED_PHONE_LABEL_RE = re.compile(
    r"(?<![A-Za-z])(?:tel|phone|mob|mobile|cell|fax|call|wechat|whatsapp|weixin|wx|vx)"
    r"(?=[0-9+\uff0b])",
    re.IGNORECASE,
)
# Unseparated digit runs longer than E.164's 15 digits are references (orders, tracking), and
# would only cost the matcher time.
_LONG_RUN_RE = re.compile(r"(?<!\d)\d{16,}(?!\d)")
_DIGIT_RE = re.compile(r"\d+")
# What may separate the blocks of one phone number: the punctuation phonenumbers' matcher
# accepts between blocks (its _VALID_PUNCTUATION without "x"), at most 4 characters of it. Digits
# separated by anything else (a comma, a line break, a letter) cannot be one candidate.
_BLOCK_GAP_RE = re.compile(
    "[-\u2010-\u2015\u2212\u30fc\uff0d-\uff0f \xa0\xad\u200b\u2060\u3000"
    "()\uff08\uff09\uff3b\uff3d.\\[\\]/~\u2053\u223c\uff5e]{1,4}"
)
# What may stand between a phone number's last block and its extension: phonenumbers' labels
# for matching extensions ("x123", " ext. 123", ";ext=123", "extension 123", "доб. 123"), so the
# extension's digits join the number's cluster and the matcher sees them. Not "#", which
# introduces an order number here ("~" already joins blocks). phonenumbers takes at most 20
# extension digits after ";ext=" or a word label (group "explicit") and at most 9 after "x" or
# "int"; given a longer extension it rejects the whole candidate, number included. Such an
# extension is kept out of the cluster, the number is matched without it, and it is then masked
# together with the number (``_with_extension``).
_EXTENSION_GAP_RE = re.compile(
    r"(?P<explicit>;ext="
    r"|[ \t,]{0,4}(?:e?xt(?:ensi(?:o\u0301?|\xf3))?n?|\uff45?\uff58\uff54\uff4e?|\u0434\u043e\u0431"
    r"|anexo)[:.\uff0e]?[ \t,-]{0,4})"
    r"|[ \t,]{0,4}(?:[x\uff58]|int|\uff49\uff4e\uff54)[:.\uff0e]?[ \t,-]{0,4}",
    re.IGNORECASE,
)
_EXPLICIT_EXTENSION_DIGITS = 20
_AMBIGUOUS_EXTENSION_DIGITS = 9
# An extension label and digits right after a phone number; "_" is a hidden span (_FILLER).
_EXTENSION_AFTER_RE = re.compile(rf"(?:{_EXTENSION_GAP_RE.pattern})(?=[0-9_])", re.IGNORECASE)
_EXTENSION_RE = re.compile(rf"(?:{_EXTENSION_GAP_RE.pattern})[0-9]+", re.IGNORECASE)
# Latin letters glued after a number ("13812345678thanks", "call 4155550132pls"): the matcher
# rejects a number followed by a Latin letter (the blocks of phonenumbers' check: Basic Latin,
# Latin-1, Extended A/B/Additional, combining marks), so a run of them is hidden from it. Not a
# run with digits after it ("13812345678ABC123"): that is a code; nor an extension label
# ("415-555-2671ext.123"), which must stay to join the extension to the number. Letters
# glued before the number still make it a code ("SKU13812345678abc"), as above; other scripts
# after a number ("13812345678谢谢") never stopped the matcher.
_LATIN_LETTER = r"A-Za-z\xaa\xb5\xba\xc0-\xd6\xd8-\xf6\xf8-\u024f\u0300-\u036f\u1e00-\u1eff"
_GLUED_TRAILING_LETTERS_RE = re.compile(
    rf"(?<=[0-9])(?!(?:{_EXTENSION_GAP_RE.pattern})[0-9])"
    rf"[{_LATIN_LETTER}]+(?![0-9{_LATIN_LETTER}])",
    re.IGNORECASE,
)
# Where phonenumbers' inner matching splits a candidate into numbers: a slash, a hyphen with a
# space beside it, a wide dash.
_NUMBER_SEPARATOR_RE = re.compile(r"/|\s-|-\s|[\u2012-\u2015\uff0d]")
# Characters of context given to the phone matcher before and after a cluster.
_LEAD_CONTEXT = 6
_TAIL_CONTEXT = 4
# Two adjacent blocks this long are never parts of one phone number.
_LONG_BLOCK = 7
# No phone number, with international or national prefixes, has more digits than this.
_MAX_NUMBER_DIGITS = 24
# Longer clusters are cut into overlapping windows of this many blocks.
_WINDOW_BLOCKS = 24
# Matcher work allowed per text, counted in blocks of digits handed to a matcher for one
# region (about 100 us each): a floor, and so much per character. Real text stays well below:
# 20,000 characters of dense feedback with hundreds of numbers use about 2,000.
_PHONE_WORK_MIN = 2_000
_PHONE_WORK_PER_CHAR = 0.25
_PLUS_CHARS = "+\uff0b"
_PLUS_BEFORE_RE = re.compile(r"[+\uff0b][\s(\[.\-]*$")
# Stands in for hidden spans, keeping all offsets unchanged: not a digit, letter, currency sign
# or phone punctuation, so to the matcher it is plain text that ends a number, nothing more.
_FILLER = "_"

# Characters searched on either side of a cut for personal data that it would split: more than
# the longest email (_EMAIL_RE) or phone number.
_CUT_CONTEXT = 1024

# Characters the ASCII view replaces, one for one: non-ASCII decimal digits and spaces.
_NON_ASCII_DIGIT_OR_SPACE_RE = re.compile(
    r"(?![0-9])\d|[\xa0\u1680\u2000-\u200a\u202f\u205f\u3000]"
)

Span = tuple[int, int, str]


def luhn_valid(digits: str) -> bool:
    """Whether ``digits`` (ASCII digits only) passes the Luhn check used by payment cards."""
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def cn_id_valid(s: str) -> bool:
    """Whether ``s`` is an 18-character Chinese resident ID with a valid GB 11643 check
    character and a plausible birth date (1800-01-01 up to today). Spaces and dashes are ignored.
    """
    s = s.replace(" ", "").replace("-", "").upper()
    if len(s) != 18 or not s.isascii() or not s[:17].isdigit():
        return False
    total = sum(int(c) * w for c, w in zip(s[:17], _CN_ID_WEIGHTS, strict=True))
    if _CN_ID_CHECK[total % 11] != s[17]:
        return False
    try:
        born = _dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    return _dt.date(1800, 1, 1) <= born <= _dt.date.today()


def mask_pii(text: str) -> str:
    """Return ``text`` with emails, payment cards, national IDs (Chinese resident ID, US SSN)
    and phone numbers replaced by ``[EMAIL]``, ``[CARD]``, ``[ID]`` and ``[PHONE]``. Prices, dates,
    times, years, short numbers and "#" order numbers are left as they are."""
    if not text:
        return text
    return _replace(text, _find(_ascii_view(text)))


def mask_parts(text: str, parts: Iterable[str | None]) -> list[str | None]:
    """Each of ``parts`` (pieces of ``text``: evidence sentences) masked as ``text`` masks it.

    Masked on its own, a sentence loses the context that makes some data recognisable: a bare
    SSN whose keyword ends the previous sentence ("My SSN!" / "123456789 was leaked"), or a
    phone number split at a sentence break ("... at 415." / "555. 2671 ..."). So each
    occurrence of a part in ``text`` gets the labels of the data found in the whole text that
    overlaps it (a number cut by the part's edge is hidden whole: "[PHONE] because ..."); and
    the part is then masked on its own as well, which also covers a part not found in
    ``text``."""
    found = _find(_ascii_view(text)) if text else []
    masked: list[str | None] = []
    for part in parts:
        if not part:
            masked.append(part)
            continue
        hidden: list[Span] = []
        at = text.find(part) if found else -1
        while at != -1:
            end = at + len(part)
            hidden += [
                (max(s, at) - at, min(e, end) - at, lb) for s, e, lb in found if s < end and e > at
            ]
            at = text.find(part, at + 1)
        masked.append(mask_pii(_replace(part, _merged(hidden))))
    return masked


def _merged(spans: list[Span]) -> list[Span]:
    """``spans`` sorted, overlapping ones joined (the first one's label)."""
    out: list[Span] = []
    for start, end, label in sorted(spans):
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end), out[-1][2])
        else:
            out.append((start, end, label))
    return out


def _replace(text: str, spans: list[Span]) -> str:
    """``text`` with each of the sorted, non-overlapping ``spans`` replaced by its label."""
    if not spans:
        return text
    parts: list[str] = []
    pos = 0
    for start, end, label in spans:
        parts += (text[pos:start], label)
        pos = end
    parts.append(text[pos:])
    return "".join(parts)


def truncate_text(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, never inside personal data.

    ``text[:limit]`` may end in the first part of a phone number, card, ID or email
    ("...call 138123", "...mail john.doe@exa"), which is no longer recognisable as one, so
    ``mask_pii`` would keep it. Here such an item is replaced by its label where that fits
    ("...call [PHONE]"), and left out otherwise; a text is never cut to nothing, or to white
    space only, unless it is that already. Texts that are cut must be cut with this, before they
    are stored or masked."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    lo = max(0, limit - _CUT_CONTEXT)
    view = _ascii_view(text[lo : limit + _CUT_CONTEXT])
    cut = limit - lo
    for start, end, label in _find(view):
        if start < cut < end:
            head = text[: lo + start]
            if len(head) + len(label) <= limit:
                return head + label
            return head if head.strip() else label[:limit]
    return text[:limit]


def mask_value(value: Any) -> Any:
    """Mask strings anywhere inside ``value`` (dicts, lists, tuples), dict keys included, and
    numbers that hold personal data: a phone or card number sent as a JSON number becomes its
    masked string (``13812345678`` -> ``"[PHONE]"``). Other values are returned unchanged. Keys
    that mask alike (two emails) collide: the last one's value is kept."""
    if isinstance(value, str):
        return mask_pii(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _mask_number(value)
    if isinstance(value, dict):
        return {mask_value(k): mask_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(mask_value(v) for v in value)
    return value


def _mask_number(value: int | float) -> int | float | str:
    """``value``, or the masked form of its decimal digits where these are personal data."""
    # Whole floats as their digits ("4111111111111111", not "4.111111111111111e+15"); NaN and
    # infinities give "nan" and "inf", nothing to mask.
    whole = isinstance(value, float) and value.is_integer()
    digits = str(int(value)) if whole else repr(value)
    masked = mask_pii(digits)
    return value if masked == digits else masked


def _find(view: str) -> list[Span]:
    """The personal data in ``view`` (an ASCII view), as sorted, non-overlapping spans."""
    chosen: list[Span] = []
    for spans in (_emails(view), _cn_ids(view), _cards(view), _ssns(view), _sins(view)):
        _add_non_overlapping(chosen, spans)
    _add_non_overlapping(chosen, _phones(view, chosen))
    return chosen


def _ascii_view(text: str) -> str:
    """``text`` with every decimal digit as its ASCII digit and every space as " ", character
    for character, so that offsets stay valid: "４１１１\u3000１１１１" reads "4111 1111"."""
    if text.isascii():
        return text
    return _NON_ASCII_DIGIT_OR_SPACE_RE.sub(_ascii_char, text)


def _ascii_char(m: re.Match[str]) -> str:
    c = m.group()
    if c.isspace():
        return " "
    digit = unicodedata.decimal(c, None)
    return c if digit is None else chr(48 + digit)


def _add_non_overlapping(chosen: list[Span], spans: Iterable[Span]) -> None:
    """Insert into ``chosen`` (sorted, non-overlapping) each of ``spans`` that overlaps nothing
    already there, so earlier rules and earlier spans win. Bisection keeps a text with
    thousands of findings from costing quadratic time."""
    for span in spans:
        i = bisect.bisect_left(chosen, span)
        if (i < len(chosen) and chosen[i][0] < span[1]) or (i and chosen[i - 1][1] > span[0]):
            continue
        chosen.insert(i, span)


def _emails(text: str) -> list[Span]:
    if "@" not in text:
        return []
    return [(m.start(), m.end(), EMAIL) for m in _EMAIL_RE.finditer(text)]


def _cn_ids(text: str) -> list[Span]:
    return [(m.start(), m.end(), ID) for m in _CN_ID_RE.finditer(text) if cn_id_valid(m.group())]


def _card_shape(sizes: list[int]) -> bool:
    """Card layouts: ungrouped; fours with a shorter last group (4-4-4-4, 4-4-4-4-3, ...); and
    the Amex/Diners 4-6-5 and 4-6-4. Stricter than "any grouping" so that spaced phone numbers
    and lists of numbers are not read as cards."""
    if len(sizes) == 1:
        return True
    if sizes[0] == 4 and sizes[1] == 6 and len(sizes) == 3:
        return sizes[2] in (4, 5)
    return all(n == 4 for n in sizes[:-1]) and 1 <= sizes[-1] <= 4


def _cards(text: str) -> list[Span]:
    spans: list[Span] = []
    for run in _DIGIT_GROUPS_RE.finditer(text):
        groups = list(re.finditer(r"[0-9]+", run.group()))
        base = run.start()
        i = 0
        while i < len(groups):
            # A "+" before the first group makes it an international phone number.
            if i == 0 and base > 0 and text[base - 1] in _PLUS_CHARS:
                i += 1
                continue
            best = None
            sizes: list[int] = []
            for j in range(i, len(groups)):
                sizes.append(len(groups[j].group()))
                count = sum(sizes)
                if count > _CARD_MAX:
                    break
                if count >= _CARD_MIN and _card_shape(sizes):
                    digits = "".join(g.group() for g in groups[i : j + 1])
                    if luhn_valid(digits):
                        best = j
            if best is None:
                i += 1
                continue
            spans.append((base + groups[i].start(), base + groups[best].end(), CARD))
            i = best + 1
    return spans


def _ssn_issued(digits: str) -> bool:
    """Area 000, 666 and 900-999, group 00 and serial 0000 are never issued."""
    area = digits[:3]
    return (
        area not in ("000", "666")
        and area[0] != "9"
        and digits[3:5] != "00"
        and digits[5:] != "0000"
    )


def _ssns(text: str) -> list[Span]:
    spans = [(m.start(), m.end(), ID) for m in _SSN_RE.finditer(text)]
    return spans + _near_keyword(text, _SSN)


def _sins(text: str) -> list[Span]:
    return _near_keyword(text, _SIN)


def _near_keyword(text: str, kind: _KeywordId) -> list[Span]:
    """The valid numbers of ``kind`` next to one of its keywords. A keyword names the number
    after it, as before; and the number before it too, unless a number of the right shape
    (valid or not) follows it more closely: in "order 123456789 and my SSN 123-45-6789" the order
    number stays, in "123456789 (SSN), 987654321 (SSN)" both are masked."""
    spans: list[Span] = []
    for kw in kind.keyword.finditer(text):
        found = []
        after = kind.after.match(text, kw.end())
        if after is not None:
            found.append(after)
        lo = max(0, kw.start() - _ID_KEYWORD_GAP - len("123-456-789"))
        before = kind.before.search(text, lo, kw.start())
        if before is not None and (
            after is None or kw.start() - before.end("number") < after.start("number") - kw.end()
        ):
            found.append(before)
        spans += [
            (m.start("number"), m.end("number"), ID)
            for m in found
            if kind.valid(m.group("number").replace(m.group("sep"), ""))
        ]
    return spans


_SSN = _keyword_id(_SSN_KEYWORD_RE, _SSN_NUMBER, _ssn_issued)
_SIN = _keyword_id(_SIN_KEYWORD_RE, _SIN_NUMBER, luhn_valid)


def _phones(text: str, chosen: list[Span]) -> list[Span]:
    """Phone numbers found by ``PhoneNumberMatcher`` under the regions in ``PHONE_REGIONS``.

    Parsing is what costs (tens of microseconds per candidate and region), so the work is cut,
    finding what one matcher per region over the whole text would (checked on random phone
    lists, where it finds a few more, as candidates no longer run into each other):
    - the matcher sees a copy of the text in which chosen spans, dates, times and references
      are overwritten by a filler of the same length (offsets stay valid);
    - it runs on a small window around each cluster of digits, not on the whole text;
    - a region is skipped for a window none of whose block sequences its metadata allows;
    - regions stop being tried once the window's digits are all matched, and "+CC" numbers
      (parsed the same under every region) are hidden from the regions after the first.
    Past a work budget proportional to the text's length, the remaining clusters are masked
    whole, unverified: a text made of thousands of digit groups costs bounded time, and fails
    closed rather than leak.
    """
    if sum(len(m.group()) for m in _DIGIT_RE.finditer(text)) < MIN_PHONE_DIGITS:
        return []
    chars = list(text)
    hidden = [(s, e) for s, e, _ in chosen]
    hidden += [m.span() for m in _NOT_PHONE_RE.finditer(text)]
    hidden += [m.span() for m in _LONG_RUN_RE.finditer(text)]
    hidden += [m.span() for m in _GLUED_PHONE_LABEL_RE.finditer(text)]
    hidden += [m.span() for m in _GLUED_TRAILING_LETTERS_RE.finditer(text)]
    for s, e in hidden:
        chars[s:e] = _FILLER * (e - s)
    visible = "".join(chars)

    found: set[tuple[int, int]] = set()
    budget = max(_PHONE_WORK_MIN, int(len(text) * _PHONE_WORK_PER_CHAR))
    for window in _windows(visible):
        spans, budget = _match_window(visible, window, budget)
        if not _covers_digits(visible, spans, window.start, window.end):
            # phonenumbers gives up on a candidate that chains numbers of several regions
            # ("612 345 678 / 030 123456 / ..."); retry each piece between the separators its
            # own inner matching breaks at.
            for piece in _pieces(visible, window):
                if not _covers_digits(visible, spans, piece.start, piece.end):
                    more, budget = _match_window(visible, piece, budget)
                    spans += more
        found.update(spans)
    # Longest first, so that where regions disagree on a number's extent the longer one wins.
    found = {_with_extension(visible, s, e) for s, e in found}
    result: list[Span] = []
    _add_non_overlapping(result, ((s, e, PHONE) for s, e in sorted(found, key=_longest_first)))
    return result


def _with_extension(visible: str, start: int, end: int) -> tuple[int, int]:
    """The phone span, with an extension label and digits right after it ("x1234567890", too
    long for phonenumbers) added: an extension is masked with its number, whatever its length.
    Hidden spans are not digits in ``visible``, so none is reached into."""
    m = _EXTENSION_RE.match(visible, end)
    return (start, m.end()) if m else (start, end)


def _longest_first(span: tuple[int, int]) -> tuple[int, int]:
    return (span[0] - span[1], span[0])


class _Window(NamedTuple):
    lo: int  # the text given to the matcher, context included
    hi: int
    blocks: tuple[tuple[int, int], ...]  # spans of the digit blocks it is about
    cluster: tuple[int, int]  # the whole cluster those blocks belong to

    @property
    def start(self) -> int:
        return self.blocks[0][0]

    @property
    def end(self) -> int:
        return self.blocks[-1][1]


def _match_window(visible: str, w: _Window, budget: int) -> tuple[list[tuple[int, int]], int]:
    """Phone spans the regions' matchers find in ``w``, and the budget left. Without budget,
    the whole cluster is returned, unverified."""
    window = visible[w.lo : w.hi]
    international = _PLUS_BEFORE_RE.search(window, 0, w.start - w.lo) is not None
    runs = _block_runs(visible, w.blocks)
    spans: list[tuple[int, int]] = []
    for n, region in enumerate(PHONE_REGIONS):
        # The first region always runs for a "+" number; the rest only for the national numbers
        # phonenumbers may find inside the window.
        if not (international and n == 0) and not any(
            _may_be_national(run, region) for run in runs
        ):
            continue
        if budget <= 0:
            return [w.cluster], budget
        budget -= len(w.blocks)
        matches = list(PhoneNumberMatcher(window, region, leniency=Leniency.VALID))
        spans += [_strip(visible, w.lo + m.start, w.lo + m.end) for m in matches]
        # One "+" block has no inner candidates: no other region can find anything else.
        if (international and len(w.blocks) == 1) or _covers_digits(visible, spans, w.start, w.end):
            break
        for m in matches:
            if m.raw_string[0] in _PLUS_CHARS:
                window = window[: m.start] + _FILLER * (m.end - m.start) + window[m.end :]
    return spans, budget


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without the white space phonenumbers sometimes leaves at its edges."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _windows(text: str) -> Iterator[_Window]:
    """Matcher windows: one per cluster of at least ``MIN_PHONE_DIGITS`` digits, or, for a
    cluster of more than ``_WINDOW_BLOCKS`` blocks (a list of numbers, or noise), windows of
    that many blocks overlapping by half, so every run of up to half as many blocks (any real
    phone number) lies whole inside one of them."""
    clusters = _digit_clusters(text)
    step = _WINDOW_BLOCKS // 2
    for k, blocks in enumerate(clusters):
        if sum(e - s for s, e in blocks) < MIN_PHONE_DIGITS:
            continue
        cluster = (blocks[0][0], blocks[-1][1])
        before = clusters[k - 1][-1][1] if k else 0
        after = clusters[k + 1][0][0] if k + 1 < len(clusters) else len(text)
        if _EXTENSION_AFTER_RE.match(text, cluster[1]):
            # An extension too long for the matcher, or hidden: left out of the context, since
            # a label glued to the number ("0132x") would make the matcher reject it.
            after = cluster[1]
        i = 0
        while True:
            part = blocks[i : i + _WINDOW_BLOCKS]
            # Context on both sides, for the matcher's own checks (a leading "+" or "(", a
            # letter glued to the number, a ":30" that makes it a time), never reaching into
            # other digits.
            lo = max(part[0][0] - _LEAD_CONTEXT, blocks[i - 1][1] if i else before)
            nxt = i + _WINDOW_BLOCKS
            hi = min(part[-1][1] + _TAIL_CONTEXT, blocks[nxt][0] if nxt < len(blocks) else after)
            yield _Window(lo, hi, tuple(part), cluster)
            if nxt >= len(blocks):
                break
            i += step


def _pieces(text: str, w: _Window) -> Iterator[_Window]:
    """``w`` cut at the separators between numbers that phonenumbers' inner matching uses (a
    slash, or a hyphen with a space beside it), as windows of their own."""
    cuts = [
        i
        for i in range(1, len(w.blocks))
        if _NUMBER_SEPARATOR_RE.search(text, w.blocks[i - 1][1], w.blocks[i][0])
    ]
    if not cuts:
        return
    bounds = [0, *cuts, len(w.blocks)]
    for a, b in itertools.pairwise(bounds):
        part = w.blocks[a:b]
        if sum(e - s for s, e in part) >= MIN_PHONE_DIGITS:
            lo = w.blocks[a - 1][1] if a else w.lo
            hi = w.blocks[b][0] if b < len(w.blocks) else w.hi
            yield _Window(lo, hi, part, w.cluster)


def _digit_clusters(text: str) -> list[list[tuple[int, int]]]:
    """The blocks of digits of ``text``, as spans, grouped into clusters.

    Blocks separated only by phone punctuation (``_BLOCK_GAP_RE``) belong to one cluster, as in
    "+44 (0) 20 7946 0958"; anything else ends the candidate for phonenumbers too. Two adjacent
    blocks of ``_LONG_BLOCK`` or more digits also start a new cluster, since no phone format
    writes a number that way; that keeps a space-separated list of long numbers apart. A block
    after an extension label (``_EXTENSION_GAP_RE``) joins too, as in "415-555-2671x123": cut
    off, the number would end in a letter, which the matcher rejects.
    """
    clusters: list[list[tuple[int, int]]] = []
    for m in _DIGIT_RE.finditer(text):
        if clusters:
            last = clusters[-1][-1]
            if (
                _BLOCK_GAP_RE.fullmatch(text, last[1], m.start())
                and min(m.end() - m.start(), last[1] - last[0]) < _LONG_BLOCK
            ) or _joins_as_extension(text, last[1], m):
                clusters[-1].append(m.span())
                continue
        clusters.append([m.span()])
    return clusters


def _joins_as_extension(text: str, gap_start: int, block: re.Match[str]) -> bool:
    """Whether ``block`` is an extension phonenumbers accepts after ``text[gap_start:]``."""
    gap = _EXTENSION_GAP_RE.fullmatch(text, gap_start, block.start())
    if gap is None:
        return False
    limit = _EXPLICIT_EXTENSION_DIGITS if gap["explicit"] else _AMBIGUOUS_EXTENSION_DIGITS
    return block.end() - block.start() <= limit


def _covers_digits(text: str, spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether every digit in ``text[start:end]`` lies inside one of ``spans``."""
    pos = start
    for s, e in sorted(spans):
        if s > pos and _DIGIT_RE.search(text, pos, min(s, end)):
            return False
        pos = max(pos, e)
        if pos >= end:
            return True
    return _DIGIT_RE.search(text, pos, end) is None


def _block_runs(text: str, blocks: Iterable[tuple[int, int]]) -> list[str]:
    """The digits (as ASCII) of every run of consecutive ``blocks`` short enough to be a phone
    number: phonenumbers' candidates and inner candidates are all such runs."""
    digits = ["".join(str(int(c)) for c in text[s:e]) for s, e in blocks]
    runs: list[str] = []
    for i in range(len(digits)):
        run = ""
        for block in digits[i:]:
            run += block
            if len(run) > _MAX_NUMBER_DIGITS:
                break
            runs.append(run)
    return runs


class _RegionRules(NamedTuple):
    international_prefix: re.Pattern[str]
    national_prefix: re.Pattern[str] | None
    prefix_transformed: bool
    country_code: str
    # General number patterns of every region sharing the country code (US also means CA...),
    # since phonenumbers validates a number against the region its digits belong to.
    general: tuple[re.Pattern[str], ...]


@functools.cache
def _region_rules(region: str) -> _RegionRules:
    meta = PhoneMetadata.metadata_for_region(region)
    if meta is None:
        raise ValueError(f"phonenumbers has no metadata for region {region!r}")
    prefix = meta.national_prefix_for_parsing or meta.national_prefix
    general = []
    for other in region_codes_for_country_code(meta.country_code):
        other_meta = PhoneMetadata.metadata_for_region(other)
        if other_meta is not None and other_meta.general_desc.national_number_pattern:
            general.append(re.compile(other_meta.general_desc.national_number_pattern))
    return _RegionRules(
        re.compile(meta.international_prefix or "(?!)"),
        re.compile(prefix) if prefix else None,
        bool(meta.national_prefix_transform_rule),
        str(meta.country_code),
        tuple(general),
    )


def _may_be_national(digits: str, region: str) -> bool:
    """Whether ``digits`` (no "+") could parse as a valid number under ``region``.

    An over-approximation of phonenumbers' parse, used only to skip regions. A leading
    international prefix, or a national prefix the parser rewrites, leaves the decision to the
    parser. Otherwise the digits, with the region's country code and/or national prefix
    stripped or not, must fit the general number pattern that every valid number matches.
    """
    rules = _region_rules(region)
    if rules.international_prefix.match(digits):
        return True
    forms = [digits]
    if digits.startswith(rules.country_code):
        forms.append(digits[len(rules.country_code) :])
    if rules.national_prefix is not None:
        for form in forms[:]:
            m = rules.national_prefix.match(form)
            if m is not None and m.end() > 0:
                if rules.prefix_transformed:
                    return True
                forms.append(form[m.end() :])
    return any(p.fullmatch(f) for p in rules.general for f in forms)
