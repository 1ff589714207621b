"""The debugger page (`/debugger`) in a real browser: Debian's headless chromium, driven by
Selenium, against a real `cdp serve` fed over the HTTP Tracking API.

What it proves: the admin token is asked for, kept for the tab and refused with a clear 401
message; events stream in newest first and filter by type, name and user; a clicked event shows
its JSON (as text: markup in event data stays text) and what identity resolution decided, the
same profile the server's gRPC API reports; rejected events appear live with their reason and
per-source counts; pause holds new rows back and resume shows them.

Chromium that cannot start fails the test (never skips): `make test` installs it.
TRIBUTARY_SCREENSHOT=path saves a PNG of the page with a few events on screen (docs/debugger.png).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from rpc import Rpc
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait
from tributary._proto.cdp.v1 import profile_pb2

WINDOW_SIZE = "1440,900"
WAIT_SECS = 10.0
T = TypeVar("T")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless chromium for the module (each test's server is a new origin: fresh storage)."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.fail("chromium and chromedriver are needed (`make test` installs chromium and chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # --no-sandbox: chromium's sandbox cannot start as root (CI) nor in most containers.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={WINDOW_SIZE}"):
        options.add_argument(argument)
    try:
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=chromedriver))
    except WebDriverException as error:
        pytest.fail(f"headless chromium did not start: {error.msg}")
    yield driver
    driver.quit()


# ---- helpers --------------------------------------------------------------------------------


def send(server: Any, call: str, body: dict[str, Any]) -> dict[str, Any]:
    """Posts one message to the Tracking API with the write key; returns the 200's JSON."""
    key = base64.b64encode(f"{server.write_key}:".encode()).decode()
    request = urllib.request.Request(
        f"{server.http_url}/v1/{call}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Basic {key}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        reply: dict[str, Any] = json.loads(response.read())
    return reply


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], T], what: str) -> T:
    # The page replaces some lists wholesale when it refreshes them (the source counters every
    # 2 s): an element found just before that goes stale, and the condition is tried again.
    waiting = WebDriverWait(driver, WAIT_SECS, ignored_exceptions=[StaleElementReferenceException])
    return waiting.until(condition, f"timed out waiting for {what}")


def by_id(driver: WebDriver, element_id: str) -> WebElement:
    return driver.find_element(By.ID, element_id)


def by_testid(driver: WebDriver, testid: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, f"[data-testid='{testid}']")


def visible_rows(driver: WebDriver) -> list[WebElement]:
    return [row for row in by_testid(driver, "event-row") if row.is_displayed()]


def row_types(driver: WebDriver) -> list[str]:
    return [row.get_attribute("data-type") or "" for row in visible_rows(driver)]


def sign_in(driver: WebDriver, token: str) -> None:
    field = by_id(driver, "token-input")
    field.clear()
    field.send_keys(token)
    by_id(driver, "token-submit").click()


def open_debugger(driver: WebDriver, server: Any) -> None:
    """Opens the page, signs in with the admin token and waits for the stream to be live."""
    driver.get(f"{server.http_url}/debugger")
    sign_in(driver, server.admin_token)
    wait_for(driver, lambda d: by_id(d, "stream-status").text == "live", "the stream to connect")


def open_row(driver: WebDriver, call: str) -> dict[str, Any]:
    """Clicks the first visible row of this type; returns its JSON once its identity has loaded."""
    row = next(row for row in visible_rows(driver) if row.get_attribute("data-type") == call)
    row.click()
    assert "selected" in (row.get_attribute("class") or "")
    wait_for(driver, lambda d: by_id(d, "identity-body").is_displayed(), f"the identity panel of the {call}")
    event: dict[str, Any] = json.loads(by_id(driver, "event-json").text)
    return event


def identity_panel(driver: WebDriver) -> dict[str, Any]:
    return {
        "profile_id": by_id(driver, "identity-profile").text,
        "decision": by_id(driver, "identity-decision").text,
        "identifiers": {el.get_attribute("data-identifier") for el in by_testid(driver, "identifier")},
        "new": [el.text for el in by_testid(driver, "new-identifier")],
        "merges": [el.text for el in by_testid(driver, "merge")],
    }


def save_screenshot_if_asked(driver: WebDriver) -> None:
    path = os.environ.get("TRIBUTARY_SCREENSHOT")
    if path:
        assert driver.save_screenshot(path), f"could not write {path}"


# ---- the tests ------------------------------------------------------------------------------


def test_live_events_show_their_json_and_identity_decision(server: Any, browser: WebDriver) -> None:
    open_debugger(browser, server)
    context = {"library": {"name": "analytics.js", "version": "5.2.1"}, "page": {"path": "/pricing"}}
    # A visitor browses anonymously, signs in on another device, then is identified on the first:
    # two profiles, merged by the identify. Identity follows the events' own times (ties by
    # messageId), so each has one.
    at = "2026-03-01T10:0{}:00Z".format
    page = {
        "anonymousId": "anon-7f3a",
        "name": "Pricing",
        "messageId": "m-page",
        "context": context,
        "timestamp": at(1),
    }
    send(server, "page", page)
    send(server, "track", {"userId": "user-42", "event": "Signed In", "messageId": "m-signin", "timestamp": at(2)})
    identify = {
        "anonymousId": "anon-7f3a",
        "userId": "user-42",
        "traits": {"email": "ada@example.com", "name": "Ada Lovelace", "plan": "pro"},
        "messageId": "m-identify",
        "context": context,
        "timestamp": at(3),
    }
    send(server, "identify", identify)
    order = {"order_id": "o-1001", "revenue": 129.5, "currency": "EUR", "products": [{"sku": "T-01", "quantity": 2}]}
    track = {
        "userId": "user-42",
        "event": "Order Completed",
        "properties": order,
        "messageId": "m-order",
        "timestamp": at(4),
    }
    send(server, "track", track)
    send(server, "screen", {"userId": "user-42", "name": "Checkout", "messageId": "m-screen"})
    send(server, "group", {"userId": "user-42", "groupId": "acme", "traits": {"name": "Acme"}, "messageId": "m-group"})

    wait_for(browser, lambda d: len(visible_rows(d)) == 6, "six rows")
    assert row_types(browser) == ["group", "screen", "track", "identify", "track", "page"]  # newest on top
    found = Rpc(server).profile.GetProfile(
        profile_pb2.GetProfileRequest(identifier="user_id:user-42"), metadata=server.admin_metadata
    )
    profile_id = found.profile.id
    assert profile_id.startswith("tp_") and found.profile.merges == 1

    shown = open_row(browser, "track")  # the newer track: Order Completed
    assert shown["type"] == "track"
    assert (shown["messageId"], shown["userId"], shown["event"]) == ("m-order", "user-42", "Order Completed")
    assert shown["properties"] == order
    order_identity = identity_panel(browser)
    # The profile the page names is the one the server's API finds for user-42.
    assert order_identity["profile_id"] == profile_id
    assert {"user_id:user-42", "anonymous_id:anon-7f3a", "email:ada@example.com"} <= order_identity["identifiers"]
    assert order_identity["new"] == [] and order_identity["merges"] == []
    assert profile_id in order_identity["decision"]
    assert by_testid(browser, "no-deliveries")[0].text == "No destinations yet."

    shown = open_row(browser, "identify")
    assert shown["traits"]["email"] == "ada@example.com"
    identify_identity = identity_panel(browser)
    assert identify_identity["profile_id"] == profile_id
    assert identify_identity["new"] == ["email:ada@example.com"]  # the ids were each linked before
    [merge] = identify_identity["merges"]
    merged_id = merge.removesuffix(f" merged into {profile_id}")
    assert merged_id != merge and merged_id.startswith("tp_") and merged_id != profile_id
    assert identify_identity["decision"].startswith("Merged") and merged_id in identify_identity["decision"]

    # Per-source counters (polled): six events stored from the dev source.
    wait_for(
        browser,
        lambda d: any(el.text.strip() == "6 received" for el in by_testid(d, "source-received")),
        "the source counter to read 6",
    )

    # Filters, applied in the page.
    Select(by_id(browser, "filter-type")).select_by_value("track")
    assert row_types(browser) == ["track", "track"]
    Select(by_id(browser, "filter-type")).select_by_value("")
    by_id(browser, "filter-user").send_keys("anon-7f")
    assert row_types(browser) == ["identify", "page"]
    by_id(browser, "filter-user").clear()
    by_id(browser, "filter-name").send_keys("checkout")
    assert row_types(browser) == ["screen"]
    by_id(browser, "filter-name").clear()
    by_id(browser, "filter-name").send_keys("ORDER")
    assert row_types(browser) == ["track"]
    by_id(browser, "filter-name").clear()
    assert len(visible_rows(browser)) == 6

    open_row(browser, "identify")
    save_screenshot_if_asked(browser)


def test_an_event_without_user_or_anonymous_id_is_listed_as_rejected(server: Any, browser: WebDriver) -> None:
    open_debugger(browser, server)
    reply = send(server, "track", {"event": "Clicked", "properties": {"button": "buy"}, "messageId": "m-nobody"})
    assert reply["rejected"][0]["field"] == "userId"
    send(server, "track", {"userId": "u-1", "event": "Clicked", "messageId": "m-somebody"})

    # Counted live (the stream's `rejected` events) while the Live tab is shown.
    wait_for(browser, lambda d: by_id(d, "rejected-tab-count").text == "1", "the rejected count")
    wait_for(browser, lambda d: len(visible_rows(d)) == 1, "the accepted event's row")
    by_id(browser, "tab-rejected").click()
    wait_for(browser, lambda d: len(by_testid(d, "rejected-row")) == 1, "the rejected row")
    row = by_testid(browser, "rejected-row")[0]
    assert "userId or anonymousId is required" in row.text
    assert "m-nobody" in row.text
    counts = [el.text for el in by_testid(browser, "rejected-count")]
    assert len(counts) == 1 and counts[0].endswith("userId or anonymousId is required 1"), counts

    row.click()
    record = json.loads(by_id(browser, "rejected-json").text)
    assert record["field"] == "userId" and record["message_id"] == "m-nobody"
    assert record["event"]["event"] == "Clicked"
    assert by_id(browser, "rejected-reason").text == "userId: userId or anonymousId is required"

    # A second one arrives while the tab is open: a new row on top, the count goes up.
    send(server, "identify", {"traits": {"plan": "free"}, "messageId": "m-nobody-2"})
    wait_for(browser, lambda d: len(by_testid(d, "rejected-row")) == 2, "the second rejected row")
    assert "m-nobody-2" in by_testid(browser, "rejected-row")[0].text
    assert by_testid(browser, "rejected-count")[0].text.endswith(" 2")
    assert by_id(browser, "rejected-tab-count").text == "2"
    wait_for(
        browser,
        lambda d: any(el.text.strip() == "· 2 rejected" for el in by_testid(d, "source-rejected")),
        "the source's rejected counter",
    )


def test_pause_holds_new_rows_back_until_resume(server: Any, browser: WebDriver) -> None:
    open_debugger(browser, server)
    send(server, "track", {"userId": "u-1", "event": "Signed In", "messageId": "m-1"})
    wait_for(browser, lambda d: len(visible_rows(d)) == 1, "the first row")

    pause = by_id(browser, "pause-button")
    pause.click()
    # Markup in event data must stay text.
    sneaky = "<img src=x onerror=\"document.title='pwned'\">Signed Up"
    send(server, "track", {"userId": "u-2", "event": sneaky, "messageId": "m-2"})
    send(server, "track", {"userId": "u-3", "event": "Trial Started", "messageId": "m-3"})
    wait_for(browser, lambda d: pause.get_attribute("data-held") == "2", "two events held while paused")
    assert pause.text == "Resume (2 new)"
    assert len(visible_rows(browser)) == 1

    pause.click()
    wait_for(browser, lambda d: len(visible_rows(d)) == 3, "the held rows after resume")
    assert pause.text == "Pause"
    names = [row.find_element(By.CSS_SELECTOR, "td.name").text for row in visible_rows(browser)]
    assert names == ["Trial Started", sneaky, "Signed In"]
    assert browser.find_elements(By.CSS_SELECTOR, "#event-rows img") == []
    assert browser.title == "Tributary debugger"

    # After resume, new events show at once again.
    send(server, "track", {"userId": "u-4", "event": "Upgraded", "messageId": "m-4"})
    wait_for(browser, lambda d: len(visible_rows(d)) == 4, "a row after resume")


def test_a_wrong_token_shows_the_401_message_and_the_form_again(server: Any, browser: WebDriver) -> None:
    browser.get(f"{server.http_url}/debugger")
    assert by_id(browser, "token-form").is_displayed()
    assert not by_id(browser, "app").is_displayed()
    sign_in(browser, "not-the-admin-token")
    wait_for(browser, lambda d: by_id(d, "auth-error").is_displayed(), "the 401 message")
    assert by_id(browser, "auth-error").text == "The server refused this token (401): invalid access token"
    assert by_id(browser, "token-form").is_displayed()
    assert not by_id(browser, "app").is_displayed()
    assert browser.execute_script("return sessionStorage.length") == 0

    # The right token opens it, and is kept for the tab: a reload needs no form.
    sign_in(browser, server.admin_token)
    wait_for(browser, lambda d: by_id(d, "app").is_displayed(), "the debugger")
    assert not by_id(browser, "auth-error").is_displayed()
    browser.refresh()
    wait_for(browser, lambda d: by_id(d, "stream-status").text == "live", "the stream after a reload")
    assert not by_id(browser, "token-form").is_displayed()

    # A kept token the server no longer accepts: the form again, with the reason.
    browser.execute_script("sessionStorage.setItem('tributary.debugger.token', 'revoked')")
    browser.refresh()
    wait_for(browser, lambda d: by_id(d, "auth-error").is_displayed(), "the 401 of a kept token")
    assert not by_id(browser, "app").is_displayed()
