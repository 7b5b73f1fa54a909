"""The bad input catalogue, HTTP half (issue 9): every item gets a clear 4xx naming the field,
or a defined result; never a 5xx, a hang or lost data.

The batch CLI and ``labels import`` half is in tests/service/batch/test_bad_inputs.py. Cases
already asserted in test_classify.py / test_metrics.py (a blank text at items.0, ``{not
json``, a numeric text, ``theme=nope``, the truncation setting with a small limit) are only
widened here, not repeated.
"""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.api.main import create_app
from service.core.config import Settings
from service.store.tables import feedback


@pytest.fixture(scope="module")
def client(tiny_bundle, tmp_path_factory):
    """The default limits: 256 items per request, 20,000 characters per text, 413 beyond."""
    settings = Settings(
        model=str(tiny_bundle),
        database_url=f"sqlite:///{tmp_path_factory.mktemp('bad-inputs') / 'api.db'}",
    )
    assert settings.max_items_per_request == 256 and settings.max_text_chars == 20_000
    with TestClient(create_app(settings), base_url="http://localhost") as c:
        yield c


def fields(response) -> list[str]:
    return [e["field"] for e in response.json()["detail"]]


def post_raw(client, content: bytes | str):
    if isinstance(content, str):
        content = content.encode("utf-8")
    return client.post(
        "/v1/classify", content=content, headers={"content-type": "application/json"}
    )


def assert_well_formed(result: dict, item_id) -> None:
    assert result["id"] == item_id and result["model_version"] == "tiny-test"
    assert len(result["scores"]) == 9 and result["sentiment"] in ("negative", "neutral", "positive")
    assert set(result["evidence"]) == set(result["themes"])


# -- empty and whitespace-only texts ---------------------------------------------------------
@pytest.mark.parametrize(
    "blank",
    [
        "",
        "\t\n \r",
        "\u3000\u00a0\u2003",  # ideographic, NBSP, em
        # Nothing visible either: controls, zero-width and format characters, a combining
        # mark without a base, Braille and Hangul fillers (all scored before).
        "\x00\x01\x02\x7f",
        "\u200b\u200b",
        "\u200d\ufeff\u2060",
        "\u0301\u0301",
        "\u2800\u2800",
        "\u3164",
    ],
)
def test_empty_and_whitespace_only_texts_are_422_naming_the_item(client, blank):
    body = {"items": [{"id": "ok", "text": "Fine app."}, {"id": "blank", "text": blank}]}
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 422 and fields(r) == ["items.1.text"]
    assert "empty or only whitespace" in r.json()["detail"][0]["message"]


@pytest.mark.parametrize("text", ["👍", "!!!", "\u200b\u200b😡"])
def test_emoji_or_punctuation_alone_is_scored(client, text):
    # Defined result: a text with anything visible is feedback, even without letters.
    r = client.post("/v1/classify", json={"items": [{"id": "e", "text": text}]})
    assert r.status_code == 200
    assert_well_formed(r.json()["results"][0], "e")


# -- 1 MB texts --------------------------------------------------------------------------------
def test_1mb_text_is_413_naming_the_item_by_default(client):
    big = "The app is slow. " * 61_681  # 1,048,577 characters
    body = {
        "items": [
            {"id": "a", "text": "fine"},
            {"id": "b", "text": "ok"},
            {"id": "big", "text": big},
        ]
    }
    started = time.monotonic()
    r = client.post("/v1/classify", json=body)
    assert time.monotonic() - started < 10
    assert r.status_code == 413
    detail = r.json()["detail"]
    assert detail["field"] == "items.2.text" and detail["id"] == "big"
    assert f"{len(big)} characters" in detail["message"] and "20000" in detail["message"]


def test_1mb_text_with_truncation_scores_its_first_max_text_chars(make_client):
    # Defined result with truncate_long_texts: the answer is the one for the first
    # max_text_chars characters (the rest is not read), not a 413 and not a slow request.
    client = make_client(truncate_long_texts=True)
    head = "Refund took weeks. The bot kept looping. " * 500  # 20,500 characters
    big = head + "Prices doubled! " * 62_000
    assert len(big.encode()) > 1_000_000
    started = time.monotonic()
    r = client.post("/v1/classify", json={"items": [{"id": "big", "text": big}]})
    assert time.monotonic() - started < 30
    assert r.status_code == 200
    row = r.json()["results"][0]
    assert_well_formed(row, "big")
    cut = client.post("/v1/classify", json={"items": [{"id": "cut", "text": big[:20_000]}]})
    assert row["scores"] == cut.json()["results"][0]["scores"]
    assert all(sentence in head for sentence in row["evidence"].values())


# -- 10,000 items ------------------------------------------------------------------------------
def test_10000_items_are_413_naming_items_quickly(client):
    body = {"items": [{"id": k, "text": f"Item {k}: slow app"} for k in range(10_000)]}
    started = time.monotonic()
    r = client.post("/v1/classify", json=body)
    assert time.monotonic() - started < 5  # refused before the model sees anything
    assert r.status_code == 413
    assert r.json()["detail"]["field"] == "items"
    assert "at most 256 items" in r.json()["detail"]["message"] and "10000" in r.text


# -- invalid JSON ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b'{"items": [}',
        b'{"items": [{"id": "a", "text": "x"}]} trailing',
        b"{'items': []}",
        b'{"items": [{"id": "a", "text": "unterminated}]}',
    ],
)
def test_invalid_json_is_422_naming_the_body(client, content):
    r = post_raw(client, content)
    assert r.status_code == 422 and fields(r) == ["body"]


def test_json_of_the_wrong_shape_is_422_naming_the_body(client):
    for content in (b"null", b"[]", b'"text"', b"42", b"true"):
        r = post_raw(client, content)
        assert r.status_code == 422 and fields(r) == ["body"], content


# -- wrong types -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"id": "a", "text": ["a", "list"]}, "items.0.text"),
        ({"id": "a", "text": None}, "items.0.text"),
        ({"id": "a", "text": {"nested": "object"}}, "items.0.text"),
        ({"id": "a", "text": True}, "items.0.text"),
        ({"id": "a", "text": 3.5}, "items.0.text"),
        ({"id": None, "text": "ok"}, "items.0.id"),
        ({"id": ["a"], "text": "ok"}, "items.0.id"),
        ({"id": 1.5, "text": "ok"}, "items.0.id"),
        ({"id": "", "text": "ok"}, "items.0.id"),
        ({"id": "x" * 256, "text": "ok"}, "items.0.id"),
        ({"id": 10**300, "text": "ok"}, "items.0.id"),
        ({"id": "a", "text": "ok", "metadata": "chat"}, "items.0.metadata"),
        ({"id": "a", "text": "ok", "metadata": ["chat"]}, "items.0.metadata"),
        ({"id": "a", "text": "ok", "metadata": 5}, "items.0.metadata"),
        ({"id": "a", "text": "ok", "metadata": {"channel": 5}}, "items.0.metadata.channel"),
        ({"id": "a", "text": "ok", "metadata": {"segment": ["b2b"]}}, "items.0.metadata.segment"),
        ({"id": "a", "text": "ok", "metadata": {"lang": {"x": 1}}}, "items.0.metadata.lang"),
        (
            {"id": "a", "text": "ok", "metadata": {"created_at": "2026-13-45"}},
            "items.0.metadata.created_at",
        ),
        (
            {"id": "a", "text": "ok", "metadata": {"created_at": [2026, 11, 3]}},
            "items.0.metadata.created_at",
        ),
    ],
)
def test_wrong_item_types_are_422_naming_the_field(client, item, field):
    r = client.post("/v1/classify", json={"items": [item], "record": True})
    assert r.status_code == 422
    assert field in fields(r)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": {"id": "a", "text": "ok"}}, "items"),
        ({"items": "ok"}, "items"),
        ({"items": None}, "items"),
        ({"items": ["just a string"]}, "items.0"),
        ({"items": [{"id": "a", "text": "ok"}], "record": [True]}, "record"),
        ({"items": [{"id": "a", "text": "ok"}], "extra": 1}, "extra"),
    ],
)
def test_wrong_request_types_are_422_naming_the_field(client, body, field):
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 422 and field in fields(r)


def test_a_huge_integer_id_is_refused_not_a_500_when_recorded(client):
    # Python ints have no size; the store's ids have at most 255 characters.
    r = client.post("/v1/classify", json={"items": [{"id": 10**300, "text": "ok"}], "record": True})
    assert r.status_code == 422 and fields(r) == ["items.0.id"]
    ok = client.post("/v1/classify", json={"items": [{"id": -(10**200), "text": "ok"}]})
    assert ok.status_code == 200 and ok.json()["results"][0]["id"] == -(10**200)


# -- invalid UTF-8 bytes -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "content",
    [
        b'{"items": [{"id": "a", "text": "bad \xff\xfe bytes"}]}',
        b'{"items": [{"id": "a", "text": "cut \xe4\xb8"}]}',  # a character cut in half
        b'{"items": [{"id": "\xc0\xaf", "text": "overlong encoding"}]}',
        '{"items": [{"id": "a", "text": "latin-1 café"}]}'.encode("latin-1"),
    ],
)
def test_invalid_utf8_bytes_are_422_naming_the_body(client, content):
    r = post_raw(client, content)
    assert r.status_code == 422 and fields(r) == ["body"]
    assert "UTF-8" in r.json()["detail"][0]["message"]


def _with_metadata(metadata: str) -> str:
    return '{"items": [{"id": "a", "text": "ok", "metadata": ' + metadata + "}]}"


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ('{"items": [{"id": "a", "text": "half a pair \\ud800 here"}]}', "items.0.text"),
        ('{"items": [{"id": "a", "text": "low half \\udc00"}]}', "items.0.text"),
        ('{"items": [{"id": "\\ud83d", "text": "fine"}]}', "items.0.id"),
        (_with_metadata('{"channel": "\\ud800"}'), "items.0.metadata.channel"),
        (_with_metadata('{"note": ["free keys too \\udbff"]}'), "items.0.metadata"),
        (_with_metadata('{"\\udfff": 1}'), "items.0.metadata"),
    ],
)
def test_lone_surrogate_escapes_are_422_naming_the_field(client, content, field):
    # Valid JSON, but "\ud800" alone is no character: it cannot be tokenized, stored or sent
    # back as UTF-8. (In a text or an id it used to reach the tokenizer or the response
    # encoder and answer 500.)
    r = post_raw(client, content)
    assert r.status_code == 422 and fields(r) == [field]
    assert "unicode" in r.json()["detail"][0]["message"].lower()


def test_a_surrogate_pair_escape_is_one_emoji_and_is_scored(client):
    r = post_raw(client, '{"items": [{"id": "a", "text": "\\ud83d\\ude00\\ud83d\\ude00"}]}')
    assert r.status_code == 200
    assert_well_formed(r.json()["results"][0], "a")


# -- NUL bytes ---------------------------------------------------------------------------------
def test_nul_characters_in_text_are_scored(client):
    body = {"items": [{"id": "a", "text": "The app\x00 crashed.\x00 Refund please."}]}
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 200
    assert_well_formed(r.json()["results"][0], "a")


def test_nul_in_an_id_is_422_and_cannot_be_erased(client):
    r = client.post(
        "/v1/classify", json={"items": [{"id": "a\x00b", "text": "ok"}], "record": True}
    )
    assert r.status_code == 422 and fields(r) == ["items.0.id"]
    assert client.delete("/v1/feedback/a%00b").status_code == 404


def test_nul_characters_are_recorded_without_them_on_every_store(make_client, store_url):
    # PostgreSQL text cannot hold NUL: it used to answer 503 "store unavailable" (and
    # Retry-After, forever). Now NULs are dropped from what is stored, on both backends.
    client = make_client(database_url=store_url, store_text=True)
    item = {
        "id": "nul-1",
        "text": "Support\x00 never answered.",
        "metadata": {
            "channel": "web\x00chat",
            "segment": "\x00",
            "lang": "en",  # a NUL in it is not a language code: 422 (below)
            "created_at": "2026-11-03T10:00:00Z",
            "note": "free key \x00 kept",
        },
    }
    r = client.post("/v1/classify", json={"items": [item], "record": True})
    assert r.status_code == 200 and r.json()["recorded"] == 1
    with client.app.state.store.engine.connect() as connection:
        row = connection.execute(select(feedback).where(feedback.c.id == "nul-1")).one()
    assert row.text == "Support never answered."
    assert row.channel == "webchat" and row.segment is None and row.lang == "en"
    metrics = client.get(
        "/v1/metrics/themes",
        params={"start": "2026-11-01", "end": "2026-11-08", "group_by": "channel"},
    )
    assert metrics.status_code == 200
    assert {p["group"] for p in metrics.json()["periods"]} == {"webchat"}
    assert client.delete("/v1/feedback/nul-1").status_code == 204


# -- right-to-left scripts, combining characters, emoji ---------------------------------------
TEXTS = {
    "arabic": "الخدمة سيئة جدا. أريد التحدث إلى إنسان حقيقي!",
    "hebrew": "האפליקציה איטית מאוד. המחיר גבוה מדי.",
    "bidi_marks": "\u202eThe bot lied\u202c \u200fيا سلام\u200e and prices went up.",
    # Zalgo, then one letter carrying 5,000 combining accents.
    "zalgo": "Z\u0337\u0321\u031b\u0334a\u0338l\u0336g\u0335o\u0338 " * 50 + "e" + "\u0301" * 5000,
    "decomposed": "Cafe\u0301 tre\u0300s lent. Le service client n'a pas re\u0301pondu.",
    "composed": "Café très lent. Le service client n'a pas répondu.",
    "emoji_only": "😡😡😡",
    "one_emoji": "👎",
    "emoji_sequences": "👨\u200d👩\u200d👧 🇫🇷 👍🏽 ❤️",
    "emoji_sentences": "💸💸! 🐢🐢🐢. 🤖❌🙋",
}


def test_rtl_combining_and_emoji_texts_are_scored_in_order(client):
    items = [{"id": name, "text": text} for name, text in TEXTS.items()]
    r = client.post("/v1/classify", json={"items": items})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [row["id"] for row in results] == list(TEXTS)
    for row in results:
        assert_well_formed(row, row["id"])
        # Evidence is a sentence of the text itself, unchanged (no normalisation, no cut
        # inside a combining sequence or an RTL run).
        for sentence in row["evidence"].values():
            assert sentence in TEXTS[row["id"]]


def test_decomposed_accents_are_scored_as_sent_not_normalised(client):
    # Defined result: the text is scored as sent; NFC and NFD spellings may differ slightly
    # (the tokenizer sees other pieces) but each is a well-formed answer for its own text.
    items = [{"id": k, "text": TEXTS[k]} for k in ("decomposed", "composed")]
    results = client.post("/v1/classify", json={"items": items}).json()["results"]
    for row in results:
        assert_well_formed(row, row["id"])


# -- unknown theme ids in queries --------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "theme"),
    [
        ("/v1/metrics/themes", "refunds"),
        ("/v1/metrics/themes", "Privacy_Data"),
        ("/v1/metrics/themes", "privacy_data\x00"),
        ("/v1/metrics/themes", " pricing_value"),
        ("/v1/metrics/examples", "bogus"),
        ("/v1/metrics/examples", ""),
    ],
)
def test_unknown_theme_ids_in_queries_are_422_naming_theme(client, path, theme):
    for accept in ("application/json", "text/csv"):
        r = client.get(path, params={"theme": theme}, headers={"Accept": accept})
        assert r.status_code == 422 and fields(r) == ["theme"], (theme, accept)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "0001-01-01"}, "start"),
        ({"start": "0001-01-01T00:00:00+05:00", "end": "2026-01-01"}, "start"),
        ({"end": "9999-12-31T23:59:59"}, "end"),
        ({"end": "9999-12-31T23:00:00-05:00"}, "end"),
    ],
)
def test_dates_at_the_ends_of_the_calendar_are_422_not_500(client, params, field):
    for path in ("/v1/metrics/themes", "/v1/metrics/summary", "/v1/metrics/examples"):
        query = {**params, "theme": "pricing_value"} if path.endswith("examples") else params
        r = client.get(path, params=query)
        assert r.status_code == 422 and fields(r) == [field], (path, params)
    month = client.get(
        "/v1/metrics/themes",
        params={"start": "0001-01-15", "end": "0001-03-01", "interval": "month"},
    )
    assert month.status_code == 422 and fields(month) == ["start"]


def test_created_at_that_overflows_utc_is_422_naming_it(client):
    item = {"id": "a", "text": "ok", "metadata": {"created_at": "0001-01-01T00:00:00+14:00"}}
    r = client.post("/v1/classify", json={"items": [item], "record": True})
    assert r.status_code == 422 and fields(r) == ["items.0.metadata.created_at"]


# -- duplicate ids in one request --------------------------------------------------------------
def test_duplicate_ids_each_get_an_answer_and_the_last_is_recorded(make_client):
    # Defined behaviour (README "again = replace, never double"; ClassifyResponse.recorded
    # "repeated ids once"): every item is answered, in order, under the id it was sent with;
    # the store keeps one item per id, the last one sent (ids compare as strings: 7 == "7").
    client = make_client()
    when = "2026-11-03T09:00:00Z"
    items = [
        {"id": "a", "text": "First copy.", "metadata": {"channel": "first", "created_at": when}},
        {"id": 7, "text": "Number seven.", "metadata": {"channel": "int", "created_at": when}},
        {"id": "a", "text": "Second copy.", "metadata": {"channel": "second", "created_at": when}},
        {"id": "7", "text": "String seven.", "metadata": {"channel": "str", "created_at": when}},
    ]
    r = client.post("/v1/classify", json={"items": items, "record": True})
    assert r.status_code == 200
    data = r.json()
    assert [row["id"] for row in data["results"]] == ["a", 7, "a", "7"]
    assert data["recorded"] == 2
    metrics = client.get(
        "/v1/metrics/themes",
        params={"start": "2026-11-01", "end": "2026-11-08", "group_by": "channel"},
    ).json()
    assert sorted({p["group"] for p in metrics["periods"]}) == ["second", "str"]
    assert sum(p["feedback_count"] for p in metrics["periods"]) == 2
    # Sending the same request again replaces, never doubles.
    client.post("/v1/classify", json={"items": items, "record": True})
    again = client.get(
        "/v1/metrics/summary", params={"start": "2026-11-01", "end": "2026-11-08"}
    ).json()
    assert again["feedback_count"] == 2


def test_nothing_in_the_catalogue_left_the_app_unanswered(client):
    # After every bad request above, the same app still answers a good one.
    r = client.post("/v1/classify", json={"items": [{"id": "last", "text": "Works."}]})
    assert r.status_code == 200 and json.loads(r.text)["results"][0]["id"] == "last"


# -- fixes from a review of the API ----------------------------------------------------------
def test_a_text_cut_inside_its_leading_whitespace_is_scored_and_spares_its_batch(make_client):
    """With truncate_long_texts, a text whose first max_text_chars characters are blank was
    cut to nothing, and the error failed every request in its micro-batch."""
    import concurrent.futures

    client = make_client(truncate_long_texts=True, max_text_chars=10, microbatch_max_wait_ms=300)
    bodies = [{"items": [{"id": "pad", "text": " " * 20 + "Prices doubled"}]}] + [
        {"items": [{"id": f"ok{k}", "text": "Slow delivery"}]} for k in range(3)
    ]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda b: client.post("/v1/classify", json=b), bodies))
    assert [a.status_code for a in answers] == [200] * 4
    alone = client.post("/v1/classify", json={"items": [{"id": "c", "text": "Prices dou"}]})
    assert answers[0].json()["results"][0]["scores"] == alone.json()["results"][0]["scores"]


def test_a_text_cut_inside_its_leading_zero_width_characters_is_scored(make_client):
    """With truncate_long_texts, a text starting with more zero-width characters than
    max_text_chars would be cut to nothing visible, which is refused: they go first, as
    leading whitespace does."""
    client = make_client(truncate_long_texts=True, max_text_chars=10)
    text = "\u200b\ufeff" * 10 + "Prices doubled"
    r = client.post("/v1/classify", json={"items": [{"id": "zw", "text": text}]})
    assert r.status_code == 200
    alone = client.post("/v1/classify", json={"items": [{"id": "c", "text": "Prices dou"}]})
    assert r.json()["results"][0]["scores"] == alone.json()["results"][0]["scores"]


@pytest.mark.parametrize("lang", ["bob@example.com", "e n", "123", "en\x00", "x" * 40])
def test_a_language_that_is_not_a_language_code_is_422(client, lang):
    body = {"items": [{"id": "a", "text": "Slow app", "metadata": {"lang": lang}}]}
    r = client.post("/v1/classify", json=body)
    assert r.status_code == 422 and fields(r) == ["items.0.metadata.lang"]


def test_regional_and_uppercase_language_codes_count_as_their_language(client):
    texts = [
        {"id": c, "text": "Slow app", "metadata": {"lang": c}}
        for c in ("en", "EN", "en-US", "en_GB")
    ]
    results = client.post("/v1/classify", json={"items": texts}).json()["results"]
    assert {r["lang"] for r in results} == {"en"}
    assert len({tuple(r["review_reasons"]) for r in results}) == 1


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity"])
def test_nan_or_infinity_in_metadata_is_422(client, raw):
    r = post_raw(
        client,
        '{"record": true, "items": [{"id": "a", "text": "hi", "metadata": {"x": RAW}}]}'.replace(
            "RAW", raw
        ),
    )
    assert r.status_code == 422 and fields(r) == ["items.0.metadata"]


@pytest.mark.parametrize("item_id", ["true", "false"])
def test_a_boolean_id_is_422(client, item_id):
    r = post_raw(client, '{"items": [{"id": ID, "text": "hi"}]}'.replace("ID", item_id))
    assert r.status_code == 422 and fields(r) == ["items.0.id"]
