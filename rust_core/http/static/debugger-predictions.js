// The debugger's Predictions tab: every prediction with the headline figures of its latest
// training (GET /debugger/api/predictions, read every 3 s while the tab is shown) and, for the
// one selected, its quality report (GET /debugger/api/predictions/{key}/report): the calibration
// and gains charts (…/calibration.png, …/gains.png), both candidate models' metrics side by side
// and the conversions by decile cohort, all on the test cutoff.
// - The report and the charts are read when a prediction is selected and again only when its
//   latest training changes (not on every refresh of the list).
// - An <img> cannot send the admin token: the charts are fetched here and shown as data: URLs
//   (the page's CSP allows images from data:).
// Like debugger.js, data only reaches the page as text nodes (keys, goals and reasons are the
// user's text): never innerHTML.
"use strict";

(() => {
  const debug = window.tributaryDebugger; // debugger.js, loaded first
  const { el } = debug;
  const REFRESH_MS = 3000;
  const CHARTS = ["calibration", "gains"];
  const KINDS = { propensity: "likelihood", churn: "churn", ltv: "lifetime value" };
  const SHORT_KINDS = { ...KINDS, ltv: "LTV" }; // the list's column
  const STATES = { ready: "ready", not_ready: "not ready", new: "not trained yet" };

  const $ = (id) => document.getElementById(id);

  const state = {
    rows: new Map(), // key → {prediction, row}, in the server's order (by key)
    selected: null, // a key
    // What the detail's report and charts were read for: {key, stamp}; a new one supersedes.
    detail: null,
    shown: false,
    loading: false,
  };

  // ---- formats -------------------------------------------------------------------------------

  const DASH = "—";
  const known = (x) => typeof x === "number" && Number.isFinite(x);
  const fixed = (digits) => (x) => (known(x) ? x.toFixed(digits) : DASH);
  const times = (x) => (known(x) ? `${x.toFixed(2)}×` : DASH);
  const percent = (x) => (known(x) ? `${(100 * x).toFixed(1)} %` : DASH);
  const count = (x) => (known(x) ? x.toLocaleString("en-US") : DASH);
  /** An ISO time as "YYYY-MM-DD HH:MM UTC" (cutoffs are UTC day ends; `--at` times are UTC). */
  const utc = (iso) => (iso ? `${String(iso).slice(0, 16).replace("T", " ")} UTC` : DASH);
  /** A time in ms as its UTC date. */
  const day = (ms) => (known(ms) ? new Date(ms).toISOString().slice(0, 10) : DASH);

  const goalText = (prediction) => (prediction.goals ?? []).join(" or ");
  const kindText = (prediction) => KINDS[prediction.kind] ?? prediction.kind ?? "";
  const stateText = (prediction) => STATES[prediction.state] ?? prediction.state ?? "";

  function backtestText(backtest) {
    if (!backtest) return DASH;
    const realized = fixed(3)(backtest.realized_auc);
    return backtest.flagged ? `flagged · ${realized}` : `ok · ${realized}`;
  }

  // ---- the list ------------------------------------------------------------------------------

  const setStatus = (text, kind = "") => debug.showStatus("predictions-status", text, kind);

  async function refresh(session) {
    if (state.loading) return; // the answer on its way is as fresh
    state.loading = true;
    try {
      const answer = await debug.fetchJson(session, "/predictions");
      if (debug.session() !== session) return;
      renderList(answer, session);
      setStatus(`updated ${debug.formatTime(answer.now)}`, "ok");
    } catch (error) {
      if (debug.signedOutBy(error) || session.abort.signal.aborted) return;
      setStatus(`could not read the predictions: ${error.message}`, "bad");
    } finally {
      state.loading = false;
    }
  }

  /** Updates the rows in place (a row keeps its focus and selection across refreshes). */
  function renderList(answer, session) {
    const tbody = $("prediction-rows");
    const fresh = new Map();
    for (const prediction of answer.predictions ?? []) {
      const row =
        state.rows.get(prediction.key)?.row ??
        el("tr", { tabindex: "0", "data-testid": "prediction-row", dataset: { key: prediction.key } });
      fillRow(row, prediction);
      row.classList.toggle("selected", prediction.key === state.selected);
      fresh.set(prediction.key, { prediction, row });
    }
    for (const [key, { row }] of state.rows) if (!fresh.has(key)) row.remove();
    state.rows = fresh;
    let next = tbody.firstElementChild;
    for (const { row } of fresh.values()) {
      if (row === next) next = next.nextElementSibling;
      else tbody.insertBefore(row, next);
    }
    $("predictions-empty").hidden = fresh.size > 0;
    if (state.selected === null) return;
    if (fresh.has(state.selected)) renderDetail(session);
    else select(null); // deleted
  }

  function fillRow(row, prediction) {
    const report = prediction.report ?? {};
    row.dataset.state = prediction.state ?? "";
    row.dataset.version = String(prediction.version ?? 0);
    const status = el(
      "td",
      { class: "reason" },
      el("span", { class: `state ${prediction.state}`, "data-testid": "prediction-row-state" }, stateText(prediction)),
    );
    if (prediction.reason) {
      status.append(el("div", { class: "muted why", "data-testid": "prediction-row-reason" }, prediction.reason));
    }
    const backtest = prediction.backtest;
    row.replaceChildren(
      el("td", {}, el("code", {}, prediction.key)),
      el("td", { class: "goal" }, el("code", {}, goalText(prediction))),
      el("td", { class: "num" }, `${prediction.horizon_days} d`),
      el("td", {}, el("span", { class: `badge ${prediction.kind}`, title: kindText(prediction) }, SHORT_KINDS[prediction.kind] ?? kindText(prediction))),
      status,
      el("td", { class: "num", "data-testid": "prediction-row-version" }, String(prediction.version ?? 0)),
      el("td", { class: "num", "data-testid": "prediction-row-auc" }, fixed(3)(report.test_auc)),
      el("td", { class: "num", "data-testid": "prediction-row-lift" }, times(report.lift_at_10)),
      el("td", { class: "num", "data-testid": "prediction-row-ece" }, fixed(3)(report.ece)),
      el(
        "td",
        {
          class: backtest?.flagged ? "bad" : "",
          "data-testid": "prediction-row-backtest",
          title: backtest ? `realized AUC ${fixed(3)(backtest.realized_auc)}, validation AUC ${fixed(3)(backtest.validation_auc)}` : "",
        },
        backtestText(backtest),
      ),
    );
  }

  // ---- the selected one ------------------------------------------------------------------------

  function select(key) {
    state.selected = key;
    for (const [other, { row }] of state.rows) row.classList.toggle("selected", other === key);
    $("prediction-detail-empty").hidden = key !== null;
    $("prediction-detail-body").hidden = key === null;
    if (key === null) {
      state.detail = null;
      return;
    }
    renderDetail(debug.session());
  }

  /** What the report and charts depend on: a new training (published or not) changes it. */
  const stampOf = (prediction) =>
    JSON.stringify([prediction.report?.trained_at, prediction.version, prediction.trained_at, prediction.charts]);

  function renderDetail(session) {
    const { prediction } = state.rows.get(state.selected);
    $("prediction-title").textContent = prediction.key;
    $("prediction-reason").textContent = prediction.reason ?? "";
    $("prediction-reason").hidden = !prediction.reason;
    $("prediction-goals").textContent = goalText(prediction);
    $("prediction-kind").textContent = `${kindText(prediction)} within ${prediction.horizon_days} days`;
    $("prediction-population").textContent = prediction.population ?? "everyone with the events it reads";
    $("prediction-state").textContent = `${stateText(prediction)}${prediction.version ? `, version ${prediction.version}` : ""}`;
    $("prediction-trained").textContent = utc(prediction.trained_at);
    $("prediction-scored").textContent = utc(prediction.scored_at);
    const backtest = prediction.backtest;
    $("prediction-backtest").textContent = backtest
      ? `version ${backtest.version} scored ${utc(backtest.scored_at)}: realized AUC ${fixed(3)(backtest.realized_auc)}` +
        ` against ${fixed(3)(backtest.validation_auc)} on validation, ${count(backtest.rows)} people` +
        `${backtest.flagged ? " — flagged: the future departs from what the model learned" : ""}`
      : "none yet (a model's first scores are checked once its horizon has passed)";
    $("prediction-backtest").classList.toggle("bad", Boolean(backtest?.flagged));

    const stamp = stampOf(prediction);
    if (state.detail?.key === prediction.key && state.detail.stamp === stamp) return;
    // Another prediction's report stays hidden until this one's is read.
    if (state.detail?.key !== prediction.key) $("prediction-report").hidden = true;
    const detail = { key: prediction.key, stamp };
    state.detail = detail;
    if (!prediction.report) {
      $("prediction-report").hidden = true;
      $("prediction-report-status").textContent =
        `Not trained yet: it trains in the background, or at once with "cdp predict refresh ${prediction.key}".`;
      return;
    }
    if (session) loadReport(session, prediction, detail);
  }

  const current = (detail) => state.detail === detail;
  const base = (key) => `/predictions/${encodeURIComponent(key)}`;

  async function loadReport(session, prediction, detail) {
    $("prediction-report-status").textContent = "Reading the report…";
    let report;
    try {
      report = await debug.fetchJson(session, `${base(prediction.key)}/report`);
    } catch (error) {
      if (debug.signedOutBy(error) || session.abort.signal.aborted || !current(detail)) return;
      $("prediction-report-status").textContent = `Could not read the report: ${error.message}`;
      detail.stamp = null; // read again at the next refresh
      return;
    }
    if (!current(detail)) return;
    $("prediction-report-status").textContent = "";
    renderReport(report);
    $("prediction-report").hidden = false;
    for (const chart of CHARTS) loadChart(session, prediction, chart, detail);
  }

  const toDataUrl = (blob) =>
    new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });

  async function loadChart(session, prediction, chart, detail) {
    const image = $(`prediction-chart-${chart}`);
    const note = $(`prediction-chart-${chart}-note`);
    image.hidden = true;
    image.removeAttribute("src");
    if (!prediction.charts?.[chart]) {
      note.textContent =
        chart === "calibration" && prediction.kind === "ltv"
          ? "No calibration chart: a lifetime value is an amount, not a probability."
          : `No ${chart} chart: no model was fitted yet.`;
      return;
    }
    note.textContent = "loading…";
    try {
      const url = await toDataUrl(await debug.fetchBlob(session, `${base(prediction.key)}/${chart}.png`));
      if (!current(detail)) return;
      image.src = url;
      image.hidden = false;
      note.textContent = "";
    } catch (error) {
      if (debug.signedOutBy(error) || session.abort.signal.aborted || !current(detail)) return;
      note.textContent = `Could not load the chart: ${error.message}`;
      detail.stamp = null; // read again at the next refresh
    }
  }

  // ---- the report ------------------------------------------------------------------------------

  function renderReport(report) {
    const regression = report.kind === "regression";
    const outcome = $("prediction-outcome");
    outcome.textContent = report.published
      ? `published as version ${report.version}, trained at ${utc(known(report.at_ms) ? new Date(report.at_ms).toISOString() : "")}`
      : `not published: ${report.reason ?? ""}`;
    outcome.className = report.published ? "" : "bad";

    const cutoffs = report.cutoffs ?? {};
    const training = (cutoffs.train ?? []).map(day).join(", ") || DASH;
    const history = known(report.history_days) ? `; ${report.history_days} days of history` : "";
    $("prediction-cutoffs").textContent =
      `test ${day(cutoffs.test)} · validation ${day(cutoffs.validation)} · training ${training}${history}`;

    const examples = report.training_examples;
    const reached = regression ? "had revenue" : "reached the goal";
    $("prediction-examples").textContent = examples
      ? `${count(examples.rows)} rows at the training cutoffs: ${count(examples.positives)} ${reached}, ${count(examples.negatives)} did not`
      : DASH;

    const candidates = report.candidates ?? {};
    $("prediction-winner").textContent = report.winner
      ? `${report.winner}, the better on the validation cutoff by ${report.selection_metric === "rmse" ? "RMSE" : "AUC"}`
      : DASH;

    const calibration = report.calibration;
    let calibrationText = regression ? "none: a lifetime value is an amount, not a probability" : DASH;
    if (calibration) {
      calibrationText = `${calibration.method}, fitted on ${count(calibration.rows)} validation rows`;
      if (known(calibration.test_outside_range)) {
        calibrationText += `; ${percent(calibration.test_outside_range)} of the test rows outside its range`;
      }
      if (calibration.chosen_because) calibrationText += ` (${calibration.chosen_because})`;
    }
    $("prediction-calibration").textContent = calibrationText;
    const refused = report.refused_columns ?? [];
    $("prediction-refused").textContent = refused.length ? refused.join(", ") : "none";

    renderCandidates(report, candidates, regression);
    renderCohorts(report.test_cohorts, regression);
  }

  // [field, label, format]
  const CLASSIFICATION = [
    ["auc", "AUC", fixed(3)],
    ["log_loss", "Log loss", fixed(3)],
    ["brier", "Brier score", fixed(4)],
    ["ece", "Calibration error", fixed(3)],
    ["lift_at_5", "Lift @5 %", times],
    ["lift_at_10", "Lift @10 %", times],
    ["lift_at_20", "Lift @20 %", times],
    ["precision_at_5", "Precision @5 %", percent],
    ["precision_at_10", "Precision @10 %", percent],
    ["precision_at_20", "Precision @20 %", percent],
    ["base_rate", "Base rate", percent],
    ["positives", "Reached the goal", count],
    ["rows", "Rows", count],
  ];
  const REGRESSION = [
    ["rmse", "RMSE", fixed(2)],
    ["mae", "MAE", fixed(2)],
    ["r2", "R²", fixed(3)],
    ["spearman", "Spearman", fixed(3)],
    ["value_share_top_10", "Value in the top 10 %", percent],
    ["value_share_top_20", "Value in the top 20 %", percent],
    ["mean", "Mean value", fixed(2)],
    ["rows", "Rows", count],
  ];

  /** Metrics by row, the candidates by column (validation, test), then the published model on test. */
  function renderCandidates(report, candidates, regression) {
    const names = Object.keys(candidates);
    const head = $("prediction-candidates-head");
    const body = $("prediction-candidates-body");
    const note = $("prediction-candidates-note");
    if (!names.length) {
      head.replaceChildren();
      body.replaceChildren();
      note.textContent = "No model was fitted at this training.";
      return;
    }
    const published = report.test && !regression;
    const top = el("tr", {}, el("th", {}, ""));
    for (const name of names) {
      const title = el("th", { colspan: "2", class: "num", "data-testid": "prediction-candidate", dataset: { name } }, name);
      if (name === report.winner) title.append(el("span", { class: "tag" }, "winner"));
      top.append(title);
    }
    if (published) top.append(el("th", { class: "num", title: "The winner, calibrated: what is published" }, "calibrated"));
    const sub = el("tr", {}, el("th", {}, "Metric"));
    for (let i = 0; i < names.length; i += 1) {
      sub.append(el("th", { class: "num" }, "validation"), el("th", { class: "num" }, "test"));
    }
    if (published) sub.append(el("th", { class: "num" }, "test"));
    head.replaceChildren(top, sub);

    const rows = [];
    for (const [field, label, format] of regression ? REGRESSION : CLASSIFICATION) {
      const present = names.some((n) => field in (candidates[n].validation ?? {}) || field in (candidates[n].test ?? {}));
      if (!present) continue;
      const row = el("tr", { "data-testid": "prediction-metric", dataset: { metric: field } }, el("td", {}, label));
      for (const name of names) {
        const candidate = candidates[name];
        row.append(
          el("td", { class: "num" }, format(candidate.validation?.[field])),
          el("td", { class: "num" }, format(candidate.test?.[field])),
        );
      }
      if (published) row.append(el("td", { class: "num strong" }, format(report.test[field])));
      rows.push(row);
    }
    body.replaceChildren(...rows);
    note.textContent =
      "Both fitted on the training cutoffs; the better on validation wins" +
      (regression ? "." : " and is calibrated on validation. The test cutoff is touched by nothing but these measurements.");
  }

  function renderCohorts(cohorts, regression) {
    const tbody = $("prediction-cohorts");
    const note = $("prediction-cohorts-note");
    if (!cohorts?.length) {
      tbody.replaceChildren();
      note.textContent = regression
        ? "A lifetime value has no conversions by decile."
        : "None: no model was fitted at this training.";
      return;
    }
    const top = Math.max(...cohorts.map((c) => (known(c.rate) ? c.rate : 0)), 1e-9);
    tbody.replaceChildren(
      ...cohorts.map((cohort) => {
        const bar = el("span", { class: "bar" });
        bar.style.width = `${(100 * (known(cohort.rate) ? cohort.rate : 0)) / top}%`;
        return el(
          "tr",
          { "data-testid": "prediction-cohort", dataset: { decile: cohort.decile } },
          el("td", {}, String(cohort.decile)),
          el("td", { class: "num" }, count(cohort.rows)),
          el("td", { class: "num" }, count(cohort.positives)),
          el("td", { class: "num" }, percent(cohort.rate)),
          el("td", { class: "bar-cell" }, bar),
        );
      }),
    );
    note.textContent = "Decile 10 holds the best-scored tenth of the test rows: the rate should fall from it down.";
  }

  // ---- wiring ----------------------------------------------------------------------------------

  function clear() {
    state.rows.clear();
    $("prediction-rows").replaceChildren();
    $("predictions-empty").hidden = false;
    setStatus("");
    select(null);
  }

  debug.on("session", (session) => debug.pollWhileShown(session, REFRESH_MS, () => state.shown, refresh));
  debug.on("signout", clear);
  debug.on("tab", (name) => {
    state.shown = name === "predictions";
    const session = debug.session();
    if (state.shown && session) refresh(session);
  });
  debug.onRowActivate($("prediction-rows"), select, "key", String);
})();
