"""Governance RPCs of the AdminService (Segment's Protocols): tracking plans, each source's policy
(what it does with unplanned and invalid events, its transformations) and the violations seen.
The engine checks and answers them all from the request bytes."""

from __future__ import annotations

from cdp_server import _core
from cdp_server.auth import Role
from cdp_server.services.routes import Route

ROUTES = (
    Route("PutTrackingPlan", _core.Engine.put_tracking_plan, Role.ADMIN),
    Route("GetTrackingPlan", _core.Engine.get_tracking_plan, Role.ADMIN),
    Route("ListTrackingPlans", _core.Engine.list_tracking_plans, Role.ADMIN),
    Route("SetSourcePolicy", _core.Engine.set_source_policy, Role.ADMIN),
    Route("GetSourcePolicy", _core.Engine.get_source_policy, Role.ADMIN),
    Route("ListViolations", _core.Engine.list_violations, Role.ADMIN),
)
