"""The Engage benchmark's data: profiles with traits, and their track events over 90 days.

Each profile is ``user_id:u<N>`` with one identify carrying its 20 traits (``plan`` among free,
basic, pro and enterprise), then its track events. Events have one of 50 names (a Zipf-like
mix); ``Order Completed`` is common enough that a few percent of profiles have three or more in
the last 30 days, ``Churned`` is rare. How many events a profile has is skewed (log-normal
activity): most have a handful, a few have hundreds. Event times are whole seconds, uniform over
the 90 days that end at ``now``, the time every audience is evaluated at: by default the start
of the current UTC day (``today``), because Engage's real-time worker evaluates windows such as
``within(30 days)`` at the clock's time, and the data must be recent for it as it is for a live
stream. Given the seed and ``now`` the data are byte for byte the same (``--now`` fixes it).

Everything is drawn with numpy from one seed, as columns (``AudienceData``): the DuckDB tables
and the oracle read the columns, the engine reads the same events encoded as ``StreamRequest``
bytes. The identifies come first (a backfill of the users), then the track events in time order
(as a live stream arrives). Encoding ten million events one protobuf object at a time would take
minutes, so track events are encoded a chunk at a time with array operations: each field is a
row of a small table of pre-encoded pieces (the user's ``user_id``, the name with its properties
and context) or a fixed-width column (messageId, timestamp), the pieces are laid side by side in
one byte matrix, and a mask of each piece's true length squeezes out the padding
(``_concatenate``). That takes seconds, so nothing is cached. Events carry an explicit
``timestamp`` and no ``sentAt``: the engine keeps it as the event time (no clock-skew
correction), so both sides see the same times.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

DEFAULT_PROFILES = 1_000_000
EVENTS_PER_PROFILE = 10
DEFAULT_SEED = 20_261_209
BATCH_SIZE = 500
DAYS = 90
DAY_S = 86_400

PLANS = ("free", "basic", "pro", "enterprise")
PLAN_WEIGHTS = (0.50, 0.25, 0.18, 0.07)
ORDER_COMPLETED = "Order Completed"
CHURNED = "Churned"
# Shares of all track events; the other 48 names share the rest by 1/rank.
ORDER_COMPLETED_SHARE = 0.13
CHURNED_SHARE = 0.002
# Log-normal spread of how active a profile is.
ACTIVITY_SIGMA = 1.0
PROPERTY_VARIANTS = 16
OTHER_NAMES = (
    "Page Viewed",
    "Product Viewed",
    "Product List Viewed",
    "Products Searched",
    "Product Clicked",
    "Application Opened",
    "Product Added",
    "Cart Viewed",
    "Signed In",
    "Checkout Started",
    "Email Opened",
    "Promotion Viewed",
    "Product Removed",
    "Checkout Step Viewed",
    "Checkout Step Completed",
    "Payment Info Entered",
    "Application Backgrounded",
    "Email Link Clicked",
    "Push Notification Received",
    "Promotion Clicked",
    "Product Added to Wishlist",
    "Coupon Entered",
    "Coupon Applied",
    "Signed Out",
    "Video Playback Started",
    "Push Notification Tapped",
    "Product Shared",
    "Product Reviewed",
    "Order Updated",
    "Video Playback Completed",
    "Coupon Denied",
    "Product Removed from Wishlist",
    "Wishlist Product Added to Cart",
    "Invite Sent",
    "Cart Shared",
    "Feedback Submitted",
    "Coupon Removed",
    "Application Updated",
    "Signed Up",
    "Account Created",
    "Trial Started",
    "Subscription Started",
    "Trial Ended",
    "Subscription Upgraded",
    "Order Refunded",
    "Subscription Downgraded",
    "Order Cancelled",
    "Account Deleted",
)
EVENT_NAMES = (ORDER_COMPLETED, CHURNED, *OTHER_NAMES)

# Trait values (20 traits in all, with plan, email, age, seats, ltv, score, signup date and the
# two booleans).
_FIRST = ("ada", "grace", "alan", "edsger", "barbara", "donald", "frances", "ken", "radia", "linus", "margaret", "tim")
_LAST = ("lovelace", "hopper", "turing", "dijkstra", "liskov", "knuth", "allen", "thompson", "perlman", "hamilton")
_INDUSTRIES = ("retail", "media", "finance", "health", "education", "travel", "gaming", "software", "food", "energy")
_COUNTRIES = ("DE", "US", "JP", "BR", "NG", "FR", "IN", "GB", "CA", "MX", "ES", "IT", "KR", "AU", "NL", "SE")
_CITIES = ("Berlin", "New York", "Tokyo", "São Paulo", "Lagos", "Paris", "Pune", "Leeds", "Toronto", "Puebla")
_LANGUAGES = ("de", "en", "ja", "pt", "fr", "es", "it", "ko")
_TIMEZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "America/Sao_Paulo", "Africa/Lagos", "Europe/Paris")
_ROLES = ("engineer", "designer", "manager", "analyst", "founder", "marketer", "sales", "support")
_REFERRERS = ("google", "newsletter", "partner", "twitter", "linkedin", "direct", "podcast", "ads")
_DEVICES = ("ios", "android", "web")
_COMPANIES = 50_000
_CONTEXT = b'{"library":{"name":"analytics-python","version":"2.3.2"}}'
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# Track events encoded per array pass: bounded memory (~250 MB of temporaries at 500k).
_CHUNK_EVENTS = 1_000 * BATCH_SIZE

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class AudienceData:
    """The generated profiles and events, as columns.

    Attributes:
        n_profiles: Profiles ``u0`` .. ``u<n_profiles - 1>``.
        seed: What everything was drawn from.
        now_s: The end of the 90 days (Unix seconds): the evaluation time.
        user: Each track event's profile number, in stream order (by time).
        name: Each event's index in ``EVENT_NAMES``.
        variant: Each event's properties variant (0 .. PROPERTY_VARIANTS - 1).
        ts: Each event's time, Unix seconds, non-decreasing.
        traits: The 20 trait columns, one value per profile (numpy arrays).
    """

    n_profiles: int
    seed: int
    now_s: int
    user: npt.NDArray[np.int32]
    name: npt.NDArray[np.uint8]
    variant: npt.NDArray[np.uint8]
    ts: I64
    traits: dict[str, np.ndarray]

    @property
    def n_events(self) -> int:
        return len(self.ts)

    @property
    def start_s(self) -> int:
        """The start of the 90 days."""
        return self.now_s - DAYS * DAY_S

    @property
    def user_ids(self) -> list[str]:
        return [f"u{n}" for n in range(self.n_profiles)]


def _name_weights() -> npt.NDArray[np.float64]:
    ranks = 1.0 / np.arange(1, len(OTHER_NAMES) + 1)
    others = ranks / ranks.sum() * (1.0 - ORDER_COMPLETED_SHARE - CHURNED_SHARE)
    return np.concatenate(([ORDER_COMPLETED_SHARE, CHURNED_SHARE], others))


def today() -> datetime:
    """The start of the current UTC day: the default ``now``."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _traits(rng: np.random.Generator, n: int, start_s: int) -> dict[str, np.ndarray]:
    def pick(values: Sequence[str], weights: Sequence[float] | None = None) -> np.ndarray:
        return np.asarray(values, dtype=object)[rng.choice(len(values), size=n, p=weights)]

    first, last = pick(_FIRST), pick(_LAST)
    numbers = np.arange(n)
    signup = start_s - rng.integers(0, 3 * 365 * DAY_S, size=n)
    return {
        "plan": pick(PLANS, PLAN_WEIGHTS),
        "email": np.array(
            [f"{f}.{g}.{k}@example.com" for f, g, k in zip(first, last, numbers, strict=True)], dtype=object
        ),
        "first_name": first,
        "last_name": last,
        "company": np.array([f"Company {k}" for k in rng.integers(0, _COMPANIES, size=n)], dtype=object),
        "industry": pick(_INDUSTRIES),
        "country": pick(_COUNTRIES),
        "city": pick(_CITIES),
        "language": pick(_LANGUAGES),
        "timezone": pick(_TIMEZONES),
        "role": pick(_ROLES),
        "referrer": pick(_REFERRERS),
        "device": pick(_DEVICES),
        "age": rng.integers(18, 81, size=n),
        "seats": rng.integers(1, 501, size=n),
        "score": rng.integers(0, 101, size=n),
        "lifetime_value": np.round(rng.gamma(2.0, 150.0, size=n), 2),
        "signup_date": np.array([datetime.fromtimestamp(int(s), UTC).date().isoformat() for s in signup], dtype=object),
        "newsletter": rng.random(n) < 0.4,
        "verified": rng.random(n) < 0.8,
    }


def generate(n_profiles: int, n_events: int, seed: int = DEFAULT_SEED, now: datetime | None = None) -> AudienceData:
    """Draws the profiles' traits and ``n_events`` track events (exactly) in the 90 days up to
    ``now`` (default ``today()``), sorted by time."""
    now_s = int((now or today()).timestamp())
    start_s = now_s - DAYS * DAY_S
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, ACTIVITY_SIGMA, size=n_profiles)
    per_profile = rng.multinomial(n_events, activity / activity.sum())
    user = np.repeat(np.arange(n_profiles, dtype=np.int32), per_profile)
    name = rng.choice(len(EVENT_NAMES), size=n_events, p=_name_weights()).astype(np.uint8)
    variant = rng.integers(0, PROPERTY_VARIANTS, size=n_events, dtype=np.uint8)
    ts = rng.integers(start_s, now_s, size=n_events, dtype=np.int64)
    order = np.argsort(ts, kind="stable")
    traits = _traits(rng, n_profiles, start_s)
    return AudienceData(n_profiles, seed, now_s, user[order], name[order], variant[order], ts[order], traits)


# --- The oracle: the audience computed with numpy, to check the harness (and DuckDB) in tests.


def members(data: AudienceData, *, min_orders: int = 3, window_days: int = 30) -> set[int]:
    """Profiles with plan pro, ≥ ``min_orders`` Order Completed in ``[now - window, now]`` and no
    Churned at all: the benchmark's audience."""
    n = data.n_profiles
    in_window = (data.ts >= data.now_s - window_days * DAY_S) & (data.ts <= data.now_s)
    orders = np.bincount(data.user[(data.name == 0) & in_window], minlength=n)
    churned = np.bincount(data.user[data.name == 1], minlength=n)
    chosen = (data.traits["plan"] == "pro") & (orders >= min_orders) & (churned == 0)
    return {int(k) for k in np.flatnonzero(chosen)}


# --- Encoding: protobuf wire format by hand (field numbers of proto/cdp/v1/event.proto, ingest.proto).


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def stream_request(sequence: int, events: bytes) -> bytes:
    """``StreamRequest{sequence, batch: Batch{events}}`` around already framed events."""
    return b"\x08" + varint(sequence) + _field(2, events)


def _table(pieces: Sequence[bytes]) -> tuple[U8, I64]:
    """Pieces as the rows of a zero-padded byte matrix, and their lengths."""
    width = max(map(len, pieces))
    rows = np.array(pieces, dtype=f"S{width}").view(np.uint8).reshape(len(pieces), width)
    return rows, np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))


def _concatenate(columns: Sequence[tuple[U8, I64]]) -> U8:
    """Each row's pieces one after another, padding dropped: ``columns`` are (n, width) byte
    matrices with each row's true length; the result is the flat bytes of every row in order."""
    wide = np.hstack([rows for rows, _ in columns])
    keep = np.hstack([np.arange(rows.shape[1]) < lengths[:, None] for rows, lengths in columns])
    squeezed: U8 = wide[keep]
    return squeezed


def _uuids(rng: np.random.Generator, n: int) -> U8:
    """(n, 36) ASCII version-4 UUIDs."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2], digits[:, 1::2] = _HEX[raw >> 4], _HEX[raw & 0x0F]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    for start, stop, at in ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24)):
        out[:, at : at + stop - start] = digits[:, start:stop]
    return out


def _timestamps(seconds: I64) -> U8:
    """(n, 8) ``timestamp`` fields: tag, length 6, then ``Timestamp{seconds}`` (5-byte varint)."""
    if seconds.size and (seconds.min() < 1 << 28 or seconds.max() >= 1 << 35):
        raise ValueError("times must be 5-byte varints (2008..3058)")
    out = np.empty((len(seconds), 8), dtype=np.uint8)
    out[:, :3] = (0x2A, 6, 0x08)
    for k in range(4):
        out[:, 3 + k] = ((seconds >> (7 * k)) & 0x7F) | 0x80
    out[:, 7] = seconds >> 28
    return out


def _properties(name: str, variant: int) -> bytes:
    if name == ORDER_COMPLETED:
        body: dict[str, object] = {
            "order_id": f"o-{variant:04d}",
            "revenue": 20 + 7.5 * variant,
            "currency": "USD",
            "products": variant % 4 + 1,
        }
    elif name.startswith(("Product", "Wishlist")):
        body = {"product_id": f"sku-{variant * 37:05d}", "price": 4.5 + variant, "category": _INDUSTRIES[variant % 10]}
    elif name.startswith("Page"):
        body = {"path": f"/docs/{variant}", "title": f"Docs {variant}", "referrer": _REFERRERS[variant % 8]}
    else:
        body = {"source": _REFERRERS[variant % 8], "step": variant}
    return orjson.dumps(body)


@dataclass(frozen=True)
class _Pieces:
    """The pre-encoded pieces of track events: every profile's ``user_id`` field, every (name,
    variant)'s name, properties and context fields, and the tag-and-length prefixes."""

    users: tuple[U8, I64]
    tails: tuple[U8, I64]
    prefixes: tuple[U8, I64]

    @classmethod
    def of(cls, n_profiles: int) -> _Pieces:
        users = _table([_field(4, f"u{k}".encode()) for k in range(n_profiles)])
        tails = _table(
            [
                _field(9, name.encode()) + _field(13, _properties(name, v)) + _field(15, _CONTEXT)
                for name in EVENT_NAMES
                for v in range(PROPERTY_VARIANTS)
            ]
        )
        longest = _HEAD + int(users[1].max()) + _TIME + int(tails[1].max())
        return cls(users, tails, _table([b"\x0a" + varint(k) for k in range(longest + 1)]))


_HEAD = 40  # type TRACK and a 36-character message_id
_TIME = 8


def track_messages(
    data: AudienceData, start: int, stop: int, rng: np.random.Generator, pieces: _Pieces
) -> tuple[U8, I64]:
    """Events ``start:stop`` as framed ``Batch.events`` entries (tag, length, event), their bytes
    one after another, and each one's length."""
    n = stop - start
    head = np.empty((n, _HEAD), dtype=np.uint8)
    head[:, :4] = (0x08, 0x02, 0x12, 36)
    head[:, 4:] = _uuids(rng, n)
    (users, users_len), (tails, tails_len), (prefixes, prefix_len) = pieces.users, pieces.tails, pieces.prefixes
    user = data.user[start:stop]
    tail = data.name[start:stop].astype(np.int64) * PROPERTY_VARIANTS + data.variant[start:stop]
    body = _HEAD + users_len[user] + _TIME + tails_len[tail]
    return _concatenate(
        [
            (prefixes[body], prefix_len[body]),
            (head, np.full(n, _HEAD)),
            (users[user], users_len[user]),
            (_timestamps(data.ts[start:stop]), np.full(n, _TIME)),
            (tails[tail], tails_len[tail]),
        ]
    ), prefix_len[body] + body


def _batches(flat: U8, lengths: I64, first_sequence: int) -> Iterator[bytes]:
    ends = np.cumsum(lengths)
    starts = ends - lengths
    for k, at in enumerate(range(0, len(lengths), BATCH_SIZE)):
        last = min(at + BATCH_SIZE, len(lengths)) - 1
        yield stream_request(first_sequence + k, flat[starts[at] : ends[last]].tobytes())


def _identify(user: int, traits: dict[str, object], message_id: bytes, seconds: int) -> bytes:
    body = (
        b"\x08\x01"  # type IDENTIFY
        + _field(2, message_id)
        + _field(4, f"u{user}".encode())
        + _field(5, b"\x08" + varint(seconds))
        + _field(14, orjson.dumps(traits))
        + _field(15, _CONTEXT)
    )
    return _field(1, body)


def identify_batches(data: AudienceData) -> list[bytes]:
    """One identify a profile with its 20 traits (dated the day before the 90 days), in profile
    order; sequences 1, 2, ..."""
    rng = np.random.default_rng([data.seed, 1])
    ids = _uuids(rng, data.n_profiles)
    columns = {key: values.tolist() for key, values in data.traits.items()}
    keys = list(columns)
    rows = zip(*columns.values(), strict=True)
    seconds = data.start_s - DAY_S
    messages = [
        _identify(k, dict(zip(keys, row, strict=True)), ids[k].tobytes(), seconds) for k, row in enumerate(rows)
    ]
    return [
        stream_request(1 + k, b"".join(messages[at : at + BATCH_SIZE]))
        for k, at in enumerate(range(0, len(messages), BATCH_SIZE))
    ]


def track_batches(data: AudienceData, first_sequence: int) -> list[bytes]:
    """Every track event in time order, BATCH_SIZE a request, sequences from ``first_sequence``."""
    rng = np.random.default_rng([data.seed, 2])
    pieces = _Pieces.of(data.n_profiles)
    batches: list[bytes] = []
    for start in range(0, data.n_events, _CHUNK_EVENTS):
        flat, lengths = track_messages(data, start, min(start + _CHUNK_EVENTS, data.n_events), rng, pieces)
        batches += _batches(flat, lengths, first_sequence + len(batches))
    return batches


def describe(data: AudienceData) -> dict[str, Any]:
    """What the report says about the data: sizes, and how common the audience's parts are."""
    in_window = (data.ts >= data.now_s - 30 * DAY_S) & (data.name == 0)
    order_counts = np.bincount(data.user[in_window], minlength=data.n_profiles)
    churned = np.bincount(data.user[data.name == 1], minlength=data.n_profiles)
    return {
        "profiles": data.n_profiles,
        "track_events": data.n_events,
        "event_names": len(EVENT_NAMES),
        "days": DAYS,
        "now": datetime.fromtimestamp(data.now_s, UTC).isoformat(),
        "order_completed_events": int((data.name == 0).sum()),
        "churned_events": int((data.name == 1).sum()),
        "profiles_with_3_orders_in_30_days": int((order_counts >= 3).sum()),
        "profiles_churned": int((churned > 0).sum()),
        "profiles_pro": int((data.traits["plan"] == "pro").sum()),
        "audience_size": len(members(data)),
        "traits": json.dumps(sorted(data.traits)),
    }
