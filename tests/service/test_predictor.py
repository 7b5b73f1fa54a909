"""The predictor on the tiny bundle: windows, evidence, review flags, ordering."""

import itertools
import random

import numpy as np
import pytest
import torch

from service.predictor import (
    PAD_TO_MULTIPLE_OF,
    PASS_OVERHEAD_TOKENS,
    EmptyTextError,
    InvalidUnicodeError,
    Predictor,
    can_pack,
    pack_rows,
    plan_passes,
)


@pytest.fixture(scope="module")
def predictor(tiny_bundle):
    return Predictor.from_path(tiny_bundle, batch_size=4, max_length=32)


def test_one_row_per_text_in_input_order(predictor):
    texts = [
        "short",
        "a much longer text about the refund that never arrived " * 3,
        "中文评论：快递太慢了。",
    ]
    preds = predictor.predict(texts)
    assert len(preds) == 3
    singles = [predictor.predict([t])[0] for t in texts]
    for batch, single in zip(preds, singles, strict=True):
        assert batch.scores == pytest.approx(single.scores, abs=1e-3)
        assert batch.model_version == "tiny-test"


def test_passes_are_padded_to_a_few_shapes_without_changing_scores(tiny_bundle, monkeypatch):
    """Every pass is padded to a multiple of PAD_TO_MULTIPLE_OF tokens (few shapes for
    oneDNN's kernel cache), and the padding, being masked, leaves every score as it was."""
    predictor = Predictor.from_path(tiny_bundle, batch_size=3, max_length=64)
    widths = []
    forward = predictor.bundle.model.forward

    def spy(*args, **kwargs):
        widths.append(kwargs["input_ids"].shape[1])
        return forward(*args, **kwargs)

    monkeypatch.setattr(predictor.bundle.model, "forward", spy)
    texts = [("word " * n).strip() for n in (1, 2, 3, 5, 8, 11, 13, 21, 30)]
    padded = predictor.predict_proba(texts)
    assert widths and all(w % PAD_TO_MULTIPLE_OF == 0 for w in widths)

    # Unpadded, one text per pass: the same scores.
    monkeypatch.setattr("service.predictor.PAD_TO_MULTIPLE_OF", None)
    predictor.batch_size = 1
    widths.clear()
    alone = predictor.predict_proba(texts)
    assert any(w % PAD_TO_MULTIPLE_OF for w in widths)  # really unpadded this time
    np.testing.assert_allclose(padded[0], alone[0], atol=1e-5)
    np.testing.assert_allclose(padded[1], alone[1], atol=1e-5)


def _plan_cost(lengths, passes):
    width = lambda n: -(-n // PAD_TO_MULTIPLE_OF) * PAD_TO_MULTIPLE_OF  # noqa: E731
    return sum(PASS_OVERHEAD_TOKENS + (b - a) * width(lengths[b - 1]) for a, b in passes)


def test_passes_cover_every_text_once_within_the_size_limit():
    rng = random.Random(3)
    for _ in range(50):
        lengths = sorted(rng.randint(3, 256) for _ in range(rng.randint(1, 70)))
        passes = plan_passes(lengths, 8)
        assert passes[0][0] == 0 and passes[-1][1] == len(lengths)
        assert all(a < b <= a + 8 for a, b in passes)
        assert all(p[1] == q[0] for p, q in itertools.pairwise(passes))


def test_passes_are_the_cheapest_cut():
    """Against every way of cutting small sorted inputs: the plan costs no more."""
    rng = random.Random(5)
    for _ in range(40):
        lengths = sorted(rng.choice([5, 9, 17, 30, 64, 120, 250]) for _ in range(rng.randint(1, 9)))
        n = len(lengths)
        best = min(
            _plan_cost(lengths, list(itertools.pairwise((0, *cuts, n))))
            for k in range(n)
            for cuts in itertools.combinations(range(1, n), k)
            if all(b - a <= 4 for a, b in itertools.pairwise((0, *cuts, n)))
        )
        assert _plan_cost(lengths, plan_passes(lengths, 4)) == best


def test_similar_lengths_share_a_pass_and_far_ones_do_not():
    assert plan_passes([10, 11, 12, 14, 15, 16], 32) == [(0, 6)]  # one width of 16 tokens
    assert plan_passes([8] * 4 + [250] * 4, 32) == [(0, 4), (4, 8)]


def test_pack_rows_fills_rows_tightly_and_keeps_long_texts_alone():
    rows = pack_rows([40, 30, 24, 20, 10, 90], 64)
    assert rows == [[1, 3, 4], [0, 2], [5]]  # 60, 64 and a text longer than a row, by total


def test_pack_rows_place_every_text_once_within_the_row_size():
    rng = random.Random(3)
    for _ in range(200):
        lengths = [rng.randint(2, 80) for _ in range(rng.randint(1, 60))]
        rows = pack_rows(lengths, 64)
        assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
        totals = [sum(lengths[i] for i in row) for row in rows]
        assert totals == sorted(totals)
        assert all(t <= 64 or len(row) == 1 for t, row in zip(totals, rows, strict=True))
        short = sum(t for t in lengths if t < 64)
        assert sum(len(r) > 1 or lengths[r[0]] < 64 for r in rows) <= 2 * -(-short // 64) + 1


def test_packed_rows_score_as_one_text_per_row(tiny_bundle, monkeypatch):
    """Short texts share rows, fewer than the texts, and every score and evidence sentence is
    what the same texts get one per row."""
    predictor = Predictor.from_path(tiny_bundle, batch_size=4, max_length=32)
    assert predictor._packs and can_pack(predictor.bundle.model)
    rows = []
    forward = predictor.bundle.model.forward

    def spy(*args, **kwargs):
        rows.append((kwargs["input_ids"].shape[0], kwargs.get("segment_ids")))
        return forward(*args, **kwargs)

    monkeypatch.setattr(predictor.bundle.model, "forward", spy)
    texts = [("word " * n).strip() for n in (1, 2, 3, 5, 8, 13, 21, 40)]
    texts += ["Delivery took three weeks. The agent was rude. Prices went up."] * 2
    predictor.thresholds = np.zeros(len(predictor.theme_ids))  # every theme, so evidence too
    packed = predictor.predict(texts)
    assert all(segments is not None for _, segments in rows)
    assert sum(n for n, _ in rows) < len(texts)

    predictor.pack_tokens, predictor._packs = 0, False
    alone = predictor.predict(texts)
    for p, a in zip(packed, alone, strict=True):
        assert p.scores == pytest.approx(a.scores, abs=2e-4)
        assert p.sentiment_scores == pytest.approx(a.sentiment_scores, abs=2e-4)
        assert p.evidence == a.evidence


def test_only_bert_encoders_with_sdpa_attention_take_packed_rows(tiny_bundle):
    predictor = Predictor.from_path(tiny_bundle, batch_size=4, max_length=32, pack_tokens=0)
    assert not predictor._packs  # switched off
    model = predictor.bundle.model
    saved = model.encoder.config._attn_implementation
    try:
        model.encoder.config._attn_implementation = "eager"  # adds the mask to the scores
        assert not can_pack(model)
    finally:
        model.encoder.config._attn_implementation = saved
    assert can_pack(model)
    assert not can_pack(torch.nn.Linear(2, 2))


def test_row_shape(predictor):
    row = predictor.predict(["The price doubled. Support never answered."])[0].as_row("x1")
    assert row["id"] == "x1" and set(row["scores"]) == set(predictor.theme_ids)
    assert set(row["sentiment_scores"]) == {"negative", "neutral", "positive"}
    assert abs(sum(row["sentiment_scores"].values()) - 1) < 1e-3
    assert row["sentiment"] == max(row["sentiment_scores"], key=row["sentiment_scores"].get)
    # Decisions follow from the reported (rounded) scores and thresholds.
    assert set(row["themes"]) == {
        t
        for t in predictor.theme_ids
        if row["scores"][t] >= round(predictor.bundle.thresholds[t], 4)
    }
    assert set(row["evidence"]) == set(row["themes"])


def test_long_text_windows_cover_every_token(predictor):
    sentences = [f"Sentence number {i} says the delivery was late again." for i in range(40)]
    text = " ".join(sentences)
    windows = predictor._windows(text, sentences)
    assert len(windows) > 1
    budget = predictor.max_length - predictor._prefix_tokens
    assert all(n <= budget for _, n in windows)
    assert " ".join(w for w, _ in windows) == text
    total = (
        len(predictor.bundle.tokenizer(sentences, add_special_tokens=False)["input_ids"][0]) * 40
    )
    assert sum(n for _, n in windows) == total


def test_windows_of_a_long_chinese_text_keep_it_as_written(predictor):
    """Windows are cut from the text: no spaces between Chinese sentences, which the model
    never sees in Chinese text (joining the sentences with spaces added them)."""
    sentences = [f"第{i}次下单，快递又晚到了三天。" for i in range(60)]
    text = "".join(sentences)
    windows = predictor._windows(text, sentences)
    assert len(windows) > 1
    assert all(" " not in w for w, _ in windows)
    assert "".join(w for w, _ in windows) == text
    # and a text written with line breaks between its sentences keeps them
    text = "\n".join(sentences)
    windows = predictor._windows(text, sentences)
    assert "\n".join(w for w, _ in windows) == text


def test_overlong_sentence_is_cut_by_tokens_not_dropped(predictor):
    sentence = "word " * 300
    windows = predictor._windows(sentence, [sentence.strip()])
    assert len(windows) >= 300 // predictor.max_length
    assert "".join(w for w, _ in windows).replace(" ", "") == sentence.replace(" ", "")


def test_late_theme_changes_score_of_long_text(predictor):
    # A window past the model's limit still counts: the max over windows reacts to it.
    filler = "The weather was fine and nothing happened. " * 30
    a = predictor.predict([filler])[0].scores
    b = predictor.predict([filler + "THE BOT LIED ABOUT BEING HUMAN AND SOLD MY DATA!!!"])[0].scores
    assert a != b


def test_evidence_is_a_sentence_of_the_text(predictor):
    predictor.thresholds = np.zeros(len(predictor.theme_ids), dtype=np.float32)  # every theme on
    try:
        text = "Delivery took three weeks. The agent was rude. Prices went up."
        pred = predictor.predict([text])[0]
        assert set(pred.themes) == set(predictor.theme_ids)
        assert all(
            e in {"Delivery took three weeks.", "The agent was rude.", "Prices went up."}
            for e in pred.evidence.values()
        )
    finally:
        predictor.thresholds = np.array(
            [predictor.bundle.thresholds[t] for t in predictor.theme_ids], dtype=np.float32
        )


def test_span_scores_are_the_theme_head_on_each_span_mean(predictor):
    """Spans pooled at once from prefix sums score as a per-span mean would, whatever row
    and offset their text has in the pass."""
    torch.manual_seed(0)
    hidden = torch.randn(3, 10, predictor.bundle.model.theme_head.in_features)
    places = [(0, 0), (0, 4), (2, 1), (1, 0)]  # (row, first token) of each text in the pass
    idx = [5, 2, 0, 7]
    token_spans = {5: [(0, 2), (2, 4)], 2: [(1, 6)], 0: [], 7: [(0, 1), (3, 9), (2, 3)]}
    spans = [token_spans.get(i, []) for i in range(8)]
    span_p = [np.zeros((0, len(predictor.theme_ids)), np.float32) for _ in range(8)]
    predictor._score_spans(hidden, places, idx, spans, span_p)
    head = predictor.bundle.model.theme_head
    for (row, at), i in zip(places, idx, strict=True):
        expected = [
            torch.sigmoid(head(hidden[row, at + a : at + b].mean(0))).detach().numpy()
            for a, b in token_spans[i]
        ]
        assert span_p[i].shape == (len(token_spans[i]), len(predictor.theme_ids))
        for got, want in zip(span_p[i], expected, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-5)


def test_evidence_in_a_batch_is_the_evidence_of_each_text_alone(predictor):
    predictor.thresholds = np.zeros(len(predictor.theme_ids), dtype=np.float32)  # every theme on
    try:
        texts = [
            "Delivery took three weeks. The agent was rude. Prices went up.",
            "ok",
            "The bot said it was human. I want a person! My data was shared.",
            "快递太慢了。客服态度很好。价格太贵了。",
            "App crashes daily. Refund never came.",
        ]
        batch = predictor.predict(texts)
        for text, pred in zip(texts, batch, strict=True):
            assert pred.evidence == predictor.predict([text])[0].evidence
    finally:
        predictor.thresholds = np.array(
            [predictor.bundle.thresholds[t] for t in predictor.theme_ids], dtype=np.float32
        )


def test_needs_review_near_threshold_and_for_unevaluated_language(predictor):
    score = predictor.predict(["ok"], langs=["en"])[0].scores[predictor.theme_ids[0]]
    saved = predictor.thresholds.copy()
    try:
        predictor.thresholds = np.full_like(saved, 0.999)
        predictor.thresholds[0] = score + 0.01
        pred = predictor.predict(["ok"], langs=["en"])[0]
        assert pred.needs_review and "score_near_threshold" in pred.review_reasons
        predictor.thresholds = np.full_like(saved, 0.999)
        assert not predictor.predict(["ok"], langs=["en"])[0].needs_review
        flagged = predictor.predict(["ok"], langs=["xx"])[0]
        assert flagged.needs_review and flagged.review_reasons == ["language_not_evaluated"]
    finally:
        predictor.thresholds = saved


def test_empty_batch(predictor):
    assert predictor.predict([]) == []


def test_tokenizer_calls_from_several_threads_get_their_own_settings(predictor):
    """The API may run model calls on several threads at once (``api_model_workers``). A fast
    tokenizer keeps its truncation settings on one shared object: without the predictor's
    lock, a thread counting tokens (no truncation) silently gets another thread's truncated
    answer, and long texts are cut into different windows."""
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"order {k}: " + "the delivery was late and the price went up " * k for k in range(30)]
    truncated = predictor._tokenizer(texts, truncation=True, max_length=16)["input_ids"]
    full = predictor._tokenize(texts, add_special_tokens=False)["input_ids"]

    def calls(k: int) -> int:
        wrong = 0
        for _ in range(100):
            if k % 2:
                got = predictor._tokenizer(texts, truncation=True, max_length=16)["input_ids"]
                wrong += got != truncated
            else:
                wrong += predictor._tokenize(texts, add_special_tokens=False)["input_ids"] != full
        return wrong

    with ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(calls, range(4))) == 0


def test_concurrent_predictions_match_serial_ones(predictor):
    from concurrent.futures import ThreadPoolExecutor

    long = "the delivery was late again and the price went up twice this year and " * 4
    texts = [f"Order {k}. {long}" if k % 2 else f"{k}号订单：客服很好。" for k in range(8)]
    serial = [p.scores for p in predictor.predict(texts)]
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: predictor.predict(texts), range(8)))
    for run in runs:
        for got, want in zip(run, serial, strict=True):
            assert got.scores == pytest.approx(want, abs=1e-4)


# -- language --------------------------------------------------------------------------------
def test_an_unsure_language_is_reported_as_none_and_not_flagged(predictor, monkeypatch):
    """py3langid guesses on short texts ("ok" is Serbian at 2%): below the confidence the
    predictor trusts, or with no language found (``und``), it reports no language rather
    than the guess, which the API and the store would keep and group metrics by."""
    guesses = {"ok": ("sr", 0.02), "😡😡😡": ("und", 0.9), "dobro": ("sr", 0.95)}
    monkeypatch.setattr("service.predictor.detect_language", lambda text: guesses[text])
    unsure, nothing, sure = predictor.predict(list(guesses))
    assert unsure.lang is None and "language_not_evaluated" not in unsure.review_reasons
    assert nothing.lang is None and "language_not_evaluated" not in nothing.review_reasons
    assert sure.lang == "sr" and "language_not_evaluated" in sure.review_reasons
    assert predictor.predict(["ok"])[0].as_row()["lang"] is None


def test_an_unsure_guess_is_flagged_when_surely_no_evaluated_language(predictor, monkeypatch):
    """The identifier splits a Danish text between Norwegian (0.39) and Danish (0.33): too
    unsure to report a language, but sure it is none the model was evaluated on, so the text
    is flagged; "ok", unsure for want of evidence, is not."""
    guesses = {"Appen er langsom og support svarer aldrig.": ("no", 0.39), "ok": ("sr", 0.01)}
    monkeypatch.setattr("service.predictor.detect_language", lambda text: guesses[text])
    danish, ok = predictor.predict(list(guesses))
    assert danish.lang is None and "language_not_evaluated" in danish.review_reasons
    assert danish.needs_review
    assert ok.lang is None and "language_not_evaluated" not in ok.review_reasons


def test_given_codes_are_normalised_and_und_means_detect(predictor, monkeypatch):
    monkeypatch.setattr("service.predictor.detect_language", lambda text: ("en", 0.99))
    assert "en" in predictor.languages
    eng, und, given = predictor.predict(["ok", "ok", "ok"], langs=["eng", "und", "en-US"])
    for p in (eng, und, given):
        assert p.lang == "en" and "language_not_evaluated" not in p.review_reasons


def test_predict_proba_does_not_detect_languages(predictor, monkeypatch):
    def detect(text):
        raise AssertionError("evaluation needs no language")

    monkeypatch.setattr("service.predictor.detect_language", detect)
    themes, sentiments = predictor.predict_proba(["The app is slow.", "快递太慢了"])
    assert themes.shape == (2, len(predictor.theme_ids)) and sentiments.shape == (2, 3)


# -- invalid texts ---------------------------------------------------------------------------
@pytest.mark.parametrize("at", [0, 1, 2])
def test_a_lone_surrogate_is_refused_with_its_position(predictor, at):
    """One text that is not Unicode would fail the tokenizer, and so its whole batch, with
    an opaque TypeError; like a blank text it is refused first, naming the text."""
    texts = ["The chatbot kept looping.", "I just wanted a human."]
    texts.insert(at, "refund \ud800 please")
    with pytest.raises(InvalidUnicodeError, match=rf"text {at} holds a lone surrogate"):
        predictor.predict(texts)
    assert issubclass(InvalidUnicodeError, ValueError)
    # A proper pair (an emoji written as two JSON escapes) is fine.
    assert len(predictor.predict(["refund \U0001f600 please"])) == 1


# -- evidence --------------------------------------------------------------------------------
@pytest.fixture
def every_theme(predictor):
    """All themes assigned (thresholds 0), so every theme has evidence."""
    saved = predictor.thresholds
    predictor.thresholds = np.zeros(len(predictor.theme_ids))
    yield predictor
    predictor.thresholds = saved


def test_a_sentence_longer_than_a_window_gives_its_pieces_as_evidence(every_theme):
    """A text of one sentence past the window is cut by tokens; each piece is scored as
    evidence, so a theme's evidence is a short piece of the text, not the whole text."""
    text = "the delivery was late again and nobody answered my emails " * 40
    [pred] = every_theme.predict([text])
    assert len(every_theme._windows(text, [text.strip()])) > 5
    assert set(pred.evidence) == set(every_theme.theme_ids)
    for sentence in pred.evidence.values():
        assert sentence in text
        assert len(sentence) < len(text) / 4
        assert len(every_theme._tokenize([sentence], add_special_tokens=False)["input_ids"][0]) <= (
            every_theme.max_length
        )


def test_pieces_of_a_long_sentence_compete_with_the_other_sentences(every_theme):
    """Each piece is a candidate: the evidence is the best-scoring of "Hello there." and
    the pieces, theme by theme (before, the pieces were never scored)."""
    long = "the chatbot kept looping and would not transfer me to a human agent " * 8
    text = "Hello there. " + long
    [pred] = every_theme.predict([text])
    sentences = ["Hello there.", long.strip()]
    groups = []
    windows = every_theme._windows(text, sentences, groups)
    assert groups[0] == range(0, 1) and all(g is None for g in groups[1:])
    pieces = [w for w, _ in windows[1:]]
    _, _, span_p = every_theme._run(
        [w for w, _ in windows], [[(0, len("Hello there."))]] + [[(0, len(p))] for p in pieces]
    )
    candidates = ["Hello there.", *pieces]
    scores = np.concatenate(span_p)  # one row per candidate
    for k, theme in enumerate(every_theme.theme_ids):
        assert pred.evidence[theme] == candidates[int(np.argmax(scores[:, k]))]


def test_a_span_without_tokens_is_not_scored_and_never_evidence(every_theme, monkeypatch):
    """A "sentence" with no tokens of its own (a line of zero-width spaces) used to get the
    whole window's tokens, and so the whole text's score: it could win and be returned as
    invisible evidence. Now it gets no score and is no candidate."""
    text = "Delivery took three weeks.\n\u200b\u200b\nThe agent was rude."
    parts = ["Delivery took three weeks.", "\u200b\u200b", "The agent was rude."]
    spans = [(text.index(p), text.index(p) + len(p)) for p in parts]
    offsets = every_theme._tokenizer(every_theme.prefix + text, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    assert every_theme._token_spans(offsets, spans)[1] == (0, 0)
    _, _, [span_p] = every_theme._run([text], [spans])
    assert np.isnan(span_p[1]).all() and np.isfinite(span_p[[0, 2]]).all()

    monkeypatch.setattr("service.predictor.split_sentences", lambda t: parts)
    [pred] = every_theme.predict([text])
    assert set(pred.evidence) == set(every_theme.theme_ids)
    assert set(pred.evidence.values()) <= {parts[0], parts[2]}


# -- fixes from a review of the predictor ------------------------------------------------------
@pytest.mark.parametrize(
    "invisible",
    [
        "\x00\x01\x02\x7f",  # controls (scored "positive" at 0.74 before)
        "\u200b\u200b\u200b",
        "\u200d\ufeff\u2060",
        "\u2800\u2800",
        "\u3164",
        "\u0301\u0301",
    ],
)
def test_a_text_of_invisible_characters_is_refused_with_its_position(predictor, invisible):
    texts = ["The chatbot kept looping.", invisible]
    with pytest.raises(EmptyTextError, match=r"text 1 is empty or only whitespace or invisible"):
        predictor.predict(texts)


def test_emoji_or_punctuation_alone_is_still_classified(predictor):
    assert len(predictor.predict(["👍", "!!!", "😡😡😡", "\u200b👎"])) == 4


def test_needs_review_follows_from_the_reported_scores(predictor, monkeypatch):
    """The flag was computed from unrounded scores: 0.59996 is reported as 0.6, 0.1 from a
    threshold of 0.5, yet was flagged as within a margin of 0.1. Now a caller gets the flag
    back from the reported scores: round(abs(score - threshold), 4) < review_margin."""
    raw = [0.59996, 0.40004, 0.60004, 0.5999, 0.39996, 0.6, 0.4, 0.7, 0.55]
    saved = predictor.thresholds
    predictor.thresholds = np.full(len(predictor.theme_ids), 0.5)
    run = predictor._run

    def fake(texts, spans=None):
        themes, sentiments, span_p = run(texts, spans)
        themes[:] = 0.0  # 0.5 from every threshold: never near
        for i in range(len(texts)):
            themes[i, 0] = raw[i]
        return themes, sentiments, span_p

    monkeypatch.setattr(predictor, "_run", fake)
    try:
        preds = predictor.predict([f"text {i}" for i in range(len(raw))], langs=["en"] * len(raw))
    finally:
        predictor.thresholds = saved
    theme = predictor.theme_ids[0]
    expected = [False, False, False, True, False, False, False, False, True]
    assert [p.needs_review for p in preds] == expected
    for p in preds:
        recomputed = round(abs(p.scores[theme] - 0.5), 4) < predictor.review_margin
        assert p.needs_review == recomputed
        assert (theme in p.themes) == (p.scores[theme] >= 0.5)


def _pieces_in(text, pieces):
    """Where each piece lies in ``text``, in order."""
    at, spans = 0, []
    for piece in pieces:
        start = text.index(piece, at)
        spans.append((start, start + len(piece)))
        at = start + len(piece)
    return spans


def test_a_long_sentence_is_cut_between_words(predictor):
    """Pieces of a sentence longer than a window ended at any token ("unbeli|evably"); now
    each ends before the last word that fits, so every piece is whole words."""
    text = "honestly the customer service representatives were unbelievably unhelpful and " * 20
    text = text.strip()
    budget = predictor.max_length - predictor._prefix_tokens
    pieces = predictor._cut_by_tokens(text, budget)
    assert len(pieces) > 5
    for (a, b), (piece, n) in zip(_pieces_in(text, [p for p, _ in pieces]), pieces, strict=True):
        assert 0 < n <= budget and piece == piece.strip()
        assert a == 0 or text[a - 1] == " "
        assert b == len(text) or text[b] == " "
    assert " ".join(p for p, _ in pieces) == text
    tokens = predictor._tokenize([text], add_special_tokens=False)["input_ids"][0]
    assert sum(n for _, n in pieces) == len(tokens)
    # Windows of a text cut so are those pieces.
    assert predictor._windows(text, [text]) == pieces


def test_a_word_longer_than_a_window_and_cjk_are_cut_by_tokens(predictor):
    budget = predictor.max_length - predictor._prefix_tokens
    word = "x" * 40 + "abcdefghijklmnopqrstuvwxyz" * 20  # one word of many tokens
    pieces = predictor._cut_by_tokens(f"slow {word} app", budget)
    assert "".join(p for p, _ in pieces).replace(" ", "") == f"slow{word}app"
    assert all(0 < n <= budget for _, n in pieces)
    # No spaces in Chinese: every piece but the last takes the whole budget.
    chinese = "快递太慢了客服也不回复价格太贵了应用经常崩溃" * 20
    pieces = predictor._cut_by_tokens(chinese, budget)
    assert "".join(p for p, _ in pieces) == chinese
    assert all(n == budget for _, n in pieces[:-1])
