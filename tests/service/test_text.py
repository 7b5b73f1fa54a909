"""Sentence splitting (service/text.py): where sentences end, and what joins them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.text import has_visible_text, lstrip_invisible, split_sentences


def test_western_sentences_end_at_punctuation_and_a_space():
    text = "The delivery was very slow. The price is far too high! Why? Nobody answered…"
    assert split_sentences(text) == [
        "The delivery was very slow.",
        "The price is far too high!",
        "Why?",
        "Nobody answered…",
    ]


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Dr. Lee was great. The wait was long.", ["Dr. Lee was great.", "The wait was long."]),
        ("Mrs. Chen helped. Thanks!", ["Mrs. Chen helped.", "Thanks!"]),
        ("I asked for e.g. a refund. Nothing.", ["I asked for e.g. a refund.", "Nothing."]),
        ("Room No. 5 was dirty. Staff rude.", ["Room No. 5 was dirty.", "Staff rude."]),
        ("Herr Dr. Müller war nett. Aber teuer.", ["Herr Dr. Müller war nett.", "Aber teuer."]),
        ("Srta. López fue amable. El precio no.", ["Srta. López fue amable.", "El precio no."]),
        ("Slower vs. last year. Pricier too.", ["Slower vs. last year.", "Pricier too."]),
        # Not abbreviations: a sentence ending in "No", an initial, a word ending in "dr".
        ("The answer was No. Then I left.", ["The answer was No.", "Then I left."]),
        ("Plan B. Then it crashed.", ["Plan B.", "Then it crashed."]),
        ("Ask Sandr. He knows.", ["Ask Sandr.", "He knows."]),
    ],
)
def test_a_point_after_an_abbreviation_does_not_end_the_sentence(text, sentences):
    """Evidence is a whole sentence: "Dr. Lee was great." must not come back as "Dr."."""
    assert split_sentences(text) == sentences


def test_numbered_list_markers_lead_into_their_item():
    """A marker such as "1." is no sentence: it joins the item it numbers, so it can never
    be returned as a theme's evidence on its own."""
    text = (
        "1. The price is far too high for what you get\n"
        "2. Support never answers my emails\n"
        "3. The app crashes every day"
    )
    assert split_sentences(text) == [
        "1. The price is far too high for what you get",
        "2. Support never answers my emails",
        "3. The app crashes every day",
    ]
    assert split_sentences("a. Too slow\nb. Too expensive") == ["a. Too slow", "b. Too expensive"]
    assert split_sentences("A) Too slow\nB) Too expensive") == ["A) Too slow", "B) Too expensive"]
    assert split_sentences("Issues:\n- slow\n- rude") == ["Issues:", "- slow", "- rude"]


def test_fragments_without_letters_at_the_end_join_the_last_sentence():
    assert split_sentences("Great app! 10/10") == ["Great app! 10/10"]
    assert split_sentences("Thanks for the quick fix.\n:)") == ["Thanks for the quick fix.\n:)"]
    assert split_sentences("😡😡😡") == ["😡😡😡"]  # nothing else: it stays a sentence
    assert split_sentences("1.\n2.") == ["1.\n2."]


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        # Hindi: danda and double danda, with or without a space after them
        (
            "डिलीवरी बहुत धीमी थी। कीमत बहुत ज़्यादा है।ग्राहक सेवा ने जवाब नहीं दिया॥",
            ["डिलीवरी बहुत धीमी थी।", "कीमत बहुत ज़्यादा है।", "ग्राहक सेवा ने जवाब नहीं दिया॥"],
        ),
        ("ዋጋው ውድ ነው። አገልግሎቱ ቀርፋፋ ነው።", ["ዋጋው ውድ ነው።", "አገልግሎቱ ቀርፋፋ ነው።"]),  # Amharic
        ("Գինը բարձր է։ Սպասարկումը դանդաղ է։", ["Գինը բարձր է։", "Սպասարկումը դանդաղ է։"]),
        ("ဈေးကြီးတယ်။ဝန်ဆောင်မှုနှေးတယ်။", ["ဈေးကြီးတယ်။", "ဝန်ဆောင်မှုနှေးတယ်။"]),  # Myanmar
        ("价格太贵．客服不回复．", ["价格太贵．", "客服不回复．"]),  # full-width full stop
        ("値段が高い｡返事がない｡", ["値段が高い｡", "返事がない｡"]),  # half-width ideographic
        ("快递太慢了！客服也不回。价格太贵？", ["快递太慢了！", "客服也不回。", "价格太贵？"]),
    ],
)
def test_full_stops_of_other_scripts_need_no_space(text, sentences):
    assert split_sentences(text) == sentences


def test_a_run_of_stops_ends_one_sentence():
    assert split_sentences("等了很久……客服也不回") == ["等了很久……", "客服也不回"]
    assert split_sentences("真的吗？！太慢了") == ["真的吗？！", "太慢了"]


def test_ascii_question_and_exclamation_marks_need_a_space():
    """Inside a URL's query ("order?id=123") or "wow!!!great" they end no sentence."""
    text = "The link https://shop.example.com/order?id=123&x=1 gives a 404. Very slow site!"
    assert split_sentences(text) == [
        "The link https://shop.example.com/order?id=123&x=1 gives a 404.",
        "Very slow site!",
    ]
    assert split_sentences("Wow!Great support") == ["Wow!Great support"]


@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=200))
def test_sentences_are_pieces_of_the_text_in_order_and_lose_only_whitespace(text):
    sentences = split_sentences(text)
    cursor = 0
    for sentence in sentences:
        assert sentence and sentence == sentence.strip()
        at = text.find(sentence, cursor)
        assert at >= 0
        cursor = at + len(sentence)
    assert "".join("".join(sentences).split()) == "".join(text.split())


# -- fixes from a review of sentence splitting and empty texts ---------------------------------
def test_a_stop_followed_by_emoji_quotes_or_brackets_then_a_space_ends_the_sentence():
    """Before, the break needed the space right after "!": "Bad app!😡 Support slow" was one
    sentence. What closes a sentence stays with it."""
    assert split_sentences("Bad app!😡 Support slow") == ["Bad app!😡", "Support slow"]
    assert split_sentences("Refund please!!😡😡 No answer") == ["Refund please!!😡😡", "No answer"]
    assert split_sentences("Love it 👍🏽. Fast too") == ["Love it 👍🏽.", "Fast too"]
    assert split_sentences('He said "wait." Then nothing') == ['He said "wait."', "Then nothing"]
    assert split_sentences("Never again (seriously!) Support ignored me.") == [
        "Never again (seriously!)",
        "Support ignored me.",
    ]
    assert split_sentences("他说“太贵了。”然后走了。") == ["他说“太贵了。”", "然后走了。"]
    assert split_sentences("太慢了！😡客服不回") == ["太慢了！😡", "客服不回"]
    # Still no break without a space, nor for symbols alone at the end.
    assert split_sentences("Wow!😡Great support") == ["Wow!😡Great support"]
    assert split_sentences("Great!! 😡😡😡") == ["Great!! 😡😡😡"]


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("価格は３．５ドルです", ["価格は３．５ドルです"]),  # full-width decimal point
        ("価格は3．5ドルです。高い", ["価格は3．5ドルです。", "高い"]),
        ("价格太贵．客服不回复．", ["价格太贵．", "客服不回复．"]),  # still a full stop
        ("涨到３．客服不回", ["涨到３．", "客服不回"]),  # a digit before it only
        (
            "The app costs $3.50 per month. Support is slow.",
            ["The app costs $3.50 per month.", "Support is slow."],
        ),
    ],
)
def test_a_decimal_point_between_digits_ends_no_sentence(text, sentences):
    assert split_sentences(text) == sentences


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        (
            "แอปช้ามาก ฝ่ายบริการลูกค้าไม่ตอบ ราคาแพงเกินไป",  # Thai
            ["แอปช้ามาก", "ฝ่ายบริการลูกค้าไม่ตอบ", "ราคาแพงเกินไป"],
        ),
        ("ແອັບຊ້າຫຼາຍ ລາຄາແພງ", ["ແອັບຊ້າຫຼາຍ", "ລາຄາແພງ"]),  # Lao
        ("កម្មវិធីយឺតណាស់ តម្លៃថ្លៃពេក", ["កម្មវិធីយឺតណាស់", "តម្លៃថ្លៃពេក"]),  # Khmer
        # A space next to a number or a Latin word separates nothing.
        ("ราคา 500 บาท แพงมาก", ["ราคา 500 บาท", "แพงมาก"]),
        ("แอป Shopee ช้ามาก", ["แอป Shopee ช้ามาก"]),
    ],
)
def test_thai_lao_and_khmer_sentences_end_at_a_space(text, sentences):
    assert split_sentences(text) == sentences


@pytest.mark.parametrize(
    "text",
    [
        "",
        " \t\r\n\u3000\u00a0",
        "\x00\x01\x02\x7f",  # controls
        "\u200b\u200b\u200b",  # zero-width spaces
        "\u200d\ufeff\u2060",  # joiner, BOM, word joiner
        "\u200e\u202e\u00ad",  # bidi marks, soft hyphen
        "\u0301\u0301",  # combining marks without a base
        "\u20dd",  # enclosing mark
        "\ufe0f\U000e0061",  # variation selector, tag
        "\u2800\u2800",  # blank Braille pattern
        "\u3164",  # Hangul filler
        "\u115f\u1160\uffa0",
    ],
)
def test_text_of_invisible_characters_has_nothing_visible(text):
    assert not has_visible_text(text)
    assert lstrip_invisible(text) == ""


@pytest.mark.parametrize(
    "text", ["👍", "!!!", "...", "10/10", ":)", "a", "é", "\u200b\u200bx", "🇩🇪", "客", "\ue000"]
)
def test_emoji_punctuation_and_letters_are_visible(text):
    assert has_visible_text(text)


def test_lstrip_invisible_keeps_the_text_from_its_first_visible_character():
    assert lstrip_invisible("\u200b\ufeff \x00Slow app\u200b") == "Slow app\u200b"
    assert lstrip_invisible("Slow") == "Slow"


@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=50))
def test_whitespace_alone_is_never_visible(text):
    if not text.strip():
        assert not has_visible_text(text)
    assert has_visible_text(text) == bool(lstrip_invisible(text))
