"""service.privacy: personal data is masked; prices, dates and order numbers are left alone."""

from __future__ import annotations

import random
import time

import pytest

from service.privacy import (
    MIN_PHONE_DIGITS,
    PHONE_REGIONS,
    cn_id_valid,
    luhn_valid,
    mask_parts,
    mask_pii,
    mask_value,
    truncate_text,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Write to a.b+c@mail.co.uk please", "Write to [EMAIL] please"),
        ("联系邮箱：张三@example.cn，谢谢", "联系邮箱：[EMAIL]，谢谢"),
        ("mail me (john.doe@example.com).", "mail me ([EMAIL])."),
        ("Schreiben Sie an jürgen.müller@beispiel.de!", "Schreiben Sie an [EMAIL]!"),
        ("user@例子.中国", "[EMAIL]"),
        ("two: x@y.org, z_1@sub.domain.io", "two: [EMAIL], [EMAIL]"),
        # A QQ address is all digits: it is an email, not a phone number.
        ("QQ邮箱 13812345678@qq.com", "QQ邮箱 [EMAIL]"),
    ],
)
def test_emails(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Chinese
        ("请拨打13812345678联系我", "请拨打[PHONE]联系我"),
        ("我的手机是 138 1234 5678，谢谢", "我的手机是 [PHONE]，谢谢"),
        ("客服电话+86 138 1234 5678", "客服电话[PHONE]"),
        # English (US, UK)
        ("Call me at (415) 555-2671 tomorrow.", "Call me at [PHONE] tomorrow."),
        ("My number is +1 415-555-2671.", "My number is [PHONE]."),
        ("Ring +44 20 7946 0958 please", "Ring [PHONE] please"),
        ("or 020 7946 0958 in London", "or [PHONE] in London"),
        # German
        ("Rufen Sie mich unter +49 30 123456 an.", "Rufen Sie mich unter [PHONE] an."),
        ("Rufnummer: 030 123456", "Rufnummer: [PHONE]"),
        ("Tel: 0049 30 123456", "Tel: [PHONE]"),
        # French
        ("Appelez-moi au 06 12 34 56 78 svp", "Appelez-moi au [PHONE] svp"),
        ("Tél. : +33 1 42 68 53 00", "Tél. : [PHONE]"),
        # Spanish
        ("Llámame al +34 612 345 678 mañana", "Llámame al [PHONE] mañana"),
        ("mi móvil es 612 345 678", "mi móvil es [PHONE]"),
        # Japanese, Korean, Brazilian, Indian
        ("電話番号は090-1234-5678です", "電話番号は[PHONE]です"),
        ("+81 3-1234-5678までご連絡ください", "[PHONE]までご連絡ください"),
        ("010-1234-5678로 연락주세요", "[PHONE]로 연락주세요"),
        ("Me ligue no (11) 91234-5678", "Me ligue no [PHONE]"),
        ("call +91 98765 43210", "call [PHONE]"),
    ],
)
def test_phones(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "CN 13812345678, US (415) 555-2671 / FR +33 1 42 68 53 00; DE 030 123456.",
            "CN [PHONE], US [PHONE] / FR [PHONE]; DE [PHONE].",
        ),
        ("Tel: 030 123456 / 0171 2345678", "Tel: [PHONE] / [PHONE]"),
        ("电话 13812345678 或 13987654321", "电话 [PHONE] 或 [PHONE]"),
        # Numbers of different countries chained by separators, which phonenumbers alone
        # reads as one failed candidate.
        (
            "13800480025 / 612 089 099 / 090-0054-0007 / 612 013 099 / 06 06 39 09 09",
            "[PHONE] / [PHONE] / [PHONE] / [PHONE] / [PHONE]",
        ),
    ],
)
def test_several_phones_in_one_text(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # An extension glued to the number, or after "ext", is masked with it.
        ("phone: 415-555-2671x123", "phone: [PHONE]"),
        ("Ring +44 20 7946 0958x12 please", "Ring [PHONE] please"),
        ("call 415-555-2671 ext.123 today", "call [PHONE] today"),
        ("call 415-555-2671 ext 123", "call [PHONE]"),
        ("415-555-2671ext.123", "[PHONE]"),
        ("415-555-2671 x123", "[PHONE]"),
        ("(415) 555-2671 EXT. 45, thanks", "[PHONE], thanks"),
        ("+1 415-555-2671 extension 123", "[PHONE]"),
        ("电话13812345678x123", "电话[PHONE]"),
        ("Tel. 06 12 34 56 78 x12", "Tel. [PHONE]"),
        # "#" after a number stays an order reference, not an extension.
        ("415-555-2671 #123", "[PHONE] #123"),
    ],
)
def test_phone_extensions(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Longer than phonenumbers takes after the label (9 digits after "x" or "int", 20 after
        # "ext"): it used to reject the whole candidate and leave the number unmasked.
        ("call 415 555 0132 x1234567890 thanks", "call [PHONE] thanks"),
        ("call (415) 555-0132x12345678901", "call [PHONE]"),
        ("13812345678 x1234567890", "[PHONE]"),
        ("+44 20 7946 0958 int. 1234567890, thanks", "[PHONE], thanks"),
        ("+1 415 555 0132 ext. 1234567890", "[PHONE]"),
        # Past 15 digits a run is hidden as a reference: the number is masked, the run kept.
        ("415 555 0132 ext. 1234567890123456789012", "[PHONE] ext. 1234567890123456789012"),
        ("+1 415 555 0132ext.123456789012345678901", "[PHONE]ext.123456789012345678901"),
        # A second phone number after "x" is masked with the first.
        ("415 555 0132 x 13812345678", "[PHONE]"),
    ],
)
def test_long_phone_extensions(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tel13812345678", "Tel[PHONE]"),
        ("联系TEL13812345678谢谢", "联系TEL[PHONE]谢谢"),
        ("WeChat13812345678 or call4155550132", "WeChat[PHONE] or call[PHONE]"),
        ("Fax+49 30 123456", "Fax[PHONE]"),
        # Other letters glued to digits make a code, not a phone number.
        ("SKU13812345678", "SKU13812345678"),
        ("Hotel13812345678", "Hotel13812345678"),
    ],
)
def test_phone_labels_glued_to_the_number(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Latin letters glued after a number used to make the matcher reject it.
        ("call 13812345678abc", "call [PHONE]abc"),
        ("13812345678thanks", "[PHONE]thanks"),
        ("call 4155550132please", "call [PHONE]please"),
        ("call (415) 555-2671thanks", "call [PHONE]thanks"),
        ("Ring +44 20 7946 0958please", "Ring [PHONE]please"),
        ("Appelez le 06 12 34 56 78merci", "Appelez le [PHONE]merci"),
        ("rappelez 0612345678à midi", "rappelez [PHONE]à midi"),
        ("phone 13812345678x", "phone [PHONE]x"),
        ("Tel13812345678abc", "Tel[PHONE]abc"),
        ("电话13812345678abc谢谢", "电话[PHONE]abc谢谢"),
        ("手机１３８１２３４５６７８ok", "手机[PHONE]ok"),
        # An extension label still joins its digits to the number.
        ("415-555-2671ext.123abc", "[PHONE]abc"),
        # CJK right after the number, the usual case in Chinese feedback.
        ("我的电话13812345678谢谢", "我的电话[PHONE]谢谢"),
        ("手机13812345678请回电", "手机[PHONE]请回电"),
        # Cards are found by their digits alone.
        ("card 4111111111111111exp 12/27", "card [CARD]exp 12/27"),
        ("卡号4111111111111111谢谢", "卡号[CARD]谢谢"),
    ],
)
def test_numbers_followed_by_letters(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # Letters before the number, or digits after the letters, make a code.
        "SKU13812345678abc",
        "Hotel13812345678abc",
        "order ABC123456789XYZ",
        "ref 13812345678ABC123",
        "screen 1920x1080, 2x 500ml, box 120x80x60 cm",
    ],
)
def test_codes_with_letters_are_not_phones(text: str) -> None:
    assert mask_pii(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+86 138 1234 5678", "[PHONE]"),
        ("电话：138-1234-5678", "电话：[PHONE]"),
        ("0086 138 1234 5678", "[PHONE]"),
        ("(+86) 13812345678", "[PHONE]"),
        ("电话(021)6234 5678", "电话[PHONE]"),
        ("(415) 555-0132 or 1-415-555-0132 or 415.555.0132", "[PHONE] or [PHONE] or [PHONE]"),
        ("tel:+14155550132", "tel:[PHONE]"),
        ("邮箱 a.b@例子.公司", "邮箱 [EMAIL]"),
        ("卡号 6222 0212 3456 7890 128", "卡号 [CARD]"),
        ("card 5555 5555 5555 4444 exp 09/28", "card [CARD] exp 09/28"),
    ],
)
def test_more_english_and_chinese_formats(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "screen 1920x1080, 2x 500ml, box 120x80x60 cm",
        "Pack 3x4 and 12x 250 g",
        "v4.1.1x2 build",
    ],
)
def test_multiplications_are_not_extensions(text: str) -> None:
    assert mask_pii(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # French typography separates with (narrow) no-break spaces.
        ("Appelez le 06\u202f12\u202f34\u202f56\u202f78", "Appelez le [PHONE]"),
        ("Appelez le 06\xa012\xa034\xa056\xa078", "Appelez le [PHONE]"),
        ("tél 06\u200912\u200934\u200956\u200978.", "tél [PHONE]."),
        # Full-width digits, as typed with CJK input methods.
        ("请拨打１３８１２３４５６７８联系我", "请拨打[PHONE]联系我"),
        ("电话 １３８ １２３４ ５６７８", "电话 [PHONE]"),
    ],
)
def test_phones_in_unicode_formats(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


def test_phone_regions_constant() -> None:
    assert {"CN", "US", "GB", "DE", "FR", "ES", "IT", "NL", "JP", "KR", "BR", "IN"} <= set(
        PHONE_REGIONS
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111 exp 12/27", "card [CARD] exp 12/27"),
        ("paid with 5500-0000-0000-0004", "paid with [CARD]"),
        ("4111111111111111", "[CARD]"),
        ("Amex 3782 822463 10005 ok", "Amex [CARD] ok"),
        ("卡号6011111111111117已冻结", "卡号[CARD]已冻结"),
        # Luhn-invalid numbers of card length are order numbers, not cards.
        ("order 1234567890123456", "order 1234567890123456"),
        ("order 1234-5678-9012-3456 shipped", "order 1234-5678-9012-3456 shipped"),
        ("ticket 4111 1111 1111 1112", "ticket 4111 1111 1111 1112"),
    ],
)
def test_cards(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111\u00a01111\u00a01111\u00a01111 ok", "card [CARD] ok"),
        ("carte 4111\u202f1111\u202f1111\u202f1111", "carte [CARD]"),
        ("carte 4111\u20091111\u20091111\u20091111", "carte [CARD]"),
        ("card 4111  1111  1111  1111", "card [CARD]"),
        ("card 4111.1111.1111.1111.", "card [CARD]."),
        ("card 4111 - 1111 - 1111 - 1111", "card [CARD]"),
        ("card 4111 – 1111 – 1111 – 1111", "card [CARD]"),
        ("Amex 3782.822463.10005", "Amex [CARD]"),
        ("card 4111/1111/1111/1111 exp 12/27", "card [CARD] exp 12/27"),
        ("card 4111 / 1111 / 1111 / 1111", "card [CARD]"),
        ("卡号４１１１／１１１１／１１１１／１１１１", "卡号[CARD]"),
        ("card_number=4111_1111_1111_1111", "card_number=[CARD]"),
        ("Amex 3782_822463_10005", "Amex [CARD]"),
        ("卡号４１１１１１１１１１１１１１１１已冻结", "卡号[CARD]已冻结"),
        ("卡号４１１１\u3000１１１１\u3000１１１１\u3000１１１１", "卡号[CARD]"),
        ("卡号４１１１ １１１１ １１１１ １１１１", "卡号[CARD]"),
        # Luhn and the group shapes still decide.
        ("ref 4111.1111.1111.1112", "ref 4111.1111.1111.1112"),
        ("ref 1234.5678.9012.3456", "ref 1234.5678.9012.3456"),
        ("ref 4111\u00a01111\u00a01111\u00a01112", "ref 4111\u00a01111\u00a01111\u00a01112"),
        ("ref ４１１１１１１１１１１１１１１２", "ref ４１１１１１１１１１１１１１１２"),
        ("ref 411.111.111.111.111.1", "ref 411.111.111.111.111.1"),
        ("ref 4111/1111/1111/1112", "ref 4111/1111/1111/1112"),
        ("ref 4111_1111_1111_1112", "ref 4111_1111_1111_1112"),
        # Dates and fractions are no card's shape.
        ("paid 12/25/2026 and 01/02/2027", "paid 12/25/2026 and 01/02/2027"),
    ],
)
def test_cards_in_other_formats(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("5500000000000004", True),
        ("378282246310005", True),
        ("4111111111111112", False),
        ("1234567890123456", False),
        ("", False),
        ("4111 1111", False),
        ("４１１１", False),
    ],
)
def test_luhn_valid(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("身份证号110101199003074514，请核实", "身份证号[ID]，请核实"),
        ("ID: 11010519491231002X.", "ID: [ID]."),
        ("ID: 11010519491231002x", "ID: [ID]"),
        ("written 110101 19900307 4514", "written [ID]"),
        # Bad check character: not an ID (and too long to be a phone number).
        ("身份证号110101199003074515", "身份证号110101199003074515"),
        ("ref 110105194912310021", "ref 110105194912310021"),
    ],
)
def test_chinese_ids(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("身份证号１１０１０１１９９００３０７４５１４，请核实", "身份证号[ID]，请核实"),
        ("SSN １２３-４５-６７８９.", "SSN [ID]."),
    ],
)
def test_ids_in_full_width_digits(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("110101199003074514", True),
        ("11010519491231002X", True),
        ("11010519491231002x", True),
        ("110105194912310021", False),  # check character
        ("110101199013324514", False),  # no 32nd of the 13th month
        ("110101299003074514", False),  # born in the future
        ("11010119900307451", False),  # 17 characters
        ("ABCDEFGHIJKLMNOPQR", False),
    ],
)
def test_cn_id_valid(value: str, valid: bool) -> None:
    assert cn_id_valid(value) is valid


def test_ssn() -> None:
    assert mask_pii("My SSN is 123-45-6789.") == "My SSN is [ID]."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Dashes as word processors and phones write them: en dash, non-breaking hyphen,
        # minus sign, small and full-width hyphen-minus.
        ("My SSN is 123\u201345\u20136789.", "My SSN is [ID]."),
        ("123\u201145\u20116789", "[ID]"),
        ("123\u221245\u22126789 please", "[ID] please"),
        ("SSN 123\ufe6345\ufe636789", "SSN [ID]"),
        ("123\uff0d45\uff0d6789", "[ID]"),
        ("NAS 046\u2013454\u2013286", "NAS [ID]"),
        ("SSN 123\u20134567\u201389 is not one", "SSN 123\u20134567\u201389 is not one"),
    ],
)
def test_ssn_and_sin_with_typographic_dashes(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Without separators, or with spaces or dots, an SSN is one only after a word saying so.
        ("My SSN is 123456789.", "My SSN is [ID]."),
        ("SSN: 123456789", "SSN: [ID]"),
        ("SSN#123456789", "SSN#[ID]"),
        ("SSN #123456789", "SSN #[ID]"),
        ("ssn 123 45 6789", "ssn [ID]"),
        ("SSN: 123.45.6789, thanks", "SSN: [ID], thanks"),
        ("social security number 123456789", "social security number [ID]"),
        ("Social Security No. 123 45 6789", "Social Security No. [ID]"),
        ("my soc. sec. is 123456789", "my soc. sec. is [ID]"),
        ("Soc Sec #: 123456789", "Soc Sec #: [ID]"),
        ("社会安全号码：123456789", "社会安全号码：[ID]"),
        ("SSN １２３４５６７８９", "SSN [ID]"),
    ],
)
def test_ssn_without_dashes_after_a_keyword(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order 123456789 arrived",
        "Order #123456789 and #987654321",
        "ref 123 45 6789",
        # Too far from the keyword, or another number in between.
        "SSN was asked for on the phone; order 123456789",
        "SSN asked for 2 times, order 123456789",
        # Never issued.
        "SSN 000123456, SSN 123004567, SSN 123450000",
        "classnote 123456789",
    ],
)
def test_bare_nine_digits_without_ssn_keyword_are_not_masked(text: str) -> None:
    assert mask_pii(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The keyword may also follow the number.
        ("123456789 is my SSN", "[ID] is my SSN"),
        ("123 45 6789 (social security number)", "[ID] (social security number)"),
        ("123.45.6789 = my soc. sec.", "[ID] = my soc. sec."),
        ("123456789是我的社会安全号", "[ID]是我的社会安全号"),
        ("１２３４５６７８９ is my SSN", "[ID] is my SSN"),
        ("123456789 (SSN), 234567890 (SSN)", "[ID] (SSN), [ID] (SSN)"),
        ("SSN: 123456789, SIN: 046 454 286", "SSN: [ID], SIN: [ID]"),
    ],
)
def test_ssn_before_a_keyword(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A keyword with its own number after it does not name the one before it.
        ("order 123456789 and my SSN 123-45-6789", "order 123456789 and my SSN [ID]"),
        ("order 123456789, SSN 000123456", "order 123456789, SSN 000123456"),
        # Too far from the keyword, a digit in between, or never issued.
        (
            "123456789 was the order number, then they asked for my SSN",
            "123456789 was the order number, then they asked for my SSN",
        ),
        ("123456789 and 2 more, SSN", "123456789 and 2 more, SSN"),
        ("000123456 is my SSN", "000123456 is my SSN"),
    ],
)
def test_numbers_before_an_ssn_keyword_that_are_not_ssns(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SIN 046 454 286", "SIN [ID]"),
        ("social insurance number: 046-454-286", "social insurance number: [ID]"),
        ("NAS 046 454 286", "NAS [ID]"),
        ("numéro d'assurance sociale : 046 454 286", "numéro d'assurance sociale : [ID]"),
        ("046 454 286 is my SIN", "[ID] is my SIN"),
        ("my sin # 046454286", "my sin # [ID]"),
        ("S.I.N. 046.454.286", "S.I.N. [ID]"),
        ("Social Insurance No. ０４６ ４５４ ２８６", "Social Insurance No. [ID]"),
    ],
)
def test_canadian_sin_next_to_a_keyword(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # Without a keyword 3-3-3 digits are not an ID (the phone matcher may still take them).
        "room 123 456 789",
        "ticket 046 454 286",
        # Luhn-invalid, "sin" as a word, or another word.
        "SIN 046 454 287",
        "sin embargo 046 454 286",
        "SINGAPORE 046 454 286",
    ],
)
def test_sin_layouts_without_a_sin_are_not_ids(text: str) -> None:
    assert "[ID]" not in mask_pii(text)


@pytest.mark.parametrize("text", ["SSN 123 456 789", "SSN 1234567890", "SSN 123-456789"])
def test_other_layouts_after_ssn_keyword_are_not_ids(text: str) -> None:
    assert "[ID]" not in mask_pii(text)


@pytest.mark.parametrize(
    "text", ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000"]
)
def test_ssn_never_issued_is_not_an_id(text: str) -> None:
    assert "[ID]" not in mask_pii(f"number {text} here")
    # Nor after a keyword (9xx numbers may still be phone numbers).
    assert "[ID]" not in mask_pii(f"SSN {text.replace('-', '')} here")


@pytest.mark.parametrize(
    "text",
    [
        "It cost $12.99 and the case ¥299.",
        "Total €1.299,00 or ¥1,299,000 or US$1,299.99",
        "价格299元，共3件，2026年11月25日发货",
        "Delivered 2026-11-25, promised 25/11/2026, invoice 11/25/2026, Lieferung 25.11.2026",
        "Ordered 2026/11/25 at 14:30, arrived 09:05:30",
        "Order #123456 and #1234567890 are missing",
        "订单号 1234567890123456 还没到",
        "Bestellnummer 987654, Menge 3, Zimmer 42",
        "Since 2019, and again in 2026: 5 stars, 50% off, v2.0.1",
        "IBAN-free text with 12 34 and 56",
        "Delivered 2026.11.27, price 1.299.000 ₫, app 4.1.1, at 10:30",
        "Prix : 1\u202f299\u202f000 € ou 1\xa0299,00 €, le 27.11.2026 à 10:30",
        "価格１,２９９円、２０２６-１１-２５ １０:３０、注文番号＃１２３４５６",
    ],
)
def test_ordinary_numbers_are_not_masked(text: str) -> None:
    assert mask_pii(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "The app keeps crashing when I open settings.",
        "客服态度很好，物流很快。",
        "Der Versand war leider sehr langsam.",
        "La livraison était rapide, merci !",
        "El producto llegó roto.",
        "配送が遅すぎます。",
        "خدمة العملاء ممتازة",
        "Great 👍🏽🎉 but the e\u0301\u0301 accents and \u200b zero width stay",
    ],
)
def test_text_without_pii_is_unchanged(text: str) -> None:
    assert mask_pii(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("😀📞 13812345678 👍", "😀📞 [PHONE] 👍"),
        ("اتصل بي على +44 20 7946 0958 شكرا", "اتصل بي على [PHONE] شكرا"),
        ("\x00mail\x00a@b.io\x00 13812345678\x00", "\x00mail\x00[EMAIL]\x00 [PHONE]\x00"),
        ("lone \ud800 surrogate 13812345678", "lone \ud800 surrogate [PHONE]"),
        (
            "e\u0301 combining 13812345678 \u202eRTL\u202c",
            "e\u0301 combining [PHONE] \u202eRTL\u202c",
        ),
    ],
)
def test_any_unicode_is_safe(text: str, expected: str) -> None:
    assert mask_pii(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "١٣٨١٢٣٤٥٦٧٨",
        "１３８１２３４５６７８",
        "\U0001d7ce\U0001d7cf" * 10,
        "\ufeff\ufffd\U0010ffff",
    ],
)
def test_unusual_digits_do_not_crash(text: str) -> None:
    assert isinstance(mask_pii(text), str)


@pytest.mark.parametrize(
    ("pii", "label"),
    [
        ("13812345678", "[PHONE]"),
        ("+1 415-555-2671 ext. 123", "[PHONE]"),
        ("4111 1111 1111 1111", "[CARD]"),
        ("john.doe@example.com", "[EMAIL]"),
        ("110101199003074514", "[ID]"),
        ("123-45-6789", "[ID]"),
    ],
)
def test_truncation_never_keeps_part_of_personal_data(pii: str, label: str) -> None:
    # text[:limit] would end in "1381234" or "john.doe@exa", which mask_pii no longer knows.
    head = "Please call me back about my order, "
    for k in range(1, len(pii)):
        limit = len(head) + k
        cut = truncate_text(head + pii + " soon, thanks.", limit)
        assert len(cut) <= limit
        assert cut in (head + label, head)
        assert mask_pii(cut) == cut


def test_truncation_elsewhere_is_a_plain_cut() -> None:
    text = "call 13812345678 now, the parcel is late " * 3
    assert truncate_text(text, 30) == text[:30]
    assert truncate_text(text, 16) == text[:16]  # right after the number: masked in storage
    assert truncate_text(text, 1000) == text
    assert truncate_text("13812345678 rest", 8) == "[PHONE]"
    assert truncate_text("13812345678 rest", 3) == "[PH"  # never an empty text
    assert truncate_text("call 13812345678", 7) == "call "
    assert truncate_text("", 5) == ""


def test_masking_is_idempotent() -> None:
    text = "a@b.io 13812345678 4111 1111 1111 1111 110101199003074514 123-45-6789"
    once = mask_pii(text)
    assert once == "[EMAIL] [PHONE] [CARD] [ID] [ID]"
    assert mask_pii(once) == once


def test_mask_value_nested_metadata() -> None:
    meta = {
        "customer": {"email": "a.b+c@mail.co.uk", "phone": "+1 415-555-2671", "age": 42},
        "notes": ["call 13812345678", None, 1.5, True, ("x@y.org", 7)],
        "order": "#123456",
        "count": 13812345678,
    }
    assert mask_value(meta) == {
        "customer": {"email": "[EMAIL]", "phone": "[PHONE]", "age": 42},
        "notes": ["call [PHONE]", None, 1.5, True, ("[EMAIL]", 7)],
        "order": "#123456",
        "count": "[PHONE]",  # a phone number sent as a JSON number is still one
    }
    assert meta["customer"]["email"] == "a.b+c@mail.co.uk"  # input not modified


@pytest.mark.parametrize("value", [None, 3, 2.5, False, b"13812345678"])
def test_mask_value_leaves_other_types(value: object) -> None:
    assert mask_value(value) is value


def _numbers_text(size: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    templates = [
        "Order #{o} arrived on 2026-11-{d:02d}, price ${p}.99, call me at 138{m:08d}. ",
        "Bestellung {o} am {d:02d}.11.2026 für {p},99 € – Rückruf unter +49 30 {o}. ",
        "订单{o}在2026年11月{d}日到货，¥{p}，电话 138 {a:04d} {b:04d}。",
        "Paid with 4111 1111 1111 1111 on {d:02d}/11/2026 at 14:{d:02d}, mail u{o}@ex.com ",
        "Ticket {o}{o}, qty {d}, total {p} USD, ref 2026{d:02d}{p:03d}. ",
        "Llámame al 612 {a:03d} {b:03d} — pedido nº {o}, 第{d}件. ",
    ]
    parts: list[str] = []
    while sum(map(len, parts)) < size:
        parts.append(
            rng.choice(templates).format(
                o=rng.randint(100000, 999999),
                d=rng.randint(1, 28),
                p=rng.randint(1, 999),
                m=rng.randint(0, 10**8 - 1),
                a=rng.randint(0, 999),
                b=rng.randint(0, 999),
            )
        )
    return "".join(parts)[:size]


def test_long_text_with_many_numbers_is_fast() -> None:
    text = _numbers_text(20_000)
    start = time.perf_counter()
    masked = mask_pii(text)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"masking 20,000 characters took {elapsed:.2f}s"
    assert masked.count("[PHONE]") > 50
    assert masked.count("[CARD]") > 10
    assert "2026-11-" in masked and "#" in masked  # dates and order numbers survive


def test_long_phone_list_is_fast_and_fully_masked() -> None:
    rng = random.Random(1)
    formats = [
        "138{:04d}{:04d}",
        "06 {:02d} {:02d} {:02d} {:02d}",
        "(415) 555-{:04d}",
        "+44 20 7946 {:04d}",
        "612 {:03d} {:03d}",
        "090-{:04d}-{:04d}",
        "+49 30 {:06d}",
    ]
    numbers = []
    while sum(len(n) + 1 for n in numbers) < 20_000:
        fmt = rng.choice(formats)
        numbers.append(fmt.format(*(rng.randint(0, 99) for _ in range(fmt.count("{")))))
    text = "\n".join(numbers)
    start = time.perf_counter()
    masked = mask_pii(text)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"masking {len(text)} characters took {elapsed:.2f}s"
    # Verified numbers, and past the work budget whole clusters masked unverified.
    assert not any(c.isdigit() for c in masked)


@pytest.mark.parametrize(
    "text",
    ["1 " * 10_000, "(1) " * 5_000, "4111 " * 4_000],
)
def test_digit_noise_costs_bounded_time_and_fails_closed(text: str) -> None:
    start = time.perf_counter()
    masked = mask_pii(text)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"masking {len(text)} characters took {elapsed:.2f}s"
    assert sum(c.isdigit() for c in masked) < MIN_PHONE_DIGITS


def test_long_text_without_digits_is_fast() -> None:
    text = "这是一段没有任何号码的中文反馈" * 1400 + "a" * 20_000 + "x@" * 10_000
    start = time.perf_counter()
    assert mask_pii(text) == text
    assert time.perf_counter() - start < 1.0


def test_parts_are_masked_as_the_whole_text_masks_them():
    text = "My SSN!\n123456789 was leaked.\nCall 415. 555. 2671 now. Call 415. 555. 2671 now."
    assert mask_parts(text, ["123456789 was leaked.", "Call 415.", None, ""]) == [
        "[ID] was leaked.",
        "Call [PHONE]",
        None,
        "",
    ]
    # Masked on its own, the same sentence keeps the SSN: that is what the context adds.
    assert mask_pii("123456789 was leaked.") == "123456789 was leaked."
    # A part that is not in the text is still masked on its own.
    assert mask_parts("nothing here", ["mail ana@example.com"]) == ["mail [EMAIL]"]
    assert mask_parts("", ["call 13812345678"]) == ["call [PHONE]"]
