from service.spreadsheet import safe_cell


def test_text_a_spreadsheet_would_run_is_quoted():
    for text in ("=1+1", '=HYPERLINK("http://x")', "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(text) == "'" + text


def test_numbers_and_other_text_are_left_as_they_are():
    for value in ("-5", "+3.25", "-1e3", ".5", "hello = world", "", 5, -5.0, None):
        assert safe_cell(value) == value
