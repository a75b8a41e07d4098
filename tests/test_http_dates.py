# HTTP dates (gateway.http.dates): the IMF-fixdate written in Date, Last-Modified and a cookie's
# Expires, and the three forms RFC 9110 5.6.7 says a recipient must read (If-Modified-Since).
# Checked against the standard library's calendar arithmetic, day by day across leap years,
# century years and both sides of 1970, and at every bound of the field checks.
from __future__ import annotations

import calendar
from email.utils import formatdate

import pytest

from gateway.http.dates import http_date, parse_http_date

# leap and common years, the century rules (1900 common, 2000 leap, 2100 common, 2400 leap),
# the two-digit-year pivot's neighbours, the first and last four-digit years
YEARS = [1, 4, 99, 100, 399, 400, 1600, 1899, 1900, 1969, 1970, 1999, 2000, 2024, 2100, 2400, 9999]
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _every_day() -> list[tuple[int, int, int, int, int, int]]:
    out: list[tuple[int, int, int, int, int, int]] = []
    for year in YEARS:
        for month in range(1, 13):
            for day in range(1, calendar.monthrange(year, month)[1] + 1):
                i = len(out)  # a different time of day for each date, every field nonzero
                out.append((year, month, day, i % 24, (i * 7) % 60, (i * 13) % 60))
    return out


EVERY_DAY = _every_day()


def test_the_rfc_example_in_each_form() -> None:
    # RFC 9110 5.6.7: the same instant written the three ways
    for text in (
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ):
        assert parse_http_date(text) == 784111777, text
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"


def test_every_day_of_many_years_matches_the_calendar() -> None:
    for year, month, day, hh, mm, ss in EVERY_DAY:
        expected = calendar.timegm((year, month, day, hh, mm, ss, 0, 0, 0))
        imf = f"Mon, {day:02d} {MONTHS[month - 1]} {year:04d} {hh:02d}:{mm:02d}:{ss:02d} GMT"
        asctime = f"Mon {MONTHS[month - 1]} {day:2d} {hh:02d}:{mm:02d}:{ss:02d} {year}"
        rfc850 = f"Monday, {day:02d}-{MONTHS[month - 1]}-{year} {hh:02d}:{mm:02d}:{ss:02d} GMT"
        for text in (imf, asctime) if year < 100 else (imf, asctime, rfc850):
            got = parse_http_date(text)
            assert got == expected and type(got) is int, text


def test_http_date_is_what_email_utils_writes() -> None:
    # formatdate(usegmt=True) is the reference IMF-fixdate; every weekday and month, both sides
    # of 1970, single-digit fields zero-padded
    for year, month, day, hh, mm, ss in EVERY_DAY:
        if year < 1902 or year > 2037 and year != 2100:
            continue  # a 32-bit time_t's range, and one year past it
        ts = calendar.timegm((year, month, day, hh, mm, ss, 0, 0, 0))
        assert http_date(ts) == formatdate(ts, usegmt=True)
        assert parse_http_date(http_date(ts)) == ts
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert http_date(-1) == "Wed, 31 Dec 1969 23:59:59 GMT"
    assert http_date(1.999) == "Thu, 01 Jan 1970 00:00:01 GMT"  # the whole second it is in


@pytest.mark.parametrize(
    ("two_digits", "year"), [("00", 2000), ("69", 2069), ("70", 1970), ("99", 1999)]
)
def test_an_rfc850_two_digit_year_pivots_at_70(two_digits: str, year: int) -> None:
    got = parse_http_date(f"Thursday, 01-Jan-{two_digits} 00:00:00 GMT")
    assert got == calendar.timegm((year, 1, 1, 0, 0, 0, 0, 0, 0))


@pytest.mark.parametrize("year", [100, 101, 1994, 2069])
def test_an_rfc850_year_of_three_or_more_digits_is_taken_as_written(year: int) -> None:
    got = parse_http_date(f"Thursday, 01-Jan-{year} 00:00:00 GMT")
    assert got == calendar.timegm((year, 1, 1, 0, 0, 0, 0, 0, 0))


def test_names_and_zone_are_case_insensitive_and_commas_are_separators() -> None:
    for text in (
        "sun, 06 nov 1994 08:49:37 gmt",
        "SUNDAY, 06-NOV-94 08:49:37 gmt",
        "Sun nOV 6 08:49:37 1994",
        "Sun,06 Nov 1994 08:49:37 GMT",  # no space after the comma
        "Sun, 06 Nov 1994 08:49:37 GMT,",
        "  Sun,  06  Nov  1994  08:49:37  GMT  ",
    ):
        assert parse_http_date(text) == 784111777, text


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("day", (1, 31), (0, 32)),
        ("hh", (0, 23), (24,)),
        ("mm", (0, 59), (60,)),
        ("ss", (0, 60), (61,)),
    ],
)
def test_each_field_is_accepted_up_to_its_bound_and_refused_past_it(
    field: str, good: tuple[int, ...], bad: tuple[int, ...]
) -> None:
    def dates(value: int) -> list[str]:
        f = {"day": 15, "hh": 12, "mm": 30, "ss": 30, field: value}
        hms = f"{f['hh']:02d}:{f['mm']:02d}:{f['ss']:02d}"
        return [
            f"Wed, {f['day']:02d} Jan 2020 {hms} GMT",
            f"Wednesday, {f['day']:02d}-Jan-20 {hms} GMT",
            f"Wed Jan {f['day']:2d} {hms} 2020",
        ]

    for value in good:
        f = {"day": 15, "hh": 12, "mm": 30, "ss": 30, field: value}
        # a leap second (ss 60) is the next minute's first second, as calendar.timegm counts it
        expected = calendar.timegm((2020, 1, f["day"], f["hh"], f["mm"], f["ss"], 0, 0, 0))
        for text in dates(value):
            assert parse_http_date(text) == expected, text
    for value in bad:
        for text in dates(value):
            assert parse_http_date(text) is None, text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "a b c",
        "Sun, 06 Nov 1994 08:49:37 PST",  # IMF-fixdate is always GMT
        "Sun, 06 Nov 1994 08:49:37 XGMT",
        "Sunday, 06-Nov-94 08:49:37 UTC",
        "Sunday, 06-Nov-94 08:49:37",
        "Sunday, 06-Nov-94-1 08:49:37 GMT",
        "Sunday, x-Nov-94 08:49:37 GMT",
        "Sunday, 06-Nov-x 08:49:37 GMT",
        "Sunday, 06-Foo-94 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, xx Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov xxxx 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49 GMT",
        "Sun, 06 Nov 1994 08:49:37:01 GMT",
        "Sun, 06 Nov 1994 08:x:37 GMT",
        "Sun Foo  6 08:49:37 1994",
        "Sun Nov  x 08:49:37 1994",
        "Sun Nov  6 08:49:37 x",
        "Sun Nov  6 08:49 1994",
        "Sun Nov  6 08:49:37 1994 GMT extra",
        "Sun, 06 Nov 1994 08:49:37 GMT extra words",
    ],
)
def test_malformed_dates_are_none_not_an_error(text: str) -> None:
    assert parse_http_date(text) is None
