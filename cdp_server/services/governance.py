"""Governance RPCs of the AdminService: tracking plans (Segment's Protocols), each source's policy
(what it does with unplanned and invalid events, its transformations, the personal data it hashes
or drops), the violations seen, and the PII inventory (Segment's Privacy Portal).
The engine checks and answers them all from the request bytes."""

from __future__ import annotations

from cdp_server import _core
from cdp_server.services.routes import Route

ROUTES = (
    Route("PutTrackingPlan", _core.Engine.put_tracking_plan),
    Route("GetTrackingPlan", _core.Engine.get_tracking_plan),
    Route("ListTrackingPlans", _core.Engine.list_tracking_plans),
    Route("SetSourcePolicy", _core.Engine.set_source_policy),
    Route("GetSourcePolicy", _core.Engine.get_source_policy),
    Route("ListViolations", _core.Engine.list_violations),
    Route("GetPiiSettings", _core.Engine.get_pii_settings),
    Route("SetPiiSettings", _core.Engine.set_pii_settings),
    Route("ListPiiInventory", _core.Engine.list_pii_inventory),
    Route("CreateRegulation", _core.Engine.create_regulation),
    Route("GetRegulation", _core.Engine.get_regulation),
    Route("ListRegulations", _core.Engine.list_regulations),
)
