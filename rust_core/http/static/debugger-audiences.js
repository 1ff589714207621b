// The debugger's Audiences tab: the saved audiences and computed traits (GET
// /debugger/api/audiences, read every 3 s while the tab is shown) and, for the one selected, its
// query, a chart of its size over time and who entered and exited it, live.
// - The entries and exits come from the page's one stream (debugger.js hands every stored event
//   to this file, paused or not): the tracks `Audience Entered` / `Audience Exited` that
//   Tributary Engage writes, filed by `properties.audience_key`; for a computed trait, the
//   identifies Engage writes with each new value (`context.personas.computation_key`). Only the
//   source "Tributary Engage": the same tracks forwarded from elsewhere are someone else's.
//   The stream starts 50 events back, so the list holds what came since the page opened.
// - The chart is an SVG built here (no library): a step line, since a size holds until the next
//   change; a point per change the server kept (the last 1,000 since it started), then the line
//   runs on to the server's "now" at the current size.
// Like debugger.js, data only reaches the page as text nodes: never innerHTML.
"use strict";

(() => {
  const debug = window.tributaryDebugger; // debugger.js, loaded first
  const { el, formatTime } = debug;
  const REFRESH_MS = 3000;
  const MAX_CHANGES = 500; // kept per definition, newest first
  const ENGAGE_SOURCE = "Tributary Engage";
  const SVG_NS = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);

  const state = {
    audiences: new Map(), // key → {audience, row}, in the server's order (by key)
    now: null, // the server's time of the last list, ms
    selected: null, // a key
    changes: new Map(), // key → changes, newest (highest seq) first
    seen: new Set(), // seqs of the changes kept
    shown: false, // the tab is on screen: only then is the list read
    loading: false,
  };

  // ---- the list ------------------------------------------------------------------------------

  const setStatus = (text, kind = "") => debug.showStatus("audiences-status", text, kind);

  async function refresh(session) {
    if (state.loading) return; // the answer on its way is as fresh
    state.loading = true;
    try {
      const answer = await debug.fetchJson(session, "/audiences");
      if (debug.session() !== session) return;
      renderList(answer);
      setStatus(`updated ${formatTime(answer.now)}`, "ok");
    } catch (error) {
      if (debug.signedOutBy(error) || session.abort.signal.aborted) return;
      setStatus(`could not read the audiences: ${error.message}`, "bad");
    } finally {
      state.loading = false;
    }
  }

  /** Updates the rows in place (a row keeps its focus and selection across refreshes). */
  function renderList(answer) {
    const now = Date.parse(answer.now);
    state.now = Number.isNaN(now) ? Date.now() : now;
    const tbody = $("audience-rows");
    const fresh = new Map();
    for (const audience of answer.audiences ?? []) {
      const row =
        state.audiences.get(audience.key)?.row ??
        el("tr", { tabindex: "0", "data-testid": "audience-row", dataset: { key: audience.key } });
      fillRow(row, audience);
      row.classList.toggle("selected", audience.key === state.selected);
      fresh.set(audience.key, { audience, row });
    }
    for (const [key, { row }] of state.audiences) if (!fresh.has(key)) row.remove();
    state.audiences = fresh;
    let next = tbody.firstElementChild;
    for (const { row } of fresh.values()) {
      if (row === next) next = next.nextElementSibling;
      else tbody.insertBefore(row, next);
    }
    $("audiences-empty").hidden = fresh.size > 0;
    if (state.selected === null) return;
    if (fresh.has(state.selected)) renderDetail();
    else select(null); // deleted
  }

  const statusText = (audience) =>
    audience.status === "computing" ? `computing ${audience.progress ?? 0} %` : audience.status;
  const entities = (audience) => (audience.kind === "accounts" ? "accounts" : "profiles");

  function typeText(audience) {
    return audience.kind === "accounts" ? `${audience.type} · accounts` : audience.type;
  }

  function fillRow(row, audience) {
    row.dataset.status = audience.status;
    row.dataset.size = String(audience.size);
    row.replaceChildren(
      el("td", {}, el("code", {}, audience.key)),
      el("td", { class: "name" }, audience.name ?? ""),
      el("td", {}, el("span", { class: `badge ${audience.type}` }, typeText(audience))),
      el("td", {}, el("span", { class: `state ${audience.status}`, "data-testid": "audience-row-status" }, statusText(audience))),
      el("td", { class: "num", "data-testid": "audience-row-size" }, String(audience.size)),
    );
  }

  // ---- the selected one ------------------------------------------------------------------------

  function select(key) {
    state.selected = key;
    for (const [other, { row }] of state.audiences) row.classList.toggle("selected", other === key);
    $("audience-detail-empty").hidden = key !== null;
    $("audience-detail-body").hidden = key === null;
    if (key === null) return;
    renderDetail();
    renderChanges();
  }

  function renderDetail() {
    const { audience } = state.audiences.get(state.selected);
    const named = audience.name && audience.name !== audience.key;
    $("audience-title").textContent = named ? `${audience.name} (${audience.key})` : audience.key;
    $("audience-type").textContent = typeText(audience);
    $("audience-status").textContent = statusText(audience);
    $("audience-size").textContent = String(audience.size);
    $("audience-query").textContent = audience.query;
    const chart = $("audience-chart");
    const note = $("audience-chart-note");
    if (audience.type === "trait") {
      chart.replaceChildren();
      note.textContent = `A computed trait keeps no size history; ${audience.size} ${entities(audience)} have a value now.`;
      return;
    }
    const points = audience.sizes ?? [];
    chart.replaceChildren(sizeChart(points, state.now, audience.size));
    note.textContent = points.length
      ? `A point after each change since the server started (the last 1,000 kept): ${points.length}.`
      : "No change since the server started.";
  }

  // ---- entered and exited, live ----------------------------------------------------------------

  /** The change an event records, or null: {seq, key, what, time, user, anonymous, messageId}. */
  function changeOf(record) {
    const event = record.event ?? {};
    if (record.source !== ENGAGE_SOURCE) return null;
    let key;
    let what;
    if (event.type === "track" && (event.event === "Audience Entered" || event.event === "Audience Exited")) {
      key = event.properties?.audience_key;
      what = event.event === "Audience Entered" ? "Entered" : "Exited";
    } else if (event.type === "identify" && event.context?.personas?.computation_class === "trait") {
      key = event.context.personas.computation_key;
      what = `= ${JSON.stringify(event.traits?.[key] ?? null)}`;
    }
    if (typeof key !== "string" || !what) return null;
    // Engage's events carry one identifier: a userId, else an anonymousId, else an email.
    const user = event.userId || event.anonymousId || event.context?.traits?.email || "";
    return {
      seq: record.seq,
      key,
      what,
      time: event.timestamp ?? event.receivedAt ?? "",
      user,
      anonymous: !event.userId,
      messageId: event.messageId ?? "",
    };
  }

  function receive(record) {
    const change = changeOf(record);
    if (!change || state.seen.has(change.seq)) return;
    state.seen.add(change.seq);
    let list = state.changes.get(change.key);
    if (!list) state.changes.set(change.key, (list = []));
    // Newest first; the stream is in seq order, so this is almost always the top.
    let at = 0;
    while (at < list.length && list[at].seq > change.seq) at += 1;
    list.splice(at, 0, change);
    const dropped = list.length > MAX_CHANGES ? list.pop() : null;
    if (dropped) state.seen.delete(dropped.seq);
    if (change.key !== state.selected) return;
    const tbody = $("audience-changes");
    tbody.insertBefore(changeRow(change), tbody.children[at] ?? null);
    if (dropped) tbody.lastElementChild.remove();
    $("audience-changes-empty").hidden = true;
  }

  function changeRow(change) {
    const kind = change.what === "Entered" ? "entered" : change.what === "Exited" ? "exited" : "computed";
    return el(
      "tr",
      {
        tabindex: "0",
        title: "Open in the Live tab",
        "data-testid": "audience-change",
        dataset: { seq: change.seq, change: kind },
      },
      el("td", { title: change.time }, formatTime(change.time)),
      el("td", {}, el("span", { class: `badge ${kind}` }, change.what)),
      el("td", { class: "user" }, change.anonymous ? el("span", { class: "anon" }, change.user) : change.user),
      el("td", { class: "message-id", title: change.messageId }, el("code", { class: "muted" }, change.messageId)),
    );
  }

  function renderChanges() {
    const list = state.changes.get(state.selected) ?? [];
    $("audience-changes").replaceChildren(...list.map(changeRow));
    $("audience-changes-empty").hidden = list.length > 0;
    const isTrait = state.audiences.get(state.selected)?.audience.type === "trait";
    $("audience-changes-title").textContent = isTrait ? "New values, live" : "Entered and exited, live";
    $("audience-changes-note").textContent = isTrait
      ? "Each new value Engage writes (an identify), newest first, as the page's stream brings them (since it opened, and the 50 events before)."
      : "Each Audience Entered / Exited Engage writes, newest first, as the page's stream brings them (since it opened, and the 50 events before).";
  }

  function openChange(seq) {
    const row = $("audience-changes").querySelector(`tr[data-seq="${seq}"]`);
    if (debug.openEvent(seq) || !row) return;
    row.title = "No longer in the Live tab's rows (paused, or dropped as older than its 500)";
  }

  // ---- the chart -------------------------------------------------------------------------------

  const BOX = { width: 560, height: 180, left: 40, right: 14, top: 14, bottom: 24 };
  const MIN_SPAN_MS = 10_000;
  const X_LABELS = 4;

  function svg(tag, attributes = {}, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    for (const child of children) node.append(child);
    return node;
  }

  /** Ticks 0, step, 2·step … ≥ max, step a whole 1, 2 or 5 × 10ⁿ (sizes are counts). */
  function sizeTicks(max) {
    if (max <= 0) return [0, 1];
    const rough = max / 4;
    const magnitude = 10 ** Math.floor(Math.log10(rough));
    const step = Math.max(1, [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= rough));
    const ticks = [];
    for (let tick = 0; tick < max + step; tick += step) ticks.push(tick);
    return ticks.slice(0, ticks.findIndex((tick) => tick >= max) + 1);
  }

  /** A time-axis label: seconds over 10 minutes or less, a date over more than 2 days. */
  function timeLabel(ms, span) {
    const at = new Date(ms);
    const clock = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    if (span <= 600_000) clock.second = "2-digit";
    const time = at.toLocaleTimeString([], clock);
    if (span <= 2 * 86_400_000) return time;
    return `${at.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
  }

  /**
   * An SVG step chart of `points` ([[iso time, size], …], oldest first), run on to `nowMs` at
   * `current` (the size now). Looks the same whether it has no point, one or a thousand: the
   * time axis spans at least 10 s, the size axis at least 0–1.
   */
  function sizeChart(points, nowMs, current) {
    const data = points
      .map(([time, size]) => ({ t: Date.parse(time), size: Number(size) }))
      .filter((p) => !Number.isNaN(p.t) && Number.isFinite(p.size));
    const end = Math.max(nowMs ?? Date.now(), data.length ? data[data.length - 1].t : 0);
    const start = Math.min(data.length ? data[0].t : end, end - MIN_SPAN_MS);
    const span = end - start;
    const ticks = sizeTicks(Math.max(current, ...data.map((p) => p.size)));
    const top = ticks[ticks.length - 1];
    const { width, height, left, right, top: pad, bottom } = BOX;
    const x = (t) => left + ((t - start) / span) * (width - left - right);
    const y = (size) => height - bottom - (size / top) * (height - bottom - pad);
    const round = (v) => Math.round(v * 10) / 10;

    const chart = svg("svg", {
      class: "chart",
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-label": `size over time, ${current} now`,
      "data-testid": "size-chart",
    });
    for (const tick of ticks) {
      chart.append(
        svg("line", { class: tick ? "grid" : "axis", x1: left, x2: width - right, y1: round(y(tick)), y2: round(y(tick)) }),
        svg("text", { class: "y-label", x: left - 6, y: round(y(tick)) + 3.5, "text-anchor": "end" }, String(tick)),
      );
    }
    chart.append(svg("line", { class: "axis", x1: left, x2: left, y1: pad, y2: height - bottom }));
    for (let i = 0; i < X_LABELS; i += 1) {
      const t = start + (span * i) / (X_LABELS - 1);
      const anchor = i === 0 ? "start" : i === X_LABELS - 1 ? "end" : "middle";
      chart.append(
        svg("line", { class: "axis", x1: round(x(t)), x2: round(x(t)), y1: height - bottom, y2: height - bottom + 4 }),
        svg("text", { class: "x-label", x: round(x(t)), y: height - 6, "text-anchor": anchor }, timeLabel(t, span)),
      );
    }

    if (data.length) {
      // Step after: each size holds until the next change, the last until now, then the size now.
      let line = `M${round(x(data[0].t))},${round(y(data[0].size))}`;
      for (const p of data.slice(1)) line += `H${round(x(p.t))}V${round(y(p.size))}`;
      line += `H${round(x(end))}V${round(y(current))}`;
      const base = round(y(0));
      chart.append(
        svg("path", { class: "area", d: `${line}V${base}H${round(x(data[0].t))}Z` }),
        svg("path", { class: "line", d: line, "data-testid": "chart-line" }),
      );
      const radius = data.length <= 60 ? 3 : data.length <= 300 ? 2 : 1.2;
      for (const p of data) {
        chart.append(
          svg(
            "circle",
            { class: "point", cx: round(x(p.t)), cy: round(y(p.size)), r: radius, "data-testid": "chart-point", "data-size": p.size },
            svg("title", {}, `${new Date(p.t).toLocaleString()}: ${p.size}`),
          ),
        );
      }
    }
    const cy = y(current);
    chart.append(
      svg("circle", { class: "current", cx: round(x(end)), cy: round(cy), r: 4 }, svg("title", {}, `now: ${current}`)),
      // Above the marker, or below it when the marker is at the top.
      svg(
        "text",
        { class: "current-label", x: round(x(end)) - 7, y: round(cy < pad + 14 ? cy + 15 : cy - 8), "text-anchor": "end", "data-testid": "chart-current" },
        String(current),
      ),
    );
    return chart;
  }

  // ---- wiring ----------------------------------------------------------------------------------

  function clear() {
    state.audiences.clear();
    state.changes.clear();
    state.seen.clear();
    state.now = null;
    $("audience-rows").replaceChildren();
    $("audiences-empty").hidden = false;
    setStatus("");
    select(null);
  }

  debug.on("session", (session) => debug.pollWhileShown(session, REFRESH_MS, () => state.shown, refresh));
  debug.on("event", receive);
  debug.on("signout", clear);
  debug.on("tab", (name) => {
    state.shown = name === "audiences";
    const session = debug.session();
    if (state.shown && session) refresh(session);
  });
  debug.onRowActivate($("audience-rows"), select, "key", String);
  debug.onRowActivate($("audience-changes"), openChange, "seq");

  // The chart alone, for the page's tests (drawn with 1 and with 1,000 points).
  window.tributaryAudiences = Object.freeze({ sizeChart });
})();
