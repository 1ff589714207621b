"""The ingest cost of keeping audiences in real time: the Engage benchmark's part (e).

The same encoded batches as part (a) go into a fresh engine that holds 20 saved audiences and
10 computed traits (``DEFINITIONS``, over this workload's names and traits: windows from a day
to 90 days, trait tests, a property filter, sums, averages, modes, distinct counts), created
before the first event. The clock runs from the first batch to the moment the real-time worker
has written the last change the ingest caused (``audience_engine.wait_drained``): entries,
exits and computed values are events in the log, so they are part of the ingest's work. The
worker's timer (``engage_tick_secs``, 60 s by default, as deployed) re-evaluates the definitions
with time windows over every profile while the ingest runs; that is part of the cost too.
The audiences that do not depend on the clock must then have exactly the generator's sizes
(``exact_sizes``): the proof that the worker was waited for, and that it kept them right.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tributary._proto.cdp.v1 import audience_pb2

from benchmarks import audience_engine
from benchmarks.audience_workload import CHURNED, EVENT_NAMES, AudienceData
from benchmarks.profiling import Profile, profiled
from benchmarks.unify_engine import IngestRun, ingest, open_engine
from cdp_server import _core

# (key, query): USERS audiences.
AUDIENCES = (
    (
        "rt_pro_buyers",
        "trait('plan') = 'pro' AND event('Order Completed').within(30 days).count() >= 3 "
        "AND NOT event('Churned').count() >= 1",
    ),
    ("rt_enterprise", "trait('plan') = 'enterprise'"),
    ("rt_browsers_7d", "event('Product Viewed').within(7 days).count() >= 5"),
    (
        "rt_cart_abandoners",
        "event('Checkout Started').within(7 days).count() >= 1 "
        "AND NOT event('Order Completed').within(7 days).count() >= 1",
    ),
    ("rt_dormant", "event('Signed In').within(30 days).count() = 0"),
    ("rt_german_buyers", "trait('country') = 'DE' AND event('Order Completed').within(90 days).count() >= 1"),
    ("rt_newsletter_readers", "trait('newsletter') = true AND event('Email Opened').within(14 days).count() >= 2"),
    ("rt_churned", "event('Churned').count() >= 1"),
    ("rt_thirties", "trait('age') >= 30 AND trait('age') < 40"),
    ("rt_high_value", "trait('lifetime_value') > 500"),
    ("rt_active_today", "event('Page Viewed').within(1 days).count() >= 1"),
    ("rt_upgraded", "event('Subscription Upgraded').within(30 days).count() >= 1"),
    ("rt_free_browsers", "trait('plan') = 'free' AND event('Product Viewed').within(30 days).count() >= 10"),
    ("rt_coupon_users", "event('Coupon Applied').within(30 days).count() >= 1"),
    ("rt_searchers", "event('Products Searched').within(7 days).count() >= 3"),
    ("rt_big_software", "trait('industry') = 'software' AND trait('seats') >= 100"),
    ("rt_app_regulars", "event('Application Opened').within(3 days).count() >= 2"),
    ("rt_big_orders", "event('Order Completed').where(property('revenue') >= 100).within(30 days).count() >= 1"),
    ("rt_ios_tappers", "trait('device') = 'ios' AND event('Push Notification Tapped').within(14 days).count() >= 1"),
    (
        "rt_unhappy",
        "event('Order Refunded').within(60 days).count() >= 1 OR event('Order Cancelled').within(60 days).count() >= 1",
    ),
)
# (key, query): USERS computed traits.
COMPUTED_TRAITS = (
    ("ct_orders_30d", "event('Order Completed').within(30 days).count()"),
    ("ct_revenue_90d", "event('Order Completed').within(90 days).sum(property('revenue'))"),
    ("ct_avg_order_90d", "event('Order Completed').within(90 days).avg(property('revenue'))"),
    ("ct_views_30d", "event('Product Viewed').within(30 days).count()"),
    ("ct_pages_7d", "event('Page Viewed').within(7 days).count()"),
    ("ct_max_order_90d", "event('Order Completed').within(90 days).max(property('revenue'))"),
    ("ct_top_category_30d", "event('Product Viewed').within(30 days).mode(property('category'), 2)"),
    ("ct_sign_ins_30d", "event('Signed In').within(30 days).count()"),
    ("ct_last_order", "event('Order Completed').last(property('order_id'))"),
    ("ct_products_added_30d", "event('Product Added').within(30 days).unique(property('product_id')).count()"),
)


def exact_sizes(data: AudienceData) -> dict[str, int]:
    """The sizes of the audiences that do not depend on the clock, by the generator: after the
    ingest the worker must have reached exactly these (the check that it was waited for)."""
    traits = data.traits
    churned = np.unique(data.user[data.name == EVENT_NAMES.index(CHURNED)])
    return {
        "rt_enterprise": int((traits["plan"] == "enterprise").sum()),
        "rt_churned": len(churned),
        "rt_thirties": int(((traits["age"] >= 30) & (traits["age"] < 40)).sum()),
        "rt_high_value": int((traits["lifetime_value"] > 500).sum()),
        "rt_big_software": int(((traits["industry"] == "software") & (traits["seats"] >= 100)).sum()),
    }


def save_all(engine: _core.Engine) -> list[str]:
    """Saves every definition; returns their keys."""
    for key, query in AUDIENCES:
        audience_engine.save(engine, key, query)
    for key, query in COMPUTED_TRAITS:
        audience_engine.save(engine, key, query, computed=True)
    return [key for key, _ in AUDIENCES + COMPUTED_TRAITS]


@dataclass(frozen=True)
class RealTimeRun:
    """The ingest with every definition kept in real time.

    Attributes:
        identifies: The identify batches' ingest, timed to their last ack.
        tracks: The track batches' ingest, timed to their last ack.
        acked_s: From the first batch to the last ack.
        drained_s: From the first batch to the worker's last change.
        events: Events ingested (all accepted).
        derived_events: Events the worker wrote (entries, exits, values).
        sizes: Each definition's live size at the end, by key.
        worker_cpu_s: CPU seconds of the worker thread over the run.
        profile: The run's profile.
    """

    identifies: IngestRun
    tracks: IngestRun
    acked_s: float
    drained_s: float
    events: int
    derived_events: int
    sizes: dict[str, int]
    worker_cpu_s: float
    profile: Profile

    @property
    def events_per_s(self) -> float:
        """Events ingested per second, to the worker's last change."""
        return self.events / self.drained_s if self.drained_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "identifies": {"seconds": round(self.identifies.seconds, 3), "accepted": self.identifies.accepted},
            "tracks": {"seconds": round(self.tracks.seconds, 3), "accepted": self.tracks.accepted},
            "acked_s": round(self.acked_s, 3),
            "drained_s": round(self.drained_s, 3),
            "events": self.events,
            "events_per_s_to_last_ack": round(self.events / self.acked_s) if self.acked_s else 0,
            "events_per_s": round(self.events_per_s),
            "derived_events": self.derived_events,
            "worker_cpu_s": round(self.worker_cpu_s, 2),
            "sizes": self.sizes,
            "stats": self.tracks.stats,
            "profile": self.profile.to_json(),
        }


def measure(
    identifies: list[bytes], tracks: list[bytes], *, tmp_root: Path | None, profiler: str | None, context: str
) -> RealTimeRun:
    """Ingests the batches into a fresh engine holding every definition (see the module's doc)."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-audiences-rt-", dir=tmp_root) as tmp,
        open_engine(Path(tmp) / "data", source="audience-bench") as (engine, source_id),
    ):
        keys = save_all(engine)
        audience_engine.wait_ready(engine, keys)
        audience_engine.wait_drained(engine, quiet_s=0.5)
        cpu_before, count_before = audience_engine.worker_cpu_s(), engine.event_count()
        with profiled({"in-process engine": os.getpid()}, tool=profiler, context=context) as profile:
            started = time.perf_counter()
            first = ingest(engine, source_id, identifies)
            second = ingest(engine, source_id, tracks)
            acked = time.perf_counter()
            drained = max(acked, audience_engine.wait_drained(engine))
        events = first.accepted + second.accepted
        derived = engine.event_count() - count_before - events
        listed = audience_pb2.ListAudiencesResponse.FromString(
            engine.list_audiences(audience_pb2.ListAudiencesRequest().SerializeToString())
        )
        sizes = {audience.key: audience.size for audience in listed.audiences}
        return RealTimeRun(
            identifies=first,
            tracks=second,
            acked_s=acked - started,
            drained_s=drained - started,
            events=events,
            derived_events=derived,
            sizes=sizes,
            worker_cpu_s=audience_engine.worker_cpu_s() - cpu_before,
            profile=profile,
        )
