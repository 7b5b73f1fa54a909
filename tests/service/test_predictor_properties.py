"""Property tests of the predictor on the tiny bundle: any text in, a well-formed answer out.

Hypothesis throws every kind of Unicode at it (control characters, NUL, right-to-left and
combining marks, emoji, lone symbols, mixed scripts, odd whitespace) and very long texts,
and checks what every caller relies on: one prediction per text, in order; scores in [0, 1]
for every theme; themes exactly those whose reported score reaches its reported threshold;
one of the three sentiments, the highest-scoring, with scores summing to 1; evidence only for
assigned themes and always a piece of the text itself (the dashboard highlights it there);
the same answer every time. Blank texts are refused with a clear error.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from service.predictor import EmptyTextError, Predictor
from service.text import has_visible_text

SENTIMENTS = {"negative", "neutral", "positive"}

PROPS = settings(
    max_examples=100,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the working tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Pieces that stress tokenization and sentence splitting, mixed with arbitrary text.
_PIECES = st.sampled_from(
    [
        "The refund never came.",
        "客服一直说在处理。",
        "لا أحد يرد على الهاتف؟",  # Arabic, right to left
        "\u202eRTL override\u202c",
        "e\u0301\u0301\u0301",  # stacked combining marks
        "👩‍👩‍👧‍👦🔥💸",  # ZWJ emoji sequence
        "\x00",
        "\r\n",
        "\u2028",
        "\u3000",
        "\ufeff",
        "!!!",
        "...",
        "a",
        " ",
        "\t",
        "。",
        "؟",
    ]
)
_ANY_TEXT = st.text(
    # Every code point except surrogates (not encodable; the API's JSON cannot carry them).
    alphabet=st.characters(exclude_categories=("Cs",)),
    max_size=200,
)
TEXT = st.one_of(
    _ANY_TEXT,
    st.lists(st.one_of(_PIECES, _ANY_TEXT), min_size=1, max_size=12).map("".join),
    st.lists(st.one_of(_PIECES, _ANY_TEXT), min_size=1, max_size=12).map(" ".join),
).filter(has_visible_text)


@pytest.fixture(scope="module")
def predictor(tiny_bundle):
    # One intra-op thread: the tiny model's matrices are far too small to share, and on a
    # busy 2-core machine threads make each call ~20x slower. Restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    # A short window, so that even modest texts are cut into several windows.
    yield Predictor.from_path(tiny_bundle, batch_size=8, max_length=32)
    torch.set_num_threads(threads)


def assert_well_formed(predictor, text, p):
    themes = predictor.theme_ids
    assert set(p.scores) == set(themes)
    assert all(0.0 <= s <= 1.0 for s in p.scores.values()), p.scores
    # Decisions follow from the reported (rounded) scores and thresholds, in taxonomy order.
    thresholds = {t: round(predictor.bundle.thresholds[t], 4) for t in themes}
    assert p.themes == [t for t in themes if p.scores[t] >= thresholds[t]]
    assert set(p.sentiment_scores) == SENTIMENTS
    assert p.sentiment in SENTIMENTS
    assert all(0.0 <= s <= 1.0 for s in p.sentiment_scores.values())
    assert abs(sum(p.sentiment_scores.values()) - 1.0) < 1e-3
    assert p.sentiment_scores[p.sentiment] >= max(p.sentiment_scores.values()) - 1e-4
    # Evidence: one sentence per assigned theme, and a piece of the text as written.
    assert set(p.evidence) == set(p.themes)
    for theme, sentence in p.evidence.items():
        assert sentence.strip(), theme
        assert sentence in text, (theme, sentence)
    assert p.needs_review == bool(p.review_reasons)
    assert set(p.review_reasons) <= {"score_near_threshold", "language_not_evaluated"}
    assert p.model_version == predictor.model_version
    assert p.lang is None or isinstance(p.lang, str)


@PROPS
@given(texts=st.lists(TEXT, min_size=1, max_size=6))
def test_one_well_formed_prediction_per_text_in_order(predictor, texts):
    predictions = predictor.predict(texts)
    assert len(predictions) == len(texts)
    for text, p in zip(texts, predictions, strict=True):
        assert_well_formed(predictor, text, p)
        # In order: the batch answer for a text is its answer alone (padding aside).
        alone = predictor.predict([text])[0]
        assert p.scores == pytest.approx(alone.scores, abs=1e-3)
        assert p.sentiment_scores == pytest.approx(alone.sentiment_scores, abs=1e-3)


@PROPS
@given(text=TEXT)
def test_same_text_same_answer(predictor, text):
    first = predictor.predict([text])[0]
    assert predictor.predict([text])[0] == first
    # ... also when it comes twice in one batch, at either end of it.
    a, _, b = predictor.predict([text, "Something else entirely.", text])
    assert a.scores == pytest.approx(first.scores, abs=1e-3)
    assert b.scores == pytest.approx(first.scores, abs=1e-3)


@settings(PROPS, max_examples=12)
@example(pieces=["The refund never came.", "客服一直说在处理。", "\x00"], repeat=2000)  # 40k chars
@given(
    pieces=st.lists(st.one_of(_PIECES, _ANY_TEXT), min_size=1, max_size=30),
    repeat=st.integers(min_value=50, max_value=400),
)
def test_very_long_texts(predictor, pieces, repeat):
    text = (" ".join(pieces) + " ") * repeat
    assume(has_visible_text(text))
    text = text[:40_000]
    [p] = predictor.predict([text])
    assert_well_formed(predictor, text, p)


@PROPS
@given(
    texts=st.lists(TEXT, min_size=1, max_size=4),
    blank=st.text(alphabet=st.sampled_from(" \t\r\n\x0b\x0c\x1c\x85\xa0\u2000\u2028\u3000")),
    at=st.integers(min_value=0, max_value=4),
)
def test_blank_text_is_refused_with_its_position(predictor, texts, blank, at):
    at = min(at, len(texts))
    texts.insert(at, blank)
    with pytest.raises(EmptyTextError, match=rf"text {at} is empty or only whitespace"):
        predictor.predict(texts)


def test_empty_batch_is_fine(predictor):
    assert predictor.predict([]) == []


def test_langs_must_match_texts(predictor):
    with pytest.raises(ValueError, match="as long as texts"):
        predictor.predict(["one", "two"], langs=["en"])
