"""Language codes given by callers, and detection."""

import pytest

from service.language import (
    canonical_language,
    detect_language,
    identifier_languages,
    normalise_language,
    prior_share,
    share_in,
    surely_none_of,
)

# ISO 639-3's individual languages of the macrolanguages among the evaluated languages
# (SIL's code tables): Arabic (ara) and Chinese (zho). Any the identifier can return is
# a variety of that language, and must count as it.
_ARABIC = (
    "aao abh abv acm acq acw acx acy adf aeb aec afb ajp apc apd arb arq ars ary arz auz "
    "avl ayh ayl ayn ayp pga shu ssh"
)
_CHINESE = "cdo cjy cmn cnp cpx csp czh czo gan hak hsn lzh mnp nan wuu yue"
VARIETIES = {"ar": set(_ARABIC.split()), "zh": set(_CHINESE.split())}


@pytest.mark.parametrize(
    ("code", "language"),
    [
        ("en", "en"),
        ("EN", "en"),
        ("en-US", "en"),
        ("en_GB", "en"),
        (" zh-CN ", "zh"),
        ("zh-Hant-TW", "zh"),
        ("iw", "he"),
        ("in", "id"),
        ("", None),
        ("  ", None),
        (None, None),
    ],
)
def test_a_given_code_counts_as_its_language(code, language):
    assert normalise_language(code) == language


@pytest.mark.parametrize(
    ("code", "language"),
    [
        ("eng", "en"),
        ("zho", "zh"),
        ("chi", "zh"),
        ("cmn", "zh"),
        ("cmn-Hans-CN", "zh"),
        ("por", "pt"),
        ("spa", "es"),
        ("fra", "fr"),
        ("fre", "fr"),
        ("deu", "de"),
        ("ger", "de"),
        ("jpn", "ja"),
        ("kor", "ko"),
        ("ara", "ar"),
        ("arb", "ar"),
        ("rus", "ru"),
        ("ita", "it"),
        ("nld", "nl"),
        ("dut", "nl"),
        ("ind", "id"),
        ("tur", "tr"),
        ("vie", "vi"),
        ("HIN", "hi"),
    ],
)
def test_three_letter_codes_of_the_evaluated_languages_count_as_them(code, language):
    assert normalise_language(code) == language


@pytest.mark.parametrize("code", ["und", "UND", "und-Latn", "zxx"])
def test_undetermined_codes_leave_the_language_to_detection(code):
    assert normalise_language(code) is None


def test_every_variety_the_identifier_returns_counts_as_its_language():
    """py3langid names varieties (yue and wuu for Chinese, arz and ary for Arabic): each
    must count as the evaluated language, or its texts are flagged as unevaluated and kept
    apart from their language in the metrics."""
    codes = set(identifier_languages())
    assert {"yue", "wuu", "arz", "ary", "zh", "ar"} <= codes  # this test sees them
    for language, varieties in VARIETIES.items():
        for code in codes & set(varieties):
            assert canonical_language(code) == language, code
    assert canonical_language("zxx") is None  # "no linguistic content"
    # Every other code is its own language, as the identifier names it.
    other = codes - {"zxx"} - {v for vs in VARIETIES.values() for v in vs}
    assert all(canonical_language(code) == code for code in other)


def test_detection_names_chinese_and_english():
    assert detect_language("快递太慢了，等了两个星期")[0] == "zh"
    assert detect_language("The delivery was late again and nobody answered.")[0] == "en"
    assert detect_language("   ") == ("und", 0.0)


def test_detection_reports_varieties_as_their_language():
    # Traditional Chinese comes back from py3langid as Cantonese (yue).
    text = "客戶來電詢問本期電費繳費期限，已告知本月25日前繳納即可，客戶無其他問題。"
    assert detect_language(text)[0] == "zh"


EVALUATED = (
    "ar",
    "de",
    "en",
    "es",
    "fr",
    "hi",
    "id",
    "it",
    "ja",
    "ko",
    "nl",
    "pt",
    "ru",
    "tr",
    "vi",
    "zh",
)


@pytest.mark.parametrize(
    "text",
    [
        "Appen er langsom og support svarer aldrig.",  # Danish: Norwegian 0.39, Danish 0.33
        "Programu ni polepole sana",  # Swahili, 0.33 at best
    ],
)
def test_a_text_surely_in_no_evaluated_language_has_almost_no_share(text):
    """The identifier is unsure which language these are in (no guess reaches 0.5), but
    sure that they are in none of the evaluated ones."""
    assert detect_language(text)[1] < 0.5
    assert share_in(text, EVALUATED) < 0.05


@pytest.mark.parametrize("text", ["ok", "👍👍", "10/10", "Too expensive", "Zu teuer", "Merci"])
def test_texts_without_evidence_keep_a_share_near_the_prior(text):
    """Short texts carry little evidence of any language: they must not count as out of
    coverage just because the identifier's best guess is Serbian at 1%."""
    assert share_in(text, EVALUATED) > 0.1


def test_share_is_one_for_a_clear_text_and_zero_for_an_empty_one():
    assert share_in("快递太慢了，等了两个星期，客服也不回复", EVALUATED) > 0.99
    assert share_in("   ", EVALUATED) == 0.0
    assert share_in("The delivery was late again.", ["en"]) > 0.9


@pytest.mark.parametrize("languages", [EVALUATED, ("en", "zh"), ("en",)])
def test_texts_without_evidence_are_never_surely_out_of_coverage(languages):
    """Relative to the prior: for a model evaluated on English alone, "ok" gets 0.007 of the
    identifier's probability, as much as a text with nothing in it."""
    for text in ("ok", "!!!", "👍👍", "thanks", "Too expensive"):
        assert not surely_none_of(text, languages), text
    assert prior_share(frozenset(languages)) == pytest.approx(share_in("10/10", languages))


def test_a_danish_text_is_surely_in_none_of_the_evaluated_languages():
    danish = "Appen er langsom og support svarer aldrig."
    assert surely_none_of(danish, EVALUATED) and surely_none_of(danish, ("en", "zh"))
    assert not surely_none_of(danish, (*EVALUATED, "da"))
    assert not surely_none_of(danish, ())  # no evaluated languages: nothing to be out of
