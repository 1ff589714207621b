"""The debugger's Violations tab in a real browser (headless chromium, as test_debugger_browser.py,
whose fixture and helpers it uses) against a real `cdp serve`, and its route
`/debugger/api/violations`.

What it proves: the tracking-plan violations of the sources are listed by source, event, field
and kind with their counts, most frequent first, as `cdp violations` reports them; a new violation
reaches the open tab; the selected one shows its rule, description and the latest offending value
(as text, never as markup); the route needs an admin token.
"""

from __future__ import annotations

import json
from typing import Any

import test_debugger_browser as page
from cli_runner import cdp
from http_client import get
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

# The same module-scoped chromium as the Live and Rejected tabs' tests (one per module).
browser = page.browser
by_id, by_testid, send, wait_for = page.by_id, page.by_testid, page.send, page.wait_for

PLAN = {
    "events": {
        "Order Completed": {
            "type": "object",
            "properties": {"total": {"type": "number"}},
            "required": ["total"],
        }
    }
}


def rows(driver: WebDriver) -> list[list[str]]:
    found = by_testid(driver, "violation-row")
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")][:5] for row in found]


def test_the_violations_tab_lists_what_breaks_the_plan_live(server: Any, browser: WebDriver, tmp_path: Any) -> None:
    plan = tmp_path / "shop.json"
    plan.write_text(json.dumps(PLAN))
    cdp(server, "plan", "create", str(plan))
    cdp(server, "plan", "enforce", "development", "--plan", "shop", "--unplanned", "flag", "--on-violation", "flag")
    for n in range(3):
        send(server, "track", {"userId": f"v{n}", "event": "Order Completed", "properties": {"total": "<b>ten</b>"}})
    send(server, "track", {"userId": "v9", "event": "Cart Viewed"})

    page.open_debugger(browser, server)
    by_id(browser, "tab-violations").click()
    expected = [
        ["development", "Order Completed", "properties.total", "Invalid Type", "3"],
        ["development", "Cart Viewed", "event", "Unplanned Event", "1"],
    ]
    wait_for(browser, lambda d: rows(d) == expected, "both violations, most frequent first")
    listed = json.loads(cdp(server, "violations", "--json").stdout)
    assert [[v["source"], v["event"], v["field"], v["type"], str(v["count"])] for v in listed] == expected

    # A new violation reaches the open tab.
    send(server, "track", {"userId": "v4", "event": "Order Completed", "properties": {}})
    wait_for(browser, lambda d: any(r[2:4] == ["properties.total", "Required"] for r in rows(d)), "the Required one")

    by_testid(browser, "violation-row")[0].click()
    wait_for(browser, lambda d: by_id(d, "violation-detail-body").is_displayed(), "the detail")
    assert by_id(browser, "violation-title").text == "Order Completed · properties.total"
    assert by_id(browser, "violation-rule").text == "type"
    # The offending value is shown as text: the page never renders it as markup.
    assert by_id(browser, "violation-example").text == '"<b>ten</b>"'
    assert browser.find_elements(By.CSS_SELECTOR, "#violation-example b") == []

    # The data needs an admin token.
    assert get(server, "/debugger/api/violations")[0] == 401
    status, body, _ = get(server, "/debugger/api/violations", bearer=server.admin_token)
    assert status == 200 and body is not None and len(body["violations"]) == 3
