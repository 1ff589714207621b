"""The debugger's Audiences tab in a real browser (headless chromium, as test_debugger_browser.py,
whose fixture and helpers it uses) against a real `cdp serve`, and its route
`/debugger/api/audiences`.

What it proves: saved audiences and computed traits are listed with their status and size, as the
gRPC API reports them; the selected one shows its canonical query, a chart of its size over time
that ends at the size now, and its entries and exits as Engage writes them, live and newest first,
never another audience's; the chart is drawn inside its frame with one point and with 1,000.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import test_debugger_browser as page
from http_client import get
from rpc import Rpc
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from tributary._proto.cdp.v1 import audience_pb2, audience_pb2_grpc

# The same module-scoped chromium as the Live and Rejected tabs' tests (one per module).
browser = page.browser
by_id, by_testid, send, wait_for = page.by_id, page.by_testid, page.send, page.wait_for

READY = audience_pb2.Audience.STATUS_READY


class Audiences:
    """AudienceService with the server's admin token."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.rpc = Rpc(server)
        self.stub = audience_pb2_grpc.AudienceServiceStub(self.rpc.channel)

    def create(self, key: str, query: str, computed: bool = False) -> None:
        kind = audience_pb2.DEFINITION_TYPE_COMPUTED_TRAIT if computed else audience_pb2.DEFINITION_TYPE_AUDIENCE
        request = audience_pb2.CreateAudienceRequest(key=key, query=query, type=kind)
        self.stub.CreateAudience(request, metadata=self.server.admin_metadata, timeout=30)

    def update(self, key: str, query: str) -> None:
        request = audience_pb2.UpdateAudienceRequest(key=key, query=query)
        self.stub.UpdateAudience(request, metadata=self.server.admin_metadata, timeout=30)

    def get(self, key: str) -> audience_pb2.Audience:
        request = audience_pb2.GetAudienceRequest(key=key)
        return self.stub.GetAudience(request, metadata=self.server.admin_metadata, timeout=30).audience

    def wait(self, key: str, size: int) -> audience_pb2.Audience:
        """The audience once ready with this size (Engage writes asynchronously)."""
        deadline = time.monotonic() + page.WAIT_SECS
        while (audience := self.get(key)).status != READY or audience.size != size:
            assert time.monotonic() < deadline, f"{key}: {audience}"
            time.sleep(0.05)
        return audience

    def close(self) -> None:
        self.rpc.close()


def order(server: Any, user_id: str) -> None:
    send(server, "track", {"userId": user_id, "event": "Order Completed", "messageId": f"order-{user_id}"})


def rows(driver: WebDriver) -> dict[str, WebElement]:
    return {row.get_attribute("data-key") or "": row for row in by_testid(driver, "audience-row")}


def changes(driver: WebDriver) -> list[tuple[str, str]]:
    """The selected audience's live list, top to bottom: (change, user)."""
    return [
        (row.get_attribute("data-change") or "", row.find_element(By.CSS_SELECTOR, "td.user").text)
        for row in by_testid(driver, "audience-change")
    ]


def select(driver: WebDriver, key: str) -> None:
    rows(driver)[key].click()
    wait_for(driver, lambda d: by_id(d, "audience-title").text == key, f"{key}'s detail")


def listed_as(key: str, status: str, size: int) -> Callable[[WebDriver], bool]:
    def check(driver: WebDriver) -> bool:
        row = rows(driver).get(key)
        return row is not None and (row.get_attribute("data-status"), row.get_attribute("data-size")) == (
            status,
            str(size),
        )

    return check


def chart_shows(size: int) -> Callable[[WebDriver], bool]:
    """The chart has points and says `size` now (it is redrawn on each refresh)."""

    def check(driver: WebDriver) -> bool:
        points = by_testid(driver, "chart-point")
        current = by_testid(driver, "chart-current")
        return bool(points) and bool(current) and current[0].text == str(size)

    return check


def test_the_audiences_tab_lists_sizes_and_streams_each_audiences_own_entries(server: Any, browser: WebDriver) -> None:
    api = Audiences(server)
    api.create("buyers", "event('Order Completed').count()>=1")
    api.create("signups", "event('Signed Up').count() >= 1")
    order(server, "alice")
    send(server, "track", {"userId": "carol", "event": "Signed Up", "messageId": "signup-carol"})
    api.wait("buyers", 1)
    api.wait("signups", 1)

    page.open_debugger(browser, server)
    by_id(browser, "tab-audiences").click()
    wait_for(browser, lambda d: list(rows(d)) == ["buyers", "signups"], "both audiences, by key")
    assert not by_id(browser, "live").is_displayed()
    wait_for(browser, listed_as("buyers", "ready", 1), "buyers: ready, 1")
    cells = [cell.text for cell in rows(browser)["buyers"].find_elements(By.TAG_NAME, "td")]
    assert cells == ["buyers", "buyers", "audience", "ready", "1"]

    select(browser, "buyers")
    assert by_id(browser, "audience-query").text == api.get("buyers").canonical_query
    assert by_id(browser, "audience-type").text == "audience"
    # Alice entered before the page opened: the stream's backlog brought it.
    wait_for(browser, lambda d: changes(d) == [("entered", "alice")], "alice's entry")

    # Bob enters while the page is open: on top, live; the list and the chart follow.
    order(server, "bob")
    wait_for(browser, lambda d: changes(d) == [("entered", "bob"), ("entered", "alice")], "bob's entry on top")
    newest = by_testid(browser, "audience-change")[0]
    assert newest.find_element(By.CSS_SELECTOR, ".badge").text == "Entered"
    assert newest.find_element(By.TAG_NAME, "code").text.startswith("engage-")  # Engage's messageId
    wait_for(browser, listed_as("buyers", "ready", 2), "buyers: ready, 2")
    wait_for(browser, chart_shows(2), "the chart at 2")
    assert by_id(browser, "audience-size").text == "2"
    points = by_testid(browser, "chart-point")
    assert points[-1].get_attribute("data-size") == "2"
    assert [int(p.get_attribute("data-size") or "-1") for p in points] == sorted(
        int(p.get_attribute("data-size") or "-1") for p in points
    ), "buyers only ever grew"

    # Carol signed up (signups) but bought nothing: never under buyers.
    assert "carol" not in {user for _, user in changes(browser)}
    select(browser, "signups")
    wait_for(browser, lambda d: changes(d) == [("entered", "carol")], "signups' own entry")
    wait_for(browser, chart_shows(1), "signups' chart at 1")

    # A stricter query makes carol exit: an exit on top, the size back to 0.
    api.update("signups", "event('Signed Up').count() >= 2")
    wait_for(browser, lambda d: changes(d) == [("exited", "carol"), ("entered", "carol")], "carol's exit")
    wait_for(browser, listed_as("signups", "ready", 0), "signups: ready, 0")
    wait_for(browser, chart_shows(0), "signups' chart at 0")
    assert by_id(browser, "audience-query").text == api.get("signups").canonical_query

    # A change opens in the Live tab's detail.
    by_testid(browser, "audience-change")[0].click()
    wait_for(browser, lambda d: by_id(d, "live").is_displayed(), "the Live tab")
    wait_for(browser, lambda d: by_id(d, "event-title").text.endswith("track Audience Exited"), "the exit's detail")
    page.save_screenshot_if_asked(browser)
    api.close()


def test_the_audiences_route_gives_status_size_and_size_history(server: Any) -> None:
    api = Audiences(server)
    api.create("buyers", "event('Order Completed').count() >= 1")
    api.create("orders", "event('Order Completed').count()", computed=True)
    assert get(server, "/debugger/api/audiences")[0] == 401
    assert get(server, "/debugger/api/audiences", bearer="not-the-token")[0] == 401
    order(server, "alice")
    api.wait("buyers", 1)
    order(server, "bob")
    api.wait("buyers", 2)
    api.wait("orders", 2)

    status, body, _ = get(server, "/debugger/api/audiences", bearer=server.admin_token)
    assert status == 200 and body is not None
    listed = {audience["key"]: audience for audience in body["audiences"]}
    assert list(listed) == ["buyers", "orders"]
    buyers = listed["buyers"]
    sizes = buyers.pop("sizes")
    assert buyers == {
        "key": "buyers",
        "name": "buyers",
        "type": "audience",
        "kind": "users",
        "query": api.get("buyers").canonical_query,
        "status": "ready",
        "progress": 100,
        "size": 2,
    }
    # A point after each change Engage wrote (the first evaluation found no member), each time
    # an ISO-8601 UTC time no later than the answer's `now`.
    assert [size for _, size in sizes][-2:] == [1, 2] and sizes[-1][1] == 2
    times = [datetime.fromisoformat(at) for at, _ in sizes]
    assert times == sorted(times) and times[-1] <= datetime.fromisoformat(body["now"])
    assert all(at.endswith("Z") for at, _ in sizes)
    orders = listed["orders"]
    assert (orders["type"], orders["status"], orders["size"], orders["sizes"]) == ("trait", "ready", 2, [])
    api.close()


def chart_geometry(driver: WebDriver, count: int) -> dict[str, Any]:
    """Draws the page's chart with `count` points (a size that climbs by 0 to 3 every 5 s) and
    measures it: whether every point, the line and the labels lie inside the frame."""
    script = """
    const [count] = arguments;
    const start = Date.parse("2026-03-01T10:00:00Z");
    const points = [];
    let size = 0;
    for (let i = 0; i < count; i++) { size += i % 4; points.push([new Date(start + i * 5000).toISOString(), size]); }
    const now = start + count * 5000 + 60000;
    const chart = window.tributaryAudiences.sizeChart(points, now, size);
    const holder = document.createElement("div");
    holder.className = "card";
    document.body.append(holder);
    holder.append(chart);
    const frame = chart.getBoundingClientRect();
    const inside = (el) => {
      const box = el.getBoundingClientRect();
      return box.left >= frame.left - 1 && box.right <= frame.right + 1
        && box.top >= frame.top - 1 && box.bottom <= frame.bottom + 1;
    };
    const circles = [...chart.querySelectorAll("[data-testid=chart-point]")];
    const texts = [...chart.querySelectorAll("text")];
    const result = {
      points: circles.length,
      inside: [...circles, ...texts, chart.querySelector("[data-testid=chart-line]")].every(inside),
      x_labels: chart.querySelectorAll("text.x-label").length,
      y_labels: [...chart.querySelectorAll("text.y-label")].map((t) => t.textContent),
      current: chart.querySelector("[data-testid=chart-current]").textContent,
      path_ok: !/NaN|Infinity/.test(chart.querySelector("[data-testid=chart-line]").getAttribute("d")),
      size,
    };
    holder.remove();
    return result;
    """
    measured: dict[str, Any] = driver.execute_script(script, count)
    return measured


def test_the_size_chart_stays_in_its_frame_with_one_point_and_with_a_thousand(server: Any, browser: WebDriver) -> None:
    browser.get(f"{server.http_url}/debugger")
    wait_for(browser, lambda d: d.execute_script("return !!window.tributaryAudiences"), "the audiences script")
    one = chart_geometry(browser, 1)
    assert (one["points"], one["inside"], one["path_ok"], one["x_labels"]) == (1, True, True, 4), one
    assert one["y_labels"] == ["0", "1"] and one["current"] == "0"
    many = chart_geometry(browser, 1000)
    assert (many["points"], many["inside"], many["path_ok"], many["x_labels"]) == (1000, True, True, 4), many
    assert many["current"] == str(many["size"])
    top = int(many["y_labels"][-1])
    assert many["y_labels"][0] == "0" and top >= many["size"] and 3 <= len(many["y_labels"]) <= 6, many
