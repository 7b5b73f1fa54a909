"""The one predictor used by evaluation, batch scoring and the API, so all agree on a text.

For each text it returns the themes over their thresholds with scores, every theme's score,
the sentiment with its three scores, ``needs_review`` and, per theme, the evidence sentence.

Texts longer than the model's window are cut at sentence boundaries into windows (a sentence
longer than a window is cut between words, by tokens), so nothing past the limit is ignored:
a theme's score is its maximum over windows, the sentiment the token-weighted mean.

The evidence for a theme is the sentence whose tokens, mean-pooled from the same forward
pass and put through the theme head, score highest for it: no extra model call. Each piece of
a sentence cut by tokens competes as a sentence of its own.

Short texts share rows of ``pack_tokens`` tokens where the model takes packed rows, each text
masked off from the others with positions of its own; rows (or texts) are then cut into
passes where padding plus a per-pass overhead cost least.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from service.backends.bf16 import ROWS_ATTENTION
from service.bundle import Bundle, BundleError, load_bundle
from service.language import UNDETERMINED, detect_language, normalise_language, surely_none_of
from service.modeling import ThemeClassifier
from service.text import has_visible_text, is_unicode, split_sentences

# Language ids below this probability are too unsure to report, or to flag a text as out of
# coverage: on short texts py3langid guesses wildly ("ok" is Serbian at 2%).
_LANG_CONFIDENCE = 0.5
# When the identifier is unsure of a text's language, the text still counts as in an
# unevaluated one if the evaluated languages together get less than this share of what a
# text with no evidence gets (language.surely_none_of). With the 16 evaluated languages: under
# 0.047 against 0.14 for "ok", "👍" or "10/10"; Danish split between Norwegian and Danish gets
# 0.001, Swahili 0.04. 31 of the 10,555 labelled texts fall below it (romanised Hindi and
# Arabic, which the identifier does not know).
_LANG_EVIDENCE = 1 / 3
# Passes are padded to a multiple of 8 tokens. oneDNN (torch's bf16 and fp32 matrix products on
# CPU) compiles a kernel for every input shape and keeps ONEDNN_PRIMITIVE_CACHE_CAPACITY of them
# (64 by default in cxthemes, to bound memory); with every length its own shape, passes of mixed
# short texts kept recompiling. Eight times fewer shapes: +10-18% texts/s on the bf16 student
# with less memory (bench/RESULTS.md). Padding is masked, so the scores do not change.
PAD_TO_MULTIPLE_OF = 8
# What one extra forward pass costs, in padded tokens. Fitted on the 10-layer student in bf16
# on 2 cores: a pass costs about 5.9 ms plus 0.073 ms per token (batch x padded length), so a
# pass is worth about 80 tokens; the lower value leans towards less padding.
PASS_OVERHEAD_TOKENS = 64
# Short texts share a row of this many tokens (the pack_tokens setting). Each keeps to its own
# tokens through the attention mask and has its own positions, so its scores are as if it ran
# alone (exactly in fp32; bf16 rounding follows the pass's width, within ~0.03), but passes
# carry no padding per text and far fewer passes are needed. bf16 student,
# 2 cores, texts of about 32 tokens, against planned padded passes: micro-batches of 32 texts
# +26-31%, sorted offline batches +10%. Longer rows cost more (each token attends to its whole
# row): rows of 96 tokens gained about as much, 128 +16-22%, 256 0-5% (bench/RESULTS.md).
PACK_TOKENS = 64
# Characters of scripts written without spaces between words (CJK ideographs, kana, Thai, Lao,
# Khmer, Myanmar): a sentence cut by tokens may be cut at any token boundary next to them.
_NO_SPACES = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f]"
)


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Texts (by token length) packed into rows of at most ``capacity`` tokens: longest
    first, each into the row it fills most tightly (best fit decreasing). A text of
    ``capacity`` tokens or more gets a row of its own. Rows come back sorted by their total
    tokens, as :func:`plan_passes` takes them."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    rows_by_room: list[list[int]] = [[] for _ in range(capacity + 1)]  # row ids by free tokens
    for i in order:
        n = lengths[i]
        if n >= capacity:
            rows.append([i])
            continue
        for room in range(n, capacity):
            if rows_by_room[room]:
                r = rows_by_room[room].pop()
                break
        else:
            r, room = len(rows), capacity
            rows.append([])
        rows[r].append(i)
        rows_by_room[room - n].append(r)
    fills = [sum(lengths[i] for i in row) for row in rows]
    return [rows[r] for r in sorted(range(len(rows)), key=fills.__getitem__)]


# Attention implementations that take the boolean 4D mask of packed rows.
PACKABLE_ATTENTION = ("sdpa", ROWS_ATTENTION)


def can_pack(model: torch.nn.Module) -> bool:
    """Whether ``model`` takes packed rows: a torch :class:`~service.modeling.ThemeClassifier`
    (bf16 or not) on a BERT encoder with SDPA attention (or the bf16 backend's
    :func:`~service.backends.bf16.rows_attention`), which takes position ids and a boolean 4D
    attention mask. ONNX graphs (fixed inputs) and other position schemes (XLM-R
    counts positions from its padding id) run one text per row."""
    inner = getattr(model, "model", model)
    encoder = getattr(inner, "encoder", None)
    config = getattr(encoder, "config", None)
    return (
        isinstance(inner, ThemeClassifier)
        and getattr(config, "model_type", None) == "bert"
        and getattr(config, "_attn_implementation", None) in PACKABLE_ATTENTION
    )


def plan_passes(lengths: Sequence[int], max_size: int) -> list[tuple[int, int]]:
    """Cut texts sorted by token length into passes of at most ``max_size``: the ``(start,
    end)`` ranges that minimise the padded tokens computed plus PASS_OVERHEAD_TOKENS per pass
    (dynamic programming over the cut points). Fixed-size passes either pad short texts to
    long ones or pay the per-pass overhead too often; on micro-batches of 32 short texts this
    plan is about 8% cheaper than passes of 8 (bench/RESULTS.md)."""
    n = len(lengths)
    mult = PAD_TO_MULTIPLE_OF or 1
    best = [0.0] + [math.inf] * n
    cut = [0] * (n + 1)
    for end in range(1, n + 1):
        padded = -(-lengths[end - 1] // mult) * mult  # the longest of the pass sets its width
        for start in range(max(0, end - max_size), end):
            cost = best[start] + PASS_OVERHEAD_TOKENS + (end - start) * padded
            if cost < best[end]:
                best[end], cut[end] = cost, start
    passes, end = [], n
    while end > 0:
        passes.append((cut[end], end))
        end = cut[end]
    return passes[::-1]


class EmptyTextError(ValueError):
    """A text is empty or only whitespace or other invisible characters (controls, zero-width
    and format characters, combining marks, fillers: see :func:`~service.text.has_visible_text`):
    there is nothing to classify (the model would still assign themes to it). Callers drop or
    report such texts before predicting."""


class InvalidUnicodeError(ValueError):
    """A text holds a lone surrogate (half of a UTF-16 pair, as a JSON ``"\\ud800"`` escape
    gives): it is not Unicode and the tokenizer cannot take it. Callers drop or report such
    texts before predicting (the API's schema and the batch readers do)."""


@dataclass
class Prediction:
    """What the model says about one text."""

    themes: list[str]
    scores: dict[str, float]
    sentiment: str
    sentiment_scores: dict[str, float]
    needs_review: bool
    evidence: dict[str, str]
    model_version: str
    lang: str | None = None
    review_reasons: list[str] = field(default_factory=list)

    def as_row(self, item_id: object = None) -> dict:
        """The JSON row of the ``score`` output and the API (id first)."""
        return {
            "id": item_id,
            "themes": self.themes,
            "scores": self.scores,
            "sentiment": self.sentiment,
            "sentiment_scores": self.sentiment_scores,
            "needs_review": self.needs_review,
            "review_reasons": self.review_reasons,
            "evidence": self.evidence,
            "lang": self.lang,
            "model_version": self.model_version,
        }


@dataclass
class _Unit:
    """One model input: a window of a text, weighted by its tokens for the sentiment."""

    text_index: int
    text: str
    weight: int = 1


def _find_in_order(text: str, sentences: list[str]) -> tuple[list[str], list[tuple[int, int]]]:
    """The sentences found in ``text``, in order, with their character spans (one left-to-right
    pass: each is looked for after the one before)."""
    found, spans, cursor = [], [], 0
    for sentence in sentences:
        at = text.find(sentence, cursor)
        if at < 0:
            continue
        found.append(sentence)
        spans.append((at, at + len(sentence)))
        cursor = at + len(sentence)
    return found, spans


class Predictor:
    """Loads a bundle once and scores texts in length-sorted batches."""

    def __init__(
        self,
        bundle: Bundle,
        batch_size: int = 32,
        max_length: int = 256,
        review_margin: float = 0.1,
        evidence: bool = True,
        pack_tokens: int = PACK_TOKENS,
    ) -> None:
        self.bundle = bundle
        self.batch_size = batch_size
        self.max_length = min(max_length, int(bundle.meta.get("max_length", max_length)))
        self.review_margin = review_margin
        self.evidence = evidence
        self.prefix = bundle.meta.get("text_prefix", "")
        self.theme_ids = bundle.theme_ids
        self.sentiments = bundle.sentiment_labels
        # Rounded like the scores we report, so a caller can recompute every decision from
        # the reported scores and thresholds (no float32 edge case at the 4th decimal).
        self.thresholds = np.array(
            [_round(bundle.thresholds[t]) for t in self.theme_ids], dtype=np.float64
        )
        self.languages = set(bundle.meta.get("languages", []))
        # A fast tokenizer keeps its truncation and padding settings on one shared Rust object:
        # two threads calling it at once silently get each other's settings. The API may run
        # several model calls at once (api_model_workers), so every tokenizer call takes this
        # lock (it is cheap next to the model).
        self._tokenizer_lock = threading.Lock()
        self.device = next(bundle.model.parameters()).device
        self.pack_tokens = pack_tokens
        self._packs = pack_tokens > 0 and can_pack(bundle.model)
        pad_id = getattr(bundle.tokenizer, "pad_token_id", None)
        self._pad_id = 0 if pad_id is None else int(pad_id)
        # Room for the prefix and the special tokens inside each window.
        self._prefix_tokens = len(self._tokenize([self.prefix])["input_ids"][0])

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        device: str = "cpu",
        backend: str = "torch",
        spin_threads: bool = True,
        threads: int | None = None,
        **kwargs: object,
    ) -> Predictor:
        """Load the bundle at ``path`` (backend ``auto``, ``torch``, ``torch-bf16``, ``onnx``;
        see :func:`~service.bundle.load_bundle`)."""
        bundle = load_bundle(
            path, device=device, backend=backend, spin_threads=spin_threads, threads=threads
        )
        return cls(bundle, **kwargs)

    @property
    def model_version(self) -> str:
        return self.bundle.version

    def _tokenizer(self, *args: object, **kwargs: object):
        """The bundle's tokenizer, called under the lock (see ``__init__``)."""
        with self._tokenizer_lock:
            return self.bundle.tokenizer(*args, **kwargs)

    def _tokenize(self, texts: Sequence[str], add_special_tokens: bool = True) -> dict:
        return self._tokenizer(list(texts), add_special_tokens=add_special_tokens)

    # -- splitting ---------------------------------------------------------------------------
    def _windows(
        self,
        text: str,
        sentences: list[str],
        groups: list[range | None] | None = None,
        counts: list[list[int]] | None = None,
    ) -> list[tuple[str, int]]:
        """Cut ``text`` into (window text, token count) pieces that fit ``max_length``.

        ``groups``, if given, receives for each window the indices of the whole sentences in
        it, or None for a piece of a sentence cut by tokens (the piece is the window).
        ``counts``: the sentences' token ids, if the caller already has them.
        """
        budget = self.max_length - self._prefix_tokens
        if counts is None:
            counts = self._tokenize(sentences, add_special_tokens=False)["input_ids"]
        total = sum(len(c) for c in counts)
        marks: list[range | None] = []
        if total <= budget:
            if groups is not None:
                groups.append(range(len(sentences)))
            return [(text, max(total, 1))]
        # A window is the text from its first sentence to its last as written: joined with
        # spaces, Chinese or Japanese sentences would reach the model with spaces between
        # them, which their text (and the training data) never has.
        found, spans = _find_in_order(text, sentences)

        def joined(first: int, end: int) -> str:
            if len(found) < len(sentences):  # sentences not cut from this text
                return " ".join(sentences[first:end])
            return text[spans[first][0] : spans[end - 1][1]]

        windows: list[tuple[str, int]] = []
        current: list[str] = []
        current_tokens = 0
        first = 0
        for k, (sentence, ids) in enumerate(zip(sentences, counts, strict=True)):
            if len(ids) > budget:  # a sentence longer than a window: cut it by tokens
                if current:
                    windows.append((joined(first, k), current_tokens))
                    marks.append(range(first, k))
                    current, current_tokens = [], 0
                pieces = self._cut_by_tokens(sentence, budget)
                windows.extend(pieces)
                marks.extend(None for _ in pieces)
                continue
            if current_tokens + len(ids) > budget and current:
                windows.append((joined(first, k), current_tokens))
                marks.append(range(first, k))
                current, current_tokens = [], 0
            if not current:
                first = k
            current.append(sentence)
            current_tokens += len(ids)
        if current:
            windows.append((joined(first, len(sentences)), current_tokens))
            marks.append(range(first, len(sentences)))
        if groups is not None:
            groups.extend(marks)
        return windows

    def _cut_by_tokens(self, sentence: str, budget: int) -> list[tuple[str, int]]:
        """``sentence`` (longer than ``budget`` tokens) cut into (piece, token count) pieces
        of at most ``budget`` tokens, each ending before the last word start that fits (not
        inside a word: "unbeli|evably"); by tokens only where one word is longer than the
        budget. Between CJK (or Thai...) characters any token boundary is a word's."""
        enc = self._tokenizer(sentence, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        tokens = enc.tokens() if getattr(enc, "encodings", None) else [""] * len(offsets)
        n = len(offsets)

        def word_start(j: int) -> bool:  # whether token j starts a word
            at = offsets[j][0]
            return (
                tokens[j].startswith("\u2581")  # SentencePiece's word marker
                or (at < len(sentence) and sentence[at].isspace())
                or (at > 0 and sentence[at - 1].isspace())
                or _NO_SPACES.match(sentence, max(at - 1, 0)) is not None
                or _NO_SPACES.match(sentence, at) is not None
            )

        pieces = []
        start = 0
        while start < n:
            end = min(start + budget, n)
            if end < n:  # else the rest fits
                end = next((j for j in range(end, start, -1) if word_start(j)), end)
            a, b = offsets[start][0], offsets[end - 1][1]
            piece = sentence[a:b].strip() or sentence[a:b]  # the word marker's space
            pieces.append((piece, end - start))
            start = end
        return pieces

    # -- model -------------------------------------------------------------------------------
    @torch.inference_mode()
    def _run(
        self, texts: list[str], spans: list[list[tuple[int, int]]] | None = None
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Theme and sentiment probabilities for ``texts`` (any order), and, for each text,
        theme probabilities of its character ``spans`` (sentences), pooled from the same pass;
        NaN for a span with no tokens of its own (see :meth:`_token_spans`).
        """
        n = len(texts)
        n_themes = len(self.theme_ids)
        theme_p = np.zeros((n, n_themes), dtype=np.float32)
        sent_p = np.zeros((n, len(self.sentiments)), dtype=np.float32)
        # NaN until scored: spans of passes with no token spans at all stay so.
        span_p = [
            np.full((len(spans[i]) if spans else 0, n_themes), np.nan, np.float32) for i in range(n)
        ]
        if not n:
            return theme_p, sent_p, span_p
        # Tokenize once; batches of similar length are then only padded (less padding, no
        # second tokenizer pass).
        enc = self._tokenizer(
            [self.prefix + t for t in texts],
            truncation=True,
            max_length=self.max_length,
            return_offsets_mapping=spans is not None,
        )
        ids, masks = enc["input_ids"], enc["attention_mask"]
        token_spans = None
        if spans is not None:
            token_spans = [self._token_spans(enc["offset_mapping"][i], spans[i]) for i in range(n)]
        lengths = [len(x) for x in ids]
        model = self.bundle.model
        for idx, batch, places in self._passes(ids, masks, lengths):
            want_spans = token_spans is not None and any(token_spans[i] for i in idx)
            out = model(**batch, return_hidden=want_spans)
            theme_p[idx] = torch.sigmoid(out["theme_logits"]).float().cpu().numpy()
            sent_p[idx] = torch.softmax(out["sentiment_logits"], -1).float().cpu().numpy()
            if want_spans:
                self._score_spans(out["hidden"], places, idx, token_spans, span_p)
        return theme_p, sent_p, span_p

    @torch.inference_mode()
    def _score_spans(
        self,
        hidden: torch.Tensor,
        places: list[tuple[int, int]],
        idx: Sequence[int],
        token_spans: list[list[tuple[int, int]]],
        span_p: list[np.ndarray],
    ) -> None:
        """Theme probabilities of each text's token spans in one pass's ``hidden`` states
        (rows x tokens x hidden), written to ``span_p`` (one row per span; NaN for empty
        spans). All spans of the pass are pooled at once from prefix sums and scored by one
        theme-head call, not one per text (no speed difference measured offline:
        bench/RESULTS.md)."""
        rows, starts, ends, owners = [], [], [], []
        for (row, at), i in zip(places, idx, strict=True):
            kept = [k for k, (a, b) in enumerate(token_spans[i]) if b > a]
            for k in kept:
                a, b = token_spans[i][k]
                rows.append(row)
                starts.append(at + a)
                ends.append(at + b)
            owners.append((i, kept))
        if not rows:
            return
        hidden = hidden.float()
        # sums[r, k] = sum of the first k token states of row r (k = 0 .. tokens)
        sums = torch.nn.functional.pad(hidden.cumsum(1), (0, 0, 1, 0))
        rows_t, starts_t, ends_t = (torch.tensor(v) for v in (rows, starts, ends))
        pooled = (sums[rows_t, ends_t] - sums[rows_t, starts_t]) / (ends_t - starts_t).unsqueeze(
            1
        ).to(sums.dtype)
        probs = torch.sigmoid(self.bundle.model.theme_head(pooled)).float().cpu().numpy()
        at = 0
        for i, kept in owners:
            span_p[i] = np.full((len(token_spans[i]), probs.shape[1]), np.nan, np.float32)
            span_p[i][kept] = probs[at : at + len(kept)]
            at += len(kept)

    def _passes(self, ids: list[list[int]], masks: list[list[int]], lengths: list[int]):
        """The forward passes over tokenized texts: for each, the indices of its texts (in
        the order of the model's outputs), the model's inputs, and where each text's tokens
        start (row, offset). Packed rows where the model allows it, else one text per row."""
        if self._packs:
            rows = pack_rows(lengths, self.pack_tokens)
            fills = [sum(lengths[i] for i in row) for row in rows]
            for start, end in plan_passes(fills, self.batch_size):
                # Rows come sorted by tokens: the pass's last row sets its width.
                yield self._packed_pass(rows[start:end], ids, lengths, fills[end - 1])
            return
        order = np.argsort(lengths, kind="stable")
        for start, end in plan_passes([lengths[i] for i in order], self.batch_size):
            idx = order[start:end]
            with self._tokenizer_lock:
                batch = self.bundle.tokenizer.pad(
                    {"input_ids": [ids[i] for i in idx], "attention_mask": [masks[i] for i in idx]},
                    pad_to_multiple_of=PAD_TO_MULTIPLE_OF,
                    return_tensors="pt",
                )
            inputs = {
                "input_ids": batch["input_ids"].to(self.device),
                "attention_mask": batch["attention_mask"].to(self.device),
            }
            yield idx, inputs, [(row, 0) for row in range(len(idx))]

    def _packed_pass(
        self, rows: list[list[int]], ids: list[list[int]], lengths: list[int], longest: int
    ):
        """One pass of packed rows (see :func:`pack_rows`; ``longest``: the most tokens in a
        row): token ids, position ids that restart at each text, each token's text (segment;
        -1 for padding) and the attention mask that keeps every text to its own tokens."""
        mult = PAD_TO_MULTIPLE_OF or 1
        width = -(-longest // mult) * mult
        input_ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
        positions = np.zeros((len(rows), width), dtype=np.int64)
        segments = np.full((len(rows), width), -1, dtype=np.int64)
        idx, places = [], []
        for r, row in enumerate(rows):
            at = 0
            for i in row:
                n = lengths[i]
                input_ids[r, at : at + n] = ids[i]
                positions[r, at : at + n] = np.arange(n)
                segments[r, at : at + n] = len(idx)
                idx.append(i)
                places.append((r, at))
                at += n
        segment_ids = torch.from_numpy(segments)
        # Padding attends to padding only: a row of the mask with nothing allowed would
        # make attention's softmax NaN. Padding is left out of every text's pooling.
        mask = (segment_ids[:, :, None] == segment_ids[:, None, :]).unsqueeze(1)
        inputs = {
            "input_ids": torch.from_numpy(input_ids).to(self.device),
            "attention_mask": mask.to(self.device),
            "position_ids": torch.from_numpy(positions).to(self.device),
            "segment_ids": segment_ids.to(self.device),
        }
        return np.array(idx), inputs, places

    def _token_spans(
        self, offsets: list[tuple[int, int]], char_spans: list[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        """Token index ranges covering each character span of the (unprefixed) text; ``(0,
        0)`` for a span with no tokens of its own (a line of zero-width characters, or one cut
        off by truncation): it has nothing to be scored on, and is no evidence."""
        shift = len(self.prefix)
        result = []
        for a, b in char_spans:
            a, b = a + shift, b + shift
            hits = [k for k, (s, e) in enumerate(offsets) if e > s and e > a and s < b]
            result.append((hits[0], hits[-1] + 1) if hits else (0, 0))
        return result

    @staticmethod
    def _char_spans(window: str, sentences: list[str]) -> tuple[list[str], list[tuple[int, int]]]:
        """The evidence candidates of a window: its sentences found in it (see
        :func:`_find_in_order`)."""
        return _find_in_order(window, sentences)

    # -- public ------------------------------------------------------------------------------
    def predict(
        self, texts: Sequence[str], langs: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        """Score ``texts``; ``langs`` optionally gives each text's language (else detected,
        and None where too unsure). A text with nothing visible in it (empty, whitespace,
        zero-width or control characters) raises :class:`EmptyTextError`, one with a lone
        surrogate :class:`InvalidUnicodeError`.

        ``needs_review`` follows from the reported (rounded) scores and thresholds, as the
        themes do: "score_near_threshold" when, for some theme, ``round(abs(score -
        threshold), 4) < review_margin``."""
        return self._predict(texts, langs, evidence=self.evidence, detect=True)

    def _predict(
        self,
        texts: Sequence[str],
        langs: Sequence[str | None] | None,
        evidence: bool,
        detect: bool,
    ) -> list[Prediction]:
        """:meth:`predict`, with or without ``evidence`` and language detection (``detect``:
        else a text without a language gets none, and is not flagged for it)."""
        if langs is not None and len(langs) != len(texts):
            raise ValueError("langs must be as long as texts")
        for i, text in enumerate(texts):
            if not has_visible_text(text):
                raise EmptyTextError(
                    f"text {i} is empty or only whitespace or invisible characters; "
                    "nothing to classify"
                )
            if not is_unicode(text):
                raise InvalidUnicodeError(
                    f"text {i} holds a lone surrogate (a \\ud800-\\udfff code point without "
                    "its pair), which is not valid Unicode"
                )
        units: list[_Unit] = []
        unit_sentences: list[list[str]] = []
        unit_spans: list[list[tuple[int, int]]] = []
        sentences_of = [split_sentences(text) or [text] for text in texts]
        # All sentences of all texts in one tokenizer call: one call per text cost ~5% of a
        # micro-batch's time in the tokenizer's per-call overhead.
        all_sentences = [s for sentences in sentences_of for s in sentences]
        flat = self._tokenize(all_sentences, add_special_tokens=False) if all_sentences else {}
        sentence_ids = iter(flat.get("input_ids", []))
        for i, text in enumerate(texts):
            sentences = sentences_of[i]
            counts = [next(sentence_ids) for _ in sentences]
            groups: list[range | None] = []
            windows = self._windows(text, sentences, groups, counts)
            for (window, n_tokens), group in zip(windows, groups, strict=True):
                units.append(_Unit(i, window, n_tokens))
                # Evidence comes from the same forward pass: each sentence's tokens are
                # pooled and scored by the theme head (no second pass per sentence). Only the
                # window's own sentences are looked for in it (not all: long texts). A piece
                # of a sentence longer than a window is a candidate of its own: a piece of
                # the text, and short.
                found, spans = [], []
                if evidence and group is None:
                    found, spans = [window], [(0, len(window))]
                elif evidence and len(sentences) > 1:
                    found, spans = self._char_spans(window, [sentences[s] for s in group])
                unit_sentences.append(found)
                unit_spans.append(spans)

        theme_p, sent_p, span_p = self._run(
            [u.text for u in units], unit_spans if evidence else None
        )

        n_themes, n_sent = len(self.theme_ids), len(self.sentiments)
        text_theme = np.zeros((len(texts), n_themes), dtype=np.float32)
        text_sent = np.zeros((len(texts), n_sent), dtype=np.float64)
        weights = np.zeros(len(texts), dtype=np.float64)
        best_sentence: list[dict[int, tuple[float, str]]] = [{} for _ in texts]
        for u, tp, sp, found, probs in zip(
            units, theme_p, sent_p, unit_sentences, span_p, strict=True
        ):
            text_theme[u.text_index] = np.maximum(text_theme[u.text_index], tp)
            text_sent[u.text_index] += u.weight * sp
            weights[u.text_index] += u.weight
            best = best_sentence[u.text_index]
            for sentence, p in zip(found, probs, strict=True):
                if np.isnan(p).any():  # no tokens of its own: nothing shows it carries a theme
                    continue
                for k in range(n_themes):
                    if k not in best or p[k] > best[k][0]:
                        best[k] = (float(p[k]), sentence)

        results = []
        for i, text in enumerate(texts):
            scores = text_theme[i]
            sent = text_sent[i] / max(weights[i], 1e-9)
            # Every decision follows from the scores as reported (rounded), so a caller can
            # recompute it; their distance to a threshold is rounded too (0.6 - 0.5 is
            # 0.0999... in floating point, not under a margin of 0.1).
            reported = [_round(s) for s in scores]
            chosen = [k for k in range(n_themes) if reported[k] >= self.thresholds[k]]
            reasons = []
            gaps = np.round(np.abs(np.array(reported) - self.thresholds), 4)
            if np.any(gaps < self.review_margin):
                reasons.append("score_near_threshold")
            lang = normalise_language(langs[i]) if langs is not None else None
            if lang is not None:
                known = lang in self.languages
            elif detect:
                lang = self._detected_language(text)
                if lang is None:  # unsure which language: flagged only if surely none we know
                    known = not surely_none_of(text, self.languages, _LANG_EVIDENCE)
                else:
                    known = lang in self.languages
            else:
                known = True
            if self.languages and not known:
                reasons.append("language_not_evaluated")
            theme_evidence = {}
            if evidence:
                for k in chosen:
                    if k in best_sentence[i]:
                        theme_evidence[self.theme_ids[k]] = best_sentence[i][k][1]
                    else:  # no candidate scored: a text of one sentence that fits a window
                        theme_evidence[self.theme_ids[k]] = sentences_of[i][0]
            results.append(
                Prediction(
                    themes=[self.theme_ids[k] for k in chosen],
                    scores=dict(zip(self.theme_ids, reported, strict=True)),
                    sentiment=self.sentiments[int(np.argmax(sent))],
                    sentiment_scores={s: _round(sent[k]) for k, s in enumerate(self.sentiments)},
                    needs_review=bool(reasons),
                    evidence=theme_evidence,
                    model_version=self.model_version,
                    lang=lang,
                    review_reasons=reasons,
                )
            )
        return results

    @staticmethod
    def _detected_language(text: str) -> str | None:
        """The language detected in ``text``; None when the identifier is unsure (below
        ``_LANG_CONFIDENCE``: reporting its guess would file "ok" under Serbian in the
        metrics by language) or finds no language in it (emoji, numbers)."""
        detected, prob = detect_language(text)
        if prob < _LANG_CONFIDENCE or detected == UNDETERMINED:
            return None
        return detected

    def smoke_test(self) -> None:
        """Score a Chinese and an English text through the whole path (which also warms it
        up); :class:`~service.bundle.BundleError` if the model's probabilities are not finite
        (NaN weights would answer every text with no themes, silently: reported scores round
        NaN to 0)."""
        texts = ["smoke test: the app is slow", "太贵了，客服也不回复"]
        themes, sentiment, _ = self._run(texts)
        if not (np.isfinite(themes).all() and np.isfinite(sentiment).all()):
            raise BundleError(f"{self.bundle.path}: the model's scores are not finite")
        self.predict(texts)

    def predict_proba(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Raw text-level theme and sentiment probabilities (windows combined), for evaluation."""
        preds = self._predict(texts, None, evidence=False, detect=False)
        theme = np.array([[p.scores[t] for t in self.theme_ids] for p in preds], dtype=np.float32)
        sent = np.array(
            [[p.sentiment_scores[s] for s in self.sentiments] for p in preds], dtype=np.float32
        )
        return theme.reshape(len(preds), len(self.theme_ids)), sent.reshape(
            len(preds), len(self.sentiments)
        )


def apply_torch_threads(settings) -> None:
    """Give torch ``settings.torch_threads`` intra-op threads (for the torch and bf16 backends;
    unset: torch's default). ``score``, ``evaluate`` and the API all call it before loading."""
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)


def predictor_options(settings, batch_size: int | None = None, api: bool = False) -> dict:
    """``Predictor.from_path`` keyword arguments from the settings (one place for ``score``,
    the API and the benchmarks); ``batch_size`` overrides the settings' scoring batch size.
    ``api``: the API's options (its pass size, and ONNX threads that sleep when idle)."""
    return {
        "device": settings.device,
        "backend": settings.backend,
        "spin_threads": not api,
        "threads": settings.api_onnx_threads if api else None,
        "batch_size": batch_size or (settings.api_batch_size if api else settings.batch_size),
        "max_length": settings.max_length,
        "review_margin": settings.review_margin,
        "evidence": settings.evidence,
        "pack_tokens": settings.pack_tokens,
    }


def _round(x: float) -> float:
    return 0.0 if math.isnan(x) else round(float(x), 4)
