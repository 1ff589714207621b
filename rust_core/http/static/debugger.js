// Tributary's debugger page. Reads /debugger/api/* with the admin token as a Bearer header:
// - the stream (server-sent events) through fetch() and a ReadableStream, parsed here, because
//   EventSource cannot send headers; on an end, an error or 45 s of silence (the server sends a
//   keep-alive every 15 s) it reconnects with ?after=<last seq>, so no event is shown twice or
//   lost in between;
// - one event's identity decision and deliveries when its row is clicked;
// - the rejected events and the per-source counters (polled every 2 s).
// Other tabs live in files of their own (debugger-audiences.js, debugger-violations.js,
// debugger-predictions.js) and use what this one exposes as window.tributaryDebugger (see "for
// the other tabs" below): the session, every streamed event, tab changes and a few helpers.
// Event data only ever reaches the page as text nodes (el(), textContent): never innerHTML.
// A 401 or 403 anywhere ends the session: the token is forgotten and the form shown with the
// reason (403: a valid token without the admin role, e.g. a read token).
"use strict";

(() => {
  const API = new URL("api", new URL(".", document.currentScript.src)).pathname;
  const TOKEN_KEY = "tributary.debugger.token";
  const MAX_ROWS = 500; // rows kept in each list; older ones are dropped
  const SOURCES_EVERY_MS = 2000;
  const SILENCE_MS = 45000; // three keep-alives missed: the connection is dead
  const RECONNECT_MAX_MS = 5000;

  const $ = (id) => document.getElementById(id);

  /** An element with properties and children (strings become text nodes, never markup). */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  const state = {
    session: null, // {token, abort}: one per sign-in, aborted on sign-out
    events: new Map(), // seq → {record, row}, the rows shown
    lastSeq: null, // the highest seq received (shown or held): the stream resumes after it
    paused: false,
    held: [], // records received while paused, oldest first
    heldCount: 0,
    selectedSeq: null,
    rejected: new Map(), // id → {record, row}
    counts: [], // rejected counts per source, field and reason
    selectedRejected: null,
  };

  class AuthError extends Error {}

  // ---- for the other tabs --------------------------------------------------------------------

  /** Listeners by occasion: "session" (signed in), "event" (every stored event streamed, even
   * while paused), "signout" and "tab" (a tab was shown, by name). */
  const listeners = { session: [], event: [], signout: [], tab: [] };

  function notify(occasion, ...args) {
    for (const listener of listeners[occasion]) {
      try {
        listener(...args);
      } catch (error) {
        console.error(`debugger: a ${occasion} listener failed`, error);
      }
    }
  }

  /** Shows a streamed event in the Live tab's detail; false when it is not among the rows. */
  function openEvent(seq) {
    const shown = state.events.get(seq);
    if (!shown) return false;
    showTab("live");
    selectEvent(seq);
    shown.row.scrollIntoView({ block: "nearest" });
    return true;
  }

  // ---- the API -------------------------------------------------------------------------------

  async function errorMessage(response) {
    try {
      const body = await response.json();
      return body?.error?.message ?? response.statusText;
    } catch {
      return response.statusText;
    }
  }

  async function call(session, path, signal = session.abort.signal) {
    const response = await fetch(API + path, {
      headers: { Authorization: `Bearer ${session.token}` },
      cache: "no-store",
      signal,
    });
    if (response.status === 401 || response.status === 403) {
      throw new AuthError(`The server refused this token (${response.status}): ${await errorMessage(response)}`);
    }
    if (!response.ok) throw new Error(`${response.status} ${await errorMessage(response)}`);
    return response;
  }

  const fetchJson = async (session, path) => (await call(session, path)).json();
  /** A binary answer (a chart's PNG): an <img> cannot send the token, so the page fetches it. */
  const fetchBlob = async (session, path) => (await call(session, path)).blob();

  /** Ends the session on a 401 or 403; other failures are the caller's to show. Returns true then. */
  function signedOutBy(error) {
    if (!(error instanceof AuthError)) return false;
    signOut(error.message);
    return true;
  }

  // ---- sign-in -------------------------------------------------------------------------------

  async function start(token) {
    state.session?.abort.abort();
    const session = { token, abort: new AbortController() };
    state.session = session;
    sessionStorage.setItem(TOKEN_KEY, token);
    try {
      renderSources(await fetchJson(session, "/sources"));
    } catch (error) {
      if (signedOutBy(error) || session.abort.signal.aborted) return;
      setStatus(`the server did not answer: ${error.message}`, "bad");
    }
    $("signin").hidden = true;
    $("app").hidden = false;
    $("tabs").hidden = false;
    $("sign-out").hidden = false;
    followStream(session);
    pollSources(session);
    notify("session", session);
  }

  function signOut(message) {
    state.session?.abort.abort();
    state.session = null;
    sessionStorage.removeItem(TOKEN_KEY);
    Object.assign(state, { lastSeq: null, paused: false, held: [], heldCount: 0, counts: [] });
    state.events.clear();
    state.rejected.clear();
    $("event-rows").replaceChildren();
    $("rejected-rows").replaceChildren();
    $("rejected-counts").replaceChildren();
    $("source-counters").replaceChildren();
    selectEvent(null);
    selectRejected(null);
    updatePauseButton();
    updateEmptyNotes();
    $("app").hidden = true;
    $("tabs").hidden = true;
    $("sign-out").hidden = true;
    $("signin").hidden = false;
    $("auth-error").textContent = message;
    $("auth-error").hidden = !message;
    $("token-input").value = "";
    $("token-input").focus();
    notify("signout");
  }

  // ---- the stream ----------------------------------------------------------------------------

  function setStatus(text, kind = "") {
    const status = $("stream-status");
    status.textContent = text;
    status.className = `status ${kind}`;
  }

  /** Resolves after `ms`, or at once when `signal` aborts. */
  const sleep = (ms, signal) =>
    new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      signal.addEventListener("abort", wake);
    });

  async function followStream(session) {
    const signal = session.abort.signal;
    let delay = 500;
    while (!signal.aborted) {
      const connection = new AbortController();
      const endConnection = () => connection.abort();
      signal.addEventListener("abort", endConnection, { once: true });
      let silence = setTimeout(endConnection, SILENCE_MS);
      const heard = () => {
        clearTimeout(silence);
        silence = setTimeout(endConnection, SILENCE_MS);
      };
      try {
        const after = state.lastSeq === null ? "" : `?after=${state.lastSeq}`;
        const response = await call(session, `/stream${after}`, connection.signal);
        setStatus("live", "ok");
        delay = 500;
        // Rejected events are not replayed by ?after: the list is read again on each connect.
        loadRejected(session);
        await readServerSentEvents(response.body, heard, onServerEvent);
        if (!signal.aborted) setStatus("the stream ended; reconnecting…", "bad");
      } catch (error) {
        if (signedOutBy(error) || signal.aborted) return;
        const why = connection.signal.aborted ? "no data for 45 s" : error.message;
        setStatus(`disconnected (${why}); reconnecting…`, "bad");
      } finally {
        clearTimeout(silence);
        signal.removeEventListener("abort", endConnection);
      }
      await sleep(delay, signal);
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
    }
  }

  /** Parses text/event-stream (the WHATWG rules this server uses: id, event, data, comments). */
  async function readServerSentEvents(body, onChunk, onEvent) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let type = "";
    let data = [];
    let id = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      onChunk();
      buffer += value;
      // A trailing "\r" may be the first half of "\r\n": it waits for the next chunk.
      const complete = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
      const lines = buffer.slice(0, complete).split(/\r\n|\r|\n/);
      buffer = lines.pop() + buffer.slice(complete);
      for (const line of lines) {
        if (line === "") {
          if (data.length) onEvent({ type: type || "message", id, data: data.join("\n") });
          type = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue; // a comment: the keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "data") data.push(text);
        else if (field === "event") type = text;
        else if (field === "id") id = text;
      }
    }
  }

  function onServerEvent(message) {
    let record;
    try {
      record = JSON.parse(message.data);
    } catch {
      console.warn("debugger: an unreadable server event", message);
      return;
    }
    if (message.type === "event") receiveEvent(record);
    else if (message.type === "rejected") receiveRejected(record);
  }

  // ---- live events ---------------------------------------------------------------------------

  function receiveEvent(record) {
    if (state.events.has(record.seq)) return;
    if (state.lastSeq === null || record.seq > state.lastSeq) state.lastSeq = record.seq;
    notify("event", record);
    if (state.paused) {
      state.held.push(record);
      if (state.held.length > MAX_ROWS) state.held.shift();
      state.heldCount += 1;
      updatePauseButton();
      return;
    }
    showEvent(record);
  }

  function eventName(event) {
    switch (event.type) {
      case "track":
        return event.event ?? "";
      case "page":
      case "screen":
        return event.name ?? event.properties?.title ?? "";
      case "identify":
        return event.traits?.email ?? event.traits?.name ?? "";
      case "group":
        return event.groupId ?? "";
      case "alias":
        return `${event.previousId ?? ""} → ${event.userId ?? ""}`;
      default:
        return "";
    }
  }

  function formatTime(iso) {
    const time = new Date(iso);
    if (!iso || Number.isNaN(time.getTime())) return iso ?? "";
    const ms = String(time.getMilliseconds()).padStart(3, "0");
    return `${time.toLocaleTimeString([], { hour12: false })}.${ms}`;
  }

  function showEvent(record) {
    const event = record.event ?? {};
    const when = event.timestamp ?? event.receivedAt ?? "";
    const user = event.userId
      ? el("span", {}, event.userId)
      : el("span", { class: "anon", title: "anonymousId" }, event.anonymousId ?? "");
    const row = el(
      "tr",
      { tabindex: "0", "data-testid": "event-row", dataset: { seq: record.seq, type: event.type ?? "" } },
      el("td", { class: "num" }, String(record.seq)),
      el("td", { title: when }, formatTime(when)),
      el("td", {}, el("span", { class: `badge ${event.type ?? ""}` }, event.type ?? "?")),
      el("td", { class: "name" }, eventName(event)),
      el("td", { class: "user" }, user),
      el("td", {}, record.source ?? String(record.source_id ?? "")),
    );
    row.hidden = !matchesFilters(event);
    // Newest (highest seq) on top; the stream is in seq order, so this is almost always first.
    const tbody = $("event-rows");
    let before = tbody.firstElementChild;
    while (before && Number(before.dataset.seq) > record.seq) before = before.nextElementSibling;
    tbody.insertBefore(row, before);
    state.events.set(record.seq, { record, row });
    while (state.events.size > MAX_ROWS) {
      const oldest = tbody.lastElementChild;
      state.events.delete(Number(oldest.dataset.seq));
      oldest.remove();
    }
    updateEmptyNotes();
  }

  function matchesFilters(event) {
    const type = $("filter-type").value;
    const name = $("filter-name").value.trim().toLowerCase();
    const user = $("filter-user").value.trim().toLowerCase();
    if (type && event.type !== type) return false;
    if (name && !(event.event ?? event.name ?? "").toLowerCase().includes(name)) return false;
    if (user) {
      const ids = [event.userId, event.anonymousId].filter(Boolean).map((id) => id.toLowerCase());
      if (!ids.some((id) => id.includes(user))) return false;
    }
    return true;
  }

  function applyFilters() {
    for (const { record, row } of state.events.values()) row.hidden = !matchesFilters(record.event ?? {});
    updateEmptyNotes();
  }

  function updateEmptyNotes() {
    let shown = false;
    for (const { row } of state.events.values()) {
      if (!row.hidden) {
        shown = true;
        break;
      }
    }
    const note = $("events-empty");
    note.hidden = shown;
    note.textContent = state.events.size ? "No event matches the filters." : "Waiting for events…";
    $("rejected-empty").hidden = state.rejected.size > 0;
  }

  function togglePause() {
    state.paused = !state.paused;
    if (!state.paused) {
      const held = state.held;
      state.held = [];
      state.heldCount = 0;
      for (const record of held) showEvent(record);
    }
    updatePauseButton();
  }

  function updatePauseButton() {
    const button = $("pause-button");
    button.textContent = state.paused ? `Resume (${state.heldCount} new)` : "Pause";
    button.classList.toggle("paused", state.paused);
    button.dataset.held = String(state.heldCount);
  }

  // ---- one event's detail ---------------------------------------------------------------------

  async function selectEvent(seq) {
    state.selectedSeq = seq;
    for (const { record, row } of state.events.values()) row.classList.toggle("selected", record.seq === seq);
    $("event-detail-empty").hidden = seq !== null;
    $("event-detail-body").hidden = seq === null;
    if (seq === null) return;
    const { record } = state.events.get(seq);
    const event = record.event ?? {};
    $("event-title").textContent = `#${seq} ${event.type ?? ""} ${eventName(event)}`.trim();
    $("event-json").textContent = JSON.stringify(event, null, 2);
    $("identity-status").textContent = "Loading…";
    $("identity-status").hidden = false;
    $("identity-body").hidden = true;
    $("deliveries-body").replaceChildren("Loading…");
    const session = state.session;
    let detail;
    try {
      detail = await fetchJson(session, `/events/${seq}`);
    } catch (error) {
      if (signedOutBy(error) || state.selectedSeq !== seq) return;
      $("identity-status").textContent = `Could not read event #${seq}: ${error.message}`;
      $("deliveries-body").replaceChildren();
      return;
    }
    if (state.selectedSeq !== seq) return; // another row was clicked meanwhile
    if (detail.event) $("event-json").textContent = JSON.stringify(detail.event, null, 2);
    renderIdentity(detail.identity);
    renderDeliveries(detail.deliveries ?? []);
  }

  const noneOr = (items) => (items.length ? items : [el("span", { class: "muted" }, "none")]);

  function renderIdentity(identity) {
    if (!identity) {
      $("identity-status").textContent = "This event belongs to no profile.";
      return;
    }
    $("identity-status").hidden = true;
    $("identity-body").hidden = false;
    $("identity-decision").textContent = identity.decision ?? "";
    $("identity-profile").textContent = identity.profile_id ?? "";
    const fresh = new Set(identity.new_identifiers ?? []);
    $("identity-new").replaceChildren(
      ...noneOr([...fresh].map((id) => el("code", { class: "chip new", "data-testid": "new-identifier" }, id))),
    );
    $("identity-merges").replaceChildren(
      ...noneOr(
        (identity.merges ?? []).map((merge) =>
          el(
            "div",
            { "data-testid": "merge" },
            el("code", {}, merge.merged_id),
            " merged into ",
            el("code", {}, merge.survivor_id),
          ),
        ),
      ),
    );
    $("identity-refused").replaceChildren(
      ...noneOr(
        (identity.refused ?? []).map((refused) =>
          el("div", { "data-testid": "refused" }, el("code", {}, refused.identifier), ` ${refused.reason}`),
        ),
      ),
    );
    $("identity-identifiers").replaceChildren(
      ...(identity.identifiers ?? []).map((identifier) => {
        const key = `${identifier.type}:${identifier.value}`;
        return el(
          "tr",
          { "data-testid": "identifier", dataset: { identifier: key } },
          el("td", {}, el("code", {}, key), fresh.has(key) ? el("span", { class: "tag" }, "new") : null),
          el("td", { title: identifier.first_seen ?? "" }, formatTime(identifier.first_seen)),
          el("td", {}, el("code", { class: "muted" }, identifier.first_message_id ?? "")),
        );
      }),
    );
  }

  function renderDeliveries(deliveries) {
    if (!deliveries.length) {
      $("deliveries-body").replaceChildren(el("p", { class: "muted", "data-testid": "no-deliveries" }, "No destinations yet."));
      return;
    }
    // The contract leaves a delivery's fields open: the destination and status when named,
    // otherwise the JSON itself.
    $("deliveries-body").replaceChildren(
      el(
        "ul",
        { class: "deliveries" },
        ...deliveries.map((delivery) => {
          const name = delivery.destination ?? delivery.name;
          const text = name
            ? `${name}: ${delivery.status ?? "?"}${delivery.error ? ` (${delivery.error})` : ""}`
            : JSON.stringify(delivery);
          return el("li", { "data-testid": "delivery" }, text);
        }),
      ),
    );
  }

  // ---- rejected events ------------------------------------------------------------------------

  async function loadRejected(session) {
    let answer;
    try {
      answer = await fetchJson(session, "/rejected?limit=100");
    } catch (error) {
      if (!signedOutBy(error) && !session.abort.signal.aborted) console.warn("debugger: /rejected", error);
      return;
    }
    if (state.session !== session) return;
    // Keep what arrived live after the server read its list (newer ids than any in it).
    const newest = Math.max(0, ...answer.rejected.map((record) => record.id));
    const later = [...state.rejected.values()].map(({ record }) => record).filter((record) => record.id > newest);
    state.rejected.clear();
    $("rejected-rows").replaceChildren();
    state.counts = answer.counts ?? [];
    for (const record of answer.rejected) showRejected(record, "bottom");
    for (const record of later.reverse()) {
      showRejected(record, "top");
      countRejected(record);
    }
    renderCounts();
    if (state.selectedRejected !== null && !state.rejected.has(state.selectedRejected)) selectRejected(null);
  }

  function receiveRejected(record) {
    if (state.rejected.has(record.id)) return;
    showRejected(record, "top");
    countRejected(record);
    renderCounts();
  }

  function countRejected(record) {
    const same = state.counts.find(
      (count) => count.source_id === record.source_id && count.field === record.field && count.reason === record.reason,
    );
    if (same) same.count += 1;
    else state.counts.push({ source_id: record.source_id, source: record.source, field: record.field, reason: record.reason, count: 1 });
  }

  function showRejected(record, where) {
    const row = el(
      "tr",
      { tabindex: "0", "data-testid": "rejected-row", dataset: { id: record.id } },
      el("td", { title: record.received_at ?? "" }, formatTime(record.received_at)),
      el("td", {}, record.source ?? String(record.source_id ?? "")),
      el("td", {}, el("code", {}, record.field ?? "")),
      el("td", { class: "reason" }, record.reason ?? ""),
      el("td", {}, el("code", { class: "muted" }, record.message_id ?? "")),
    );
    const tbody = $("rejected-rows");
    if (where === "top") tbody.prepend(row);
    else tbody.append(row);
    state.rejected.set(record.id, { record, row });
    while (state.rejected.size > MAX_ROWS) {
      const oldest = tbody.lastElementChild;
      state.rejected.delete(Number(oldest.dataset.id));
      oldest.remove();
    }
    updateEmptyNotes();
  }

  function renderCounts() {
    const counts = [...state.counts].sort((a, b) => b.count - a.count);
    $("rejected-counts").replaceChildren(
      ...counts.map((count) =>
        el(
          "tr",
          { "data-testid": "rejected-count" },
          el("td", {}, count.source ?? String(count.source_id)),
          el("td", {}, el("code", {}, count.field ?? "")),
          el("td", {}, count.reason ?? ""),
          el("td", { class: "num" }, String(count.count)),
        ),
      ),
    );
    $("rejected-tab-count").textContent = String(counts.reduce((sum, count) => sum + count.count, 0));
  }

  function selectRejected(id) {
    state.selectedRejected = id;
    for (const [key, { row }] of state.rejected) row.classList.toggle("selected", key === id);
    $("rejected-detail-empty").hidden = id !== null;
    $("rejected-detail-body").hidden = id === null;
    if (id === null) return;
    const { record } = state.rejected.get(id);
    $("rejected-title").textContent = `Rejected ${record.event?.type ?? "message"} from ${record.source ?? record.source_id}`;
    $("rejected-reason").textContent = `${record.field}: ${record.reason}`;
    $("rejected-json").textContent = JSON.stringify(record, null, 2);
  }

  // ---- sources -------------------------------------------------------------------------------

  async function pollSources(session) {
    while (!session.abort.signal.aborted) {
      await sleep(SOURCES_EVERY_MS, session.abort.signal);
      if (session.abort.signal.aborted) return;
      try {
        renderSources(await fetchJson(session, "/sources"));
      } catch (error) {
        if (signedOutBy(error)) return;
      }
    }
  }

  function renderSources(answer) {
    $("source-counters").replaceChildren(
      ...(answer.sources ?? []).map((source) =>
        el(
          "li",
          { "data-testid": "source-counter", dataset: { sourceId: source.id } },
          el("strong", {}, source.name ?? String(source.id)),
          el("span", { "data-testid": "source-received", title: "events stored since the server started" }, ` ${source.received} received`),
          el("span", { "data-testid": "source-rejected", class: source.rejected ? "bad" : "", title: "rejected events" }, ` · ${source.rejected} rejected`),
        ),
      ),
    );
  }

  // ---- what the other tabs share ---------------------------------------------------------------

  /** Shows `text` in a tab's status element (`kind`: "ok" or "bad"); hidden when empty. */
  function showStatus(id, text, kind = "") {
    const status = $(id);
    status.textContent = text;
    status.className = `status ${kind}`;
    status.hidden = !text;
  }

  /** Calls `refresh(session)` every `everyMs` while `isShown()`, until the session ends. */
  async function pollWhileShown(session, everyMs, isShown, refresh) {
    const signal = session.abort.signal;
    while (!signal.aborted) {
      if (isShown()) await refresh(session);
      await sleep(everyMs, signal);
    }
  }

  // ---- wiring --------------------------------------------------------------------------------

  function showTab(name) {
    for (const tab of document.querySelectorAll(".tab")) {
      const active = tab.dataset.tab === name;
      tab.classList.toggle("active", active);
      tab.setAttribute("aria-selected", String(active));
    }
    for (const pane of document.querySelectorAll("#app > .pane-group")) pane.hidden = pane.id !== name;
    if (name === "rejected" && state.session) loadRejected(state.session);
    notify("tab", name);
  }

  /** Clicking a row of `tbody` (or Enter/Space on it) selects `parse(row.dataset[key])`. */
  function onRowActivate(tbody, select, key, parse = Number) {
    const activate = (event) => {
      const row = event.target.closest("tr");
      if (row && tbody.contains(row)) select(parse(row.dataset[key]));
    };
    tbody.addEventListener("click", activate);
    tbody.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        activate(event);
      }
    });
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (token) start(token);
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showTab(tab.dataset.tab));
  $("pause-button").addEventListener("click", togglePause);
  $("rejected-refresh").addEventListener("click", () => state.session && loadRejected(state.session));
  for (const id of ["filter-type", "filter-name", "filter-user"]) {
    $(id).addEventListener("input", applyFilters);
    $(id).addEventListener("change", applyFilters);
  }
  onRowActivate($("event-rows"), selectEvent, "seq");
  onRowActivate($("rejected-rows"), selectRejected, "id");

  window.tributaryDebugger = Object.freeze({
    /** Calls `listener` on each occasion ("session", "event", "signout", "tab"). */
    on(occasion, listener) {
      listeners[occasion].push(listener);
    },
    session: () => state.session,
    el,
    formatTime,
    fetchJson,
    fetchBlob,
    signedOutBy,
    sleep,
    showStatus,
    pollWhileShown,
    openEvent,
    onRowActivate,
  });

  // After every deferred script (the other tabs') has run and listens: a kept token starts the
  // session, and the stream, only then.
  document.addEventListener("DOMContentLoaded", () => {
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) start(saved);
    else $("token-input").focus();
  });
})();
