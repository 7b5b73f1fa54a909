"""Language identification for texts that arrive without a language code."""

from __future__ import annotations

from functools import lru_cache

# py3langid tells Chinese apart from Japanese and Korean well but returns regional variants
# and a few codes that differ from the ISO 639-1 ones used in the labelled data.
_ALIASES = {"zh-tw": "zh", "zh-cn": "zh", "iw": "he", "jw": "jv"}


def normalise_language(code: str | None) -> str | None:
    """The language of a code a caller gave: ``"EN"``, ``"en-US"`` and ``"en_GB"`` are ``"en"``
    (the model is evaluated per language, not per region); None when blank."""
    if code is None or not code.strip():
        return None
    primary = code.strip().lower().replace("_", "-").split("-")[0]
    return _ALIASES.get(primary, primary) or None


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """Return ``(iso_code, probability)`` for ``text``; ``("und", 0.0)`` for empty text."""
    if not text.strip():
        return "und", 0.0
    lang, prob = _identifier().classify(text)
    return _ALIASES.get(lang, lang), float(prob)
