// The debugger's Violations tab: the tracking-plan violations of every source in a period (GET
// /debugger/api/violations?since_ms=…, read every 3 s while the tab is shown), most frequent
// first, each with a line of its counts per hour; the one selected shows its rule, description
// and the latest offending value. Like debugger.js, data only reaches the page as text nodes.
"use strict";

(() => {
  const debug = window.tributaryDebugger; // debugger.js, loaded first
  const { el, formatTime } = debug;
  const REFRESH_MS = 3000;
  const HOUR_MS = 3_600_000;
  const SPARKS = " ▁▂▃▄▅▆▇█";
  const MAX_SPARKS = 48; // characters of the per-hour line (longer periods are grouped)

  const $ = (id) => document.getElementById(id);

  const state = {
    rows: new Map(), // key → {violation, row}, in the server's order
    selected: null, // a key
    shown: false,
    loading: false,
  };

  const keyOf = (v) => JSON.stringify([v.source, v.event, v.field, v.type]);

  const setStatus = (text, kind = "") => debug.showStatus("violations-status", text, kind);

  function windowHours() {
    return Number($("violations-window").value) || 24;
  }

  async function refresh(session) {
    if (state.loading) return;
    state.loading = true;
    const since = Date.now() - windowHours() * HOUR_MS;
    try {
      const answer = await debug.fetchJson(session, `/violations?since_ms=${since}`);
      if (debug.session() !== session) return;
      render(answer, since);
      setStatus(`updated ${formatTime(answer.now)}`, "ok");
    } catch (error) {
      if (debug.signedOutBy(error) || session.abort.signal.aborted) return;
      setStatus(`could not read the violations: ${error.message}`, "bad");
    } finally {
      state.loading = false;
    }
  }

  /** The hourly counts as one character each (grouped so the line stays short). */
  function sparkline(hours, since) {
    const first = Math.floor(since / HOUR_MS);
    const span = Math.max(1, Math.ceil((Date.now() - since) / HOUR_MS));
    const group = Math.max(1, Math.ceil(span / MAX_SPARKS));
    const buckets = new Array(Math.ceil(span / group)).fill(0);
    for (const [at, count] of hours) {
      const index = Math.floor((Math.floor(Date.parse(at) / HOUR_MS) - first) / group);
      if (index >= 0 && index < buckets.length) buckets[index] += count;
    }
    const top = Math.max(...buckets);
    if (top === 0) return "";
    return buckets.map((count) => SPARKS[Math.min(8, Math.ceil((count * 8) / top))]).join("");
  }

  function render(answer, since) {
    const tbody = $("violation-rows");
    const fresh = new Map();
    for (const violation of answer.violations ?? []) {
      const key = keyOf(violation);
      const row =
        state.rows.get(key)?.row ?? el("tr", { tabindex: "0", "data-testid": "violation-row", dataset: { key } });
      row.replaceChildren(
        el("td", {}, violation.source),
        el("td", { class: "name" }, violation.event),
        el("td", {}, el("code", {}, violation.field)),
        el("td", {}, el("span", { class: "badge" }, violation.type)),
        el("td", { class: "num", "data-testid": "violation-row-count" }, String(violation.count)),
        el("td", { class: "sparks", title: "per hour" }, sparkline(violation.hours ?? [], since)),
        el("td", {}, formatTime(violation.last_seen)),
      );
      row.classList.toggle("selected", key === state.selected);
      fresh.set(key, { violation, row });
    }
    for (const [key, { row }] of state.rows) if (!fresh.has(key)) row.remove();
    state.rows = fresh;
    let next = tbody.firstElementChild;
    for (const { row } of fresh.values()) {
      if (row === next) next = next.nextElementSibling;
      else tbody.insertBefore(row, next);
    }
    $("violations-empty").hidden = fresh.size > 0;
    if (state.selected !== null) select(fresh.has(state.selected) ? state.selected : null);
  }

  function select(key) {
    state.selected = key;
    for (const [other, { row }] of state.rows) row.classList.toggle("selected", other === key);
    $("violation-detail-empty").hidden = key !== null;
    $("violation-detail-body").hidden = key === null;
    if (key === null) return;
    const { violation } = state.rows.get(key);
    $("violation-title").textContent = `${violation.event} · ${violation.field}`;
    $("violation-kind").textContent = violation.type;
    $("violation-rule").textContent = violation.rule;
    $("violation-description").textContent = violation.description;
    $("violation-example").textContent = violation.example || "—";
    $("violation-count").textContent = String(violation.count);
    $("violation-total").textContent = String(violation.total);
    $("violation-first").textContent = formatTime(violation.first_seen);
    $("violation-last").textContent = formatTime(violation.last_seen);
  }

  function clear() {
    state.rows.clear();
    $("violation-rows").replaceChildren();
    $("violations-empty").hidden = false;
    setStatus("");
    select(null);
  }

  debug.on("session", (session) => debug.pollWhileShown(session, REFRESH_MS, () => state.shown, refresh));
  debug.on("signout", clear);
  debug.on("tab", (name) => {
    state.shown = name === "violations";
    const session = debug.session();
    if (state.shown && session) refresh(session);
  });
  $("violations-window").addEventListener("change", () => {
    const session = debug.session();
    if (session) refresh(session);
  });
  debug.onRowActivate($("violation-rows"), select, "key", String);
})();
