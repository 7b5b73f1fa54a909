"""Sentence splitting (service/text.py): where sentences end, and what joins them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.text import split_sentences


def test_western_sentences_end_at_punctuation_and_a_space():
    text = "The delivery was very slow. The price is far too high! Why? Nobody answered…"
    assert split_sentences(text) == [
        "The delivery was very slow.",
        "The price is far too high!",
        "Why?",
        "Nobody answered…",
    ]


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
