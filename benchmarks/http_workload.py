"""The HTTP benchmark's requests: Tracking API batch bodies and the identify calls that make the
profiles the Profile API is read from.

Batch bodies are what Segment's server-side libraries send: ``{"batch": [...], "sentAt"}`` of
100 messages (~80 % track, ~10 % identify, ~10 % page; ~300 B each) with an
``originalTimestamp`` each, so that the server maps them onto its own clock. Each messageId
starts with ``MESSAGE_ID_MARK``, where the wrk script puts a prefix unique to the request
(``wrk/batch.lua``): a few hundred templates then make any number of distinct requests, and
nothing is deduplicated. The users are drawn from a pool as large as the ingest benchmark's, so
a run mixes new and returning users.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MESSAGE_ID_MARK = "@MID@"
EVENTS_PER_REQUEST = 100
USERS = 100_000
TRAITS_PER_PROFILE = 20
# The Profile API part's users: PROFILE_USER_PREFIX + 1 .. N (the wrk script builds the same ids).
PROFILE_USER_PREFIX = "user_"

_BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: the server corrects it by sentAt
_SPACING_MS = 7
_LIBRARY = {"name": "analytics-node", "version": "2.1.0"}
_TRACK = ("Product Viewed", "Product Added", "Video Played", "Signed In", "Order Completed")
_TRACK_WEIGHTS = (0.45, 0.20, 0.15, 0.12, 0.08)
_CATEGORIES = ("books", "games", "garden", "kitchen", "music", "outdoor", "toys")
_PAGES = (("Home", "/"), ("Pricing", "/pricing"), ("Docs", "/docs"), ("Blog", "/blog"), ("Cart", "/cart"))
_PLANS = ("free", "starter", "team", "enterprise")
_FIRST = ("ada", "grace", "alan", "edsger", "barbara", "donald", "frances", "ken", "radia", "linus")
_LAST = ("lovelace", "hopper", "turing", "dijkstra", "liskov", "knuth", "allen", "thompson", "perlman")
_CITIES = (("Berlin", "DE"), ("New York", "US"), ("Tokyo", "JP"), ("São Paulo", "BR"), ("Lagos", "NG"))


def _iso(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def _compact(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _message(rng: random.Random, at_ms: int) -> dict[str, Any]:
    n = rng.randrange(USERS)
    user_id, anonymous_id = f"user_{n:06d}", str(uuid.UUID(int=rng.getrandbits(128), version=4))
    # The request's prefix (~12 characters) and 20 hex digits: as long as a UUID.
    message: dict[str, Any] = {"messageId": f"{MESSAGE_ID_MARK}{rng.getrandbits(80):020x}"}
    kind = rng.random()
    if kind < 0.80:
        event = rng.choices(_TRACK, _TRACK_WEIGHTS)[0]
        properties: dict[str, Any] = {"category": rng.choice(_CATEGORIES), "price": round(rng.uniform(2, 300), 2)}
        if event.startswith("Product"):
            properties["product_id"] = f"sku-{rng.randrange(2000):05d}"
        message |= {"type": "track", "event": event, "properties": properties}
    elif kind < 0.90:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        traits = {"email": f"{first}.{last}{n}@example.com", "plan": rng.choice(_PLANS)}
        message |= {"type": "identify", "traits": traits}
    else:
        title, path = rng.choice(_PAGES)
        message |= {"type": "page", "name": title, "properties": {"path": path, "title": title}}
    # Identify links both ids; other calls come logged in, anonymous, or server-side.
    who = rng.random()
    if message["type"] == "identify" or who < 0.6:
        message |= {"userId": user_id, "anonymousId": anonymous_id}
    elif who < 0.85:
        message["anonymousId"] = anonymous_id
    else:
        message["userId"] = user_id
    message["originalTimestamp"] = _iso(at_ms)
    message["context"] = {"library": _LIBRARY}
    return message


def batch_templates(count: int, seed: int) -> list[str]:
    """``count`` batch bodies of EVENTS_PER_REQUEST messages, each messageId marked."""
    rng = random.Random(seed)
    bodies = []
    for b in range(count):
        start = _BASE_MS + b * EVENTS_PER_REQUEST * _SPACING_MS
        messages = [_message(rng, start + i * _SPACING_MS) for i in range(EVENTS_PER_REQUEST)]
        sent_at = _iso(start + EVENTS_PER_REQUEST * _SPACING_MS + 40)
        bodies.append(_compact({"batch": messages, "sentAt": sent_at}))
    return bodies


def write_templates(path: Path, count: int, seed: int) -> float:
    """Writes the templates one a line (what ``wrk/batch.lua`` reads); returns the mean bytes of
    a message once its mark is replaced by a prefix of ~12 characters."""
    bodies = batch_templates(count, seed)
    path.write_text("\n".join(bodies) + "\n")
    overhead = len('{"batch":[],"sentAt":"2026-01-01T00:00:00.000Z"}')
    per_message = (sum(map(len, bodies)) - count * overhead) / (count * EVENTS_PER_REQUEST)
    return per_message - len(MESSAGE_ID_MARK) + 12


def profile_traits(n: int, rng: random.Random) -> dict[str, Any]:
    """TRAITS_PER_PROFILE traits of user n, of every JSON type a profile holds."""
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    city, country = rng.choice(_CITIES)
    traits: dict[str, Any] = {
        "email": f"{first}.{last}{n}@example.com",
        "first_name": first.title(),
        "last_name": last.title(),
        "name": f"{first.title()} {last.title()}",
        "phone": f"+1-555-{rng.randrange(10_000):04d}",
        "plan": rng.choice(_PLANS),
        "created_at": _iso(_BASE_MS - rng.randrange(10**10)),
        "age": rng.randint(18, 80),
        "city": city,
        "country": country,
        "title": rng.choice(("engineer", "designer", "manager", "founder")),
        "company": {"name": f"Company {n % 997}", "employees": rng.randrange(1, 5000)},
        "logins": rng.randrange(1, 400),
        "lifetime_value": round(rng.uniform(0, 5000), 2),
        "newsletter": rng.random() < 0.5,
        "language": rng.choice(("en", "de", "ja", "pt")),
        "avatar": f"https://cdn.example.com/avatars/{n}.png",
        "referrer": rng.choice(("google", "newsletter", "partner", "direct")),
        "score": round(rng.random(), 3),
        "tags": rng.sample(["beta", "vip", "churn-risk", "mobile", "trial"], 2),
    }
    assert len(traits) == TRAITS_PER_PROFILE
    return traits


def identify_bodies(users: int, seed: int) -> Iterator[bytes]:
    """Batch bodies of one identify call for each of the ``users`` profiles (user ids
    PROFILE_USER_PREFIX + 1..users), EVENTS_PER_REQUEST a body."""
    rng = random.Random(seed)
    for start in range(1, users + 1, EVENTS_PER_REQUEST):
        messages = [
            {
                "type": "identify",
                "messageId": f"profile-{n}",
                "userId": f"{PROFILE_USER_PREFIX}{n}",
                "traits": profile_traits(n, rng),
            }
            for n in range(start, min(users, start + EVENTS_PER_REQUEST - 1) + 1)
        ]
        yield _compact({"batch": messages}).encode()
