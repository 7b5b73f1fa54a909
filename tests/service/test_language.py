"""Language codes given by callers, and detection."""

import pytest

from service.language import detect_language, normalise_language


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
        ("", None),
        ("  ", None),
        (None, None),
    ],
)
def test_a_given_code_counts_as_its_language(code, language):
    assert normalise_language(code) == language


def test_detection_names_chinese_and_english():
    assert detect_language("快递太慢了，等了两个星期")[0] == "zh"
    assert detect_language("The delivery was late again and nobody answered.")[0] == "en"
    assert detect_language("   ") == ("und", 0.0)
