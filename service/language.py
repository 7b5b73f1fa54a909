"""Language codes: the ones callers give, and identification for texts that arrive without."""

from __future__ import annotations

from collections.abc import Collection
from functools import lru_cache

# BCP 47 / ISO 639-2 codes that name no language: the text's language is detected instead.
UNDETERMINED = "und"
_NO_LANGUAGE = {UNDETERMINED, "zxx"}  # undetermined; no linguistic content

# Codes that count as another one. The labelled data and the bundle's evaluated languages use
# ISO 639-1 codes; the model is evaluated per language, not per region or variety.
_ALIASES = {
    # Withdrawn ISO 639-1 codes, still sent by old clients (Java's Locale, for one).
    "iw": "he",
    "jw": "jv",
    "in": "id",
    # ISO 639-2 (B and T) and 639-3 codes of the evaluated languages; cmn and arb are the
    # individual languages of standard Chinese and Arabic.
    "ara": "ar",
    "arb": "ar",
    "deu": "de",
    "ger": "de",
    "eng": "en",
    "spa": "es",
    "fra": "fr",
    "fre": "fr",
    "hin": "hi",
    "ind": "id",
    "ita": "it",
    "jpn": "ja",
    "kor": "ko",
    "nld": "nl",
    "dut": "nl",
    "por": "pt",
    "rus": "ru",
    "tur": "tr",
    "vie": "vi",
    "zho": "zh",
    "chi": "zh",
    "cmn": "zh",
    # Varieties py3langid 0.4.0 returns: Cantonese and Wu Chinese (written Chinese, often
    # Traditional characters, comes back as these), Egyptian and Moroccan Arabic.
    "yue": "zh",
    "wuu": "zh",
    "arz": "ar",
    "ary": "ar",
}


def canonical_language(code: str) -> str | None:
    """The language a bare, lower-case code counts as (``"eng"`` and ``"en"`` are ``"en"``,
    ``"yue"`` is ``"zh"``); None for codes that name no language (``und``, ``zxx``)."""
    if code in _NO_LANGUAGE:
        return None
    return _ALIASES.get(code, code)


def normalise_language(code: str | None) -> str | None:
    """The language of a code a caller gave: ``"EN"``, ``"en-US"``, ``"en_GB"`` and ``"eng"``
    are ``"en"`` (the model is evaluated per language, not per region); None when blank or
    undetermined (``"und"``), so that the language is detected."""
    if code is None or not code.strip():
        return None
    primary = code.strip().lower().replace("_", "-").split("-")[0]
    return canonical_language(primary) if primary else None


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def identifier_languages() -> list[str]:
    """Every code the language identifier can return, as it returns them."""
    return list(_identifier().nb_classes)


def detect_language(text: str) -> tuple[str, float]:
    """Return ``(iso_code, probability)`` for ``text``, the code as :func:`canonical_language`
    gives it; ``("und", probability)`` for text without language (emoji, numbers) and
    ``("und", 0.0)`` for empty text."""
    if not text.strip():
        return UNDETERMINED, 0.0
    lang, prob = _identifier().classify(text)
    return canonical_language(lang) or UNDETERMINED, float(prob)


def _share(ranking: list[tuple[str, float]], languages: Collection[str]) -> float:
    return sum(p for code, p in ranking if canonical_language(code) in languages)


def share_in(text: str, languages: Collection[str]) -> float:
    """The identifier's probability that ``text`` is in one of ``languages`` (codes as
    :func:`canonical_language` gives them), summed over all its guesses: near 0 when it cannot
    tell which language a text is in but can tell it is none of these (Danish split between
    Norwegian and Danish), :func:`prior_share` for texts that carry no evidence ("ok", "👍")."""
    if not text.strip():
        return 0.0
    return _share(_identifier().rank(text), languages)


@lru_cache(maxsize=16)
def prior_share(languages: frozenset[str]) -> float:
    """:func:`share_in` for a text that tells nothing about its language: the identifier's
    prior, what it answers for an empty text (about 0.14 for the 16 evaluated languages, 0.03
    for English and Chinese alone, 0.007 for English alone)."""
    return _share(_identifier().rank(""), languages)


def surely_none_of(text: str, languages: Collection[str], evidence: float = 1 / 3) -> bool:
    """Whether ``text`` is surely in none of ``languages`` although the identifier may not know
    which language it is in: their :func:`share_in` is under ``evidence`` times what a text
    with no evidence gets (:func:`prior_share`). Relative to the prior, so that "ok" is not
    out of coverage for a model evaluated on one or two languages only."""
    languages = frozenset(languages)
    return bool(languages) and share_in(text, languages) < evidence * prior_share(languages)
