"""ISO-8601 strings and aware datetimes ⇄ `google.protobuf.Timestamp`, to the nanosecond.

A time without a zone is refused rather than guessed: Segment stores UTC, and a naive time read
as UTC on one machine and local time on another silently shifts events by hours.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from tributary.errors import InvalidEvent

# The range protobuf allows (0001-01-01 .. 9999-12-31), which is also what the server accepts.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_ISO_8601 = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})[Tt ](?P<hour>\d{2}):(?P<minute>\d{2})"
    r"(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d+))?)?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<offset_hours>\d{2})(?::?(?P<offset_minutes>\d{2}))?)?",
    re.ASCII,
)


def parse_iso8601(field: str, text: str) -> Timestamp:
    """Parses `2024-05-01T12:00:00.123Z` or `…+02:00`; raises InvalidEvent naming `field`."""
    match = _ISO_8601.fullmatch(text)
    if match is None:
        raise InvalidEvent(field, f"{text!r} is not an ISO-8601 date-time")
    if match["utc"] is None and match["sign"] is None:
        raise InvalidEvent(field, f"{text!r} has no time zone; add 'Z' for UTC or an offset such as '+02:00'")
    try:
        # datetime validates the calendar (month lengths, leap years, 0 <= hour < 24).
        naive = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"] or 0),
        )
    except ValueError as exc:
        raise InvalidEvent(field, f"{text!r}: {exc}") from None
    seconds = calendar.timegm(naive.timetuple())
    if match["sign"] is not None:
        offset_hours, offset_minutes = int(match["offset_hours"]), int(match["offset_minutes"] or 0)
        if offset_hours > 23 or offset_minutes > 59:
            raise InvalidEvent(field, f"{text!r} has an invalid UTC offset")
        offset = offset_hours * 3600 + offset_minutes * 60
        seconds -= offset if match["sign"] == "+" else -offset
    nanos = int((match["fraction"] or "0")[:9].ljust(9, "0"))
    return _checked(field, seconds, nanos)


def from_datetime(field: str, value: datetime) -> Timestamp:
    """Converts an aware datetime; a naive one raises InvalidEvent naming `field`."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidEvent(field, "naive datetime; give it a time zone, e.g. datetime.now(UTC)")
    delta = value - _EPOCH
    return _checked(field, delta.days * 86_400 + delta.seconds, delta.microseconds * 1000)


def now_iso() -> str:
    """The client's clock now, as Segment's libraries send it (UTC, milliseconds, `Z`)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_iso8601(timestamp: Timestamp) -> str:
    """Segment's form: UTC with `Z`, milliseconds at least, more digits only when they are not zero."""
    moment = _EPOCH + timedelta(seconds=timestamp.seconds)
    nanos = timestamp.nanos
    if nanos % 1_000_000 == 0:
        fraction = f"{nanos // 1_000_000:03d}"
    elif nanos % 1000 == 0:
        fraction = f"{nanos // 1000:06d}"
    else:
        fraction = f"{nanos:09d}"
    # Not strftime: its %Y does not zero-pad years before 1000 on every platform.
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{fraction}Z"
    )


def isoformat_utc(value: datetime) -> str:
    """An aware datetime inside a JSON object (properties, traits), in the same form."""
    return format_iso8601(from_datetime("datetime", value))


def _checked(field: str, seconds: int, nanos: int) -> Timestamp:
    if not _MIN_SECONDS <= seconds <= _MAX_SECONDS:
        raise InvalidEvent(field, "outside the years 0001-9999")
    return Timestamp(seconds=seconds, nanos=nanos)
