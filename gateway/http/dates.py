# HTTP dates (RFC 9110 section 5.6.7): IMF-fixdate out, the three legacy forms in. Small and
# import-free on purpose: email.utils would pull the whole email package (about 1 MiB of RSS)
# into a process whose memory budget is part of the product.
from __future__ import annotations

import time

__all__ = ["http_date", "parse_http_date"]

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUM = {m.lower(): i + 1 for i, m in enumerate(_MONTHS)}


def http_date(ts: float) -> str:
    """``Sun, 06 Nov 1994 08:49:37 GMT`` for a Unix timestamp."""
    t = time.gmtime(ts)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def _timegm(year: int, month: int, day: int, hh: int, mm: int, ss: int) -> int:
    # days from civil (Howard Hinnant's algorithm): no calendar import, valid for any year
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return days * 86400 + hh * 3600 + mm * 60 + ss


def parse_http_date(value: str) -> int | None:
    """A timestamp from an HTTP date (IMF-fixdate, RFC 850 or asctime), None when malformed."""
    parts = value.replace(",", " ").split()
    try:
        if len(parts) == 6 and parts[5].upper() == "GMT":  # Sun, 06 Nov 1994 08:49:37 GMT
            day, mon, year, hms = int(parts[1]), parts[2], int(parts[3]), parts[4]
        elif len(parts) == 4 and parts[3].upper() == "GMT":  # Sunday, 06-Nov-94 08:49:37 GMT
            d, mon, y = parts[1].split("-")
            day, year, hms = int(d), int(y), parts[2]
            year += 2000 if year < 70 else 1900 if year < 100 else 0
        elif len(parts) == 5:  # Sun Nov  6 08:49:37 1994
            mon, day, hms, year = parts[1], int(parts[2]), parts[3], int(parts[4])
        else:
            return None
        month = _MONTH_NUM[mon.lower()]
        hh, mm, ss = (int(x) for x in hms.split(":"))
    except (ValueError, KeyError):
        return None
    if not (1 <= day <= 31 and 0 <= hh < 24 and 0 <= mm < 60 and 0 <= ss <= 60):
        return None
    return _timegm(year, month, day, hh, mm, ss)
