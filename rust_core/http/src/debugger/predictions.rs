//! The debugger's Predictions tab reads the records the server keeps for each prediction
//! (`Engine::prediction_records_where`; `cdp_server/predictions/pipeline.py` writes them):
//! - `GET /debugger/api/predictions`: every prediction's definition with the headline figures of
//!   its latest training (`KEY/report`: published or why not, the winner, the test AUC, lift in
//!   the top 10 %, calibration error), which charts it has and its latest backtest;
//! - `GET /debugger/api/predictions/{key}/report`: that report whole, as stored;
//! - `GET /debugger/api/predictions/{key}/calibration.png`, `…/gains.png`: its charts.
//!
//! The records are the server's JSON: only the fields shown are read from them, and the report
//! is passed on as it is, but for Python's non-finite numbers (`NaN`, which no JSON reader
//! takes), which become null. Models and scored snapshots are never read here.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};
use tributary_engine::event_json::iso8601_ms;
use tributary_engine::{time, Engine, EngineError};

use super::{blocking_json, engine_error, error, Debugger};

/// The records of one prediction the list reads (the others it only notes, or skips).
const DEFINITION: &str = "definition";
const REPORT: &str = "report";
const BACKTEST: &str = "backtest/";
const CHART: &str = "chart/";

/// `KEY/definition`: the fields the page shows (`definitions.Definition`).
#[derive(Deserialize)]
struct Definition {
    key: String,
    #[serde(default)]
    goals: Vec<String>,
    #[serde(default)]
    horizon_days: i64,
    #[serde(default)]
    churn: bool,
    #[serde(default)]
    ltv: bool,
    #[serde(default)]
    population: Option<String>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    trained_ms: i64,
    #[serde(default)]
    scored_ms: i64,
    #[serde(default)]
    version: i64,
}

/// `KEY/report`: its headline figures.
#[derive(Deserialize)]
struct Report {
    #[serde(default)]
    published: bool,
    #[serde(default)]
    reason: String,
    /// Set when published: the version it became.
    version: Option<i64>,
    at_ms: Option<i64>,
    winner: Option<String>,
    calibration: Option<Calibration>,
    /// The published (calibrated) winner on the test cutoff; a lifetime value's has no AUC.
    test: Option<TestMetrics>,
    /// How well the scores rank those who reached the goal at the test cutoff (any kind).
    test_auc: Option<f64>,
}

#[derive(Deserialize)]
struct Calibration {
    method: Option<String>,
}

#[derive(Deserialize)]
struct TestMetrics {
    auc: Option<f64>,
    lift_at_10: Option<f64>,
    ece: Option<f64>,
}

/// `KEY/backtest/NNNNNN`, whole.
#[derive(Deserialize)]
struct Backtest {
    version: i64,
    scored_ms: i64,
    #[serde(default)]
    rows: u64,
    realized_auc: Option<f64>,
    validation_auc: Option<f64>,
    #[serde(default)]
    flagged: bool,
}

/// Python's `json` writes non-finite floats as `NaN`, `Infinity` and `-Infinity`, which JSON
/// does not have (serde_json and a browser's `JSON.parse` refuse them): each becomes `null`.
/// Strings are left alone.
fn finite_json(raw: &[u8]) -> Cow<'_, [u8]> {
    let mentions = |word: &[u8]| raw.windows(word.len()).any(|w| w == word);
    if !mentions(b"NaN") && !mentions(b"Infinity") {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let (mut at, mut in_string) = (0, false);
    while at < raw.len() {
        let byte = raw[at];
        if in_string {
            out.push(byte);
            if byte == b'\\' {
                // The escaped character, whatever it is, is the string's.
                if let Some(&next) = raw.get(at + 1) {
                    out.push(next);
                    at += 1;
                }
            } else if byte == b'"' {
                in_string = false;
            }
            at += 1;
            continue;
        }
        let rest = &raw[at..];
        if let Some(word) = [&b"-Infinity"[..], b"Infinity", b"NaN"]
            .into_iter()
            .find(|word| rest.starts_with(word))
        {
            out.extend_from_slice(b"null");
            at += word.len();
            continue;
        }
        in_string = byte == b'"';
        out.push(byte);
        at += 1;
    }
    Cow::Owned(out)
}

fn parse<'a, T: Deserialize<'a>>(name: &str, raw: &'a [u8]) -> Result<T, EngineError> {
    serde_json::from_slice(raw)
        .map_err(|e| EngineError::Storage(format!("prediction record {name} did not parse: {e}")))
}

/// A time in ms as ISO-8601, `null` for 0 (not yet).
fn time_json(ms: i64) -> Value {
    if ms > 0 {
        Value::String(iso8601_ms(ms))
    } else {
        Value::Null
    }
}

/// What the list knows of one prediction: its definition, latest report, charts and backtests.
#[derive(Default)]
struct Records {
    definition: Option<Vec<u8>>,
    report: Option<Vec<u8>>,
    charts: Vec<String>,
    /// (name, bytes) in version order.
    backtests: Vec<(String, Vec<u8>)>,
}

/// Every prediction's records the list shows, by key. The charts are noted, never copied.
fn records(engine: &Engine) -> Result<BTreeMap<String, Records>, EngineError> {
    let mut charts: Vec<String> = Vec::new();
    let found = engine.prediction_records_where("", |name| {
        let Some((_, what)) = name.split_once('/') else {
            return false;
        };
        if what.starts_with(CHART) {
            charts.push(name.to_owned());
            return false;
        }
        what == DEFINITION || what == REPORT || what.starts_with(BACKTEST)
    })?;
    let mut by_key: BTreeMap<String, Records> = BTreeMap::new();
    for name in charts {
        if let Some((key, what)) = name.split_once('/') {
            let chart = what[CHART.len()..].to_owned();
            by_key.entry(key.to_owned()).or_default().charts.push(chart);
        }
    }
    for (name, bytes) in found {
        let Some((key, what)) = name.split_once('/') else {
            continue;
        };
        let entry = by_key.entry(key.to_owned()).or_default();
        match what {
            DEFINITION => entry.definition = Some(bytes),
            REPORT => entry.report = Some(bytes),
            _ => entry.backtests.push((name.clone(), bytes)),
        }
    }
    Ok(by_key)
}

/// One prediction as the list shows it.
fn summary(key: &str, records: &Records) -> Result<Option<Value>, EngineError> {
    let Some(raw) = &records.definition else {
        // Records left without a definition (a deletion halfway): not a prediction.
        return Ok(None);
    };
    let raw = finite_json(raw);
    let definition: Definition = parse(&format!("{key}/{DEFINITION}"), &raw)?;
    let report = match &records.report {
        None => Value::Null,
        Some(raw) => {
            let raw = finite_json(raw);
            let report: Report = parse(&format!("{key}/{REPORT}"), &raw)?;
            let test = report.test.as_ref();
            json!({
                "published": report.published,
                "reason": report.reason,
                "version": report.version,
                "trained_at": time_json(report.at_ms.unwrap_or(0)),
                "winner": report.winner,
                "calibration": report.calibration.and_then(|c| c.method),
                "test_auc": report.test_auc.or_else(|| test.and_then(|t| t.auc)),
                "lift_at_10": test.and_then(|t| t.lift_at_10),
                "ece": test.and_then(|t| t.ece),
            })
        }
    };
    let backtest = match records.backtests.last() {
        None => Value::Null,
        Some((name, raw)) => {
            let raw = finite_json(raw);
            let backtest: Backtest = parse(name, &raw)?;
            json!({
                "version": backtest.version,
                "scored_at": time_json(backtest.scored_ms),
                "rows": backtest.rows,
                "realized_auc": backtest.realized_auc,
                "validation_auc": backtest.validation_auc,
                "flagged": backtest.flagged,
            })
        }
    };
    let kind = if definition.ltv {
        "ltv"
    } else if definition.churn {
        "churn"
    } else {
        "propensity"
    };
    let has = |chart: &str| records.charts.iter().any(|c| c == chart);
    Ok(Some(json!({
        "key": definition.key,
        "goals": definition.goals,
        "horizon_days": definition.horizon_days,
        "kind": kind,
        "population": definition.population,
        "state": definition.state,
        "reason": definition.reason,
        "version": definition.version,
        "trained_at": time_json(definition.trained_ms),
        "scored_at": time_json(definition.scored_ms),
        "report": report,
        "charts": {"calibration": has("calibration"), "gains": has("gains")},
        "backtest": backtest,
        "backtests": records.backtests.len(),
    })))
}

pub(super) async fn predictions(State(debugger): State<Arc<Debugger>>) -> Response {
    blocking_json(&debugger, |debugger| {
        let mut predictions = Vec::new();
        for (key, records) in records(&debugger.engine)? {
            predictions.extend(summary(&key, &records)?);
        }
        Ok(json!({"predictions": predictions, "now": iso8601_ms(time::now_ms())}))
    })
    .await
}

/// A prediction's key as the server allows them (`definitions.KEY`): anything else names none.
fn is_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && key.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The record `KEY/name` of an existing prediction: NotFound for no such prediction, and for
/// one without that record (not trained yet; a lifetime value has no calibration chart).
fn record(engine: &Engine, key: &str, name: &str, what: &str) -> Result<Vec<u8>, EngineError> {
    let unknown = || EngineError::NotFound(format!("no prediction {key:?}"));
    if !is_key(key) {
        return Err(unknown());
    }
    let definition = format!("{key}/{DEFINITION}");
    let wanted = format!("{key}/{name}");
    let found = engine.prediction_records_where(&format!("{key}/"), |k| k == definition || k == wanted)?;
    if !found.iter().any(|(k, _)| *k == definition) {
        return Err(unknown());
    }
    found
        .into_iter()
        .find_map(|(k, bytes)| (k == wanted).then_some(bytes))
        .ok_or_else(|| EngineError::NotFound(format!("prediction {key:?} has no {what} yet")))
}

/// Reads one record on a blocking thread and answers its bytes as `content_type`.
async fn record_answer(
    debugger: Arc<Debugger>,
    key: String,
    name: &'static str,
    what: &'static str,
    content_type: &'static str,
) -> Response {
    let read = tokio::task::spawn_blocking(move || record(&debugger.engine, &key, name, what)).await;
    match read {
        Ok(Ok(bytes)) => {
            let body = if content_type == JSON {
                finite_json(&bytes).into_owned()
            } else {
                bytes
            };
            (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                body,
            )
                .into_response()
        }
        Ok(Err(err)) => engine_error(err).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "the read failed").into_response(),
    }
}

const JSON: &str = "application/json";
const PNG: &str = "image/png";

pub(super) async fn report(State(debugger): State<Arc<Debugger>>, Path(key): Path<String>) -> Response {
    record_answer(debugger, key, REPORT, "report", JSON).await
}

pub(super) async fn calibration_chart(State(debugger): State<Arc<Debugger>>, Path(key): Path<String>) -> Response {
    record_answer(debugger, key, "chart/calibration", "calibration chart", PNG).await
}

pub(super) async fn gains_chart(State(debugger): State<Arc<Debugger>>, Path(key): Path<String>) -> Response {
    record_answer(debugger, key, "chart/gains", "gains chart", PNG).await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    use tributary_engine::EngineConfig;

    use super::*;

    #[test]
    fn pythons_non_finite_numbers_become_null_and_strings_stay() {
        let fixed = |raw: &str| String::from_utf8(finite_json(raw.as_bytes()).into_owned()).unwrap();
        assert_eq!(
            fixed(r#"{"auc": NaN, "a": [Infinity, -Infinity, -1.5e-3]}"#),
            r#"{"auc": null, "a": [null, null, -1.5e-3]}"#
        );
        // In a string (escaped quotes and backslashes included), NaN is text.
        let text = r#"{"reason": "NaN \"Infinity\" \\", "x": NaN}"#;
        assert_eq!(fixed(text), r#"{"reason": "NaN \"Infinity\" \\", "x": null}"#);
        assert!(matches!(finite_json(br#"{"auc": 0.8}"#), Cow::Borrowed(_)));
    }

    #[test]
    fn keys_are_the_servers_keys() {
        assert!(is_key("purchase_90d") && is_key("a"));
        for bad in ["", "Buy", "9lives", "a/definition", "a-b", "..", &"a".repeat(65)] {
            assert!(!is_key(bad), "{bad:?}");
        }
    }

    const PNG_BYTES: &[u8] = b"\x89PNG\r\n\x1a\nnot really";

    fn definition(key: &str, state: &str, reason: &str, extra: Value) -> Vec<u8> {
        let mut definition = json!({
            "key": key, "goals": ["event('Order Completed')"], "horizon_days": 90, "churn": false,
            "ltv": false, "population": null, "trait_features": [], "created_ms": 1, "seed": 0,
            "state": state, "reason": reason, "trained_ms": 0, "scored_ms": 0, "version": 0, "extra": {},
        });
        for (field, value) in extra.as_object().unwrap() {
            definition[field] = value.clone();
        }
        serde_json::to_vec(&definition).unwrap()
    }

    /// Calls the debugger's router (no access layer: `access::ROUTES` guards it in the server).
    fn call(engine: &Arc<Engine>, path: &str) -> (StatusCode, String, Vec<u8>) {
        let router = super::super::router(Arc::new(Debugger::new(Arc::clone(engine))));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let request = Request::get(path).body(Body::empty()).unwrap();
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let kind = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
            (status, kind, body.to_vec())
        })
    }

    fn body_json(answer: &(StatusCode, String, Vec<u8>)) -> Value {
        serde_json::from_slice(&answer.2).unwrap()
    }

    #[test]
    fn the_routes_list_predictions_and_serve_their_reports_and_charts() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(EngineConfig::new(dir.path())).unwrap());
        // 2026-03-01T10:00:00Z and a day later.
        let (trained, scored) = (1_772_359_200_000_i64, 1_772_445_600_000_i64);
        let report = format!(
            r#"{{"at_ms": {trained}, "published": true, "version": 2, "winner": "lightgbm",
                "calibration": {{"method": "isotonic", "rows": 900}}, "test_auc": 0.84,
                "test": {{"auc": 0.84, "lift_at_10": 4.5, "ece": 0.012, "log_loss": NaN}},
                "candidates": {{"lightgbm": {{}}, "logistic": {{}}}}, "reason": "NaN is a word"}}"#
        );
        let backtest = |version: i64, flagged: bool| {
            json!({"version": version, "scored_ms": scored, "rows": 10, "realized_auc": 0.7,
                   "validation_auc": 0.8, "flagged": flagged})
            .to_string()
            .into_bytes()
        };
        let ready = json!({"state": "ready", "version": 2, "trained_ms": trained, "scored_ms": scored});
        let put = |key: &str, value: Vec<u8>| (key.to_owned(), Some(value));
        engine
            .put_prediction_records(&[
                put("buy/definition", definition("buy", "ready", "", ready)),
                put("buy/report", report.into_bytes()),
                put("buy/chart/calibration", PNG_BYTES.to_vec()),
                put("buy/chart/gains", PNG_BYTES.to_vec()),
                put("buy/backtest/000001", backtest(1, false)),
                put("buy/backtest/000002", backtest(2, true)),
                // Not JSON: the list must not read them.
                put("buy/model", b"\x00model".to_vec()),
                put("buy/snapshot/000002", b"PK\x03\x04".to_vec()),
                put(
                    "lapse/definition",
                    definition(
                        "lapse",
                        "not_ready",
                        "needs 3x the horizon of history",
                        json!({"churn": true}),
                    ),
                ),
                put(
                    "lapse/report",
                    br#"{"at_ms": 5, "published": false, "reason": "needs 3x the horizon of history"}"#.to_vec(),
                ),
                put("orphan/report", b"{}".to_vec()),
            ])
            .unwrap();

        let listed = call(&engine, "/debugger/api/predictions");
        assert_eq!((listed.0, listed.1.as_str()), (StatusCode::OK, "application/json"));
        let listed = body_json(&listed);
        let predictions = listed["predictions"].as_array().unwrap();
        assert_eq!(predictions.len(), 2, "the orphan report is no prediction: {listed}");
        assert_eq!(
            predictions[0],
            json!({
                "key": "buy", "goals": ["event('Order Completed')"], "horizon_days": 90,
                "kind": "propensity", "population": null, "state": "ready", "reason": "", "version": 2,
                "trained_at": "2026-03-01T10:00:00Z", "scored_at": "2026-03-02T10:00:00Z",
                "report": {
                    "published": true, "reason": "NaN is a word", "version": 2,
                    "trained_at": "2026-03-01T10:00:00Z", "winner": "lightgbm", "calibration": "isotonic",
                    "test_auc": 0.84, "lift_at_10": 4.5, "ece": 0.012,
                },
                "charts": {"calibration": true, "gains": true},
                "backtest": {
                    "version": 2, "scored_at": "2026-03-02T10:00:00Z", "rows": 10, "realized_auc": 0.7,
                    "validation_auc": 0.8, "flagged": true,
                },
                "backtests": 2,
            })
        );
        let lapse = &predictions[1];
        assert_eq!(
            (&lapse["key"], &lapse["kind"], &lapse["state"], &lapse["trained_at"]),
            (&json!("lapse"), &json!("churn"), &json!("not_ready"), &Value::Null)
        );
        assert_eq!(lapse["report"]["published"], false);
        assert_eq!(lapse["report"]["test_auc"], Value::Null);
        assert_eq!(lapse["charts"], json!({"calibration": false, "gains": false}));
        assert_eq!(lapse["backtest"], Value::Null);

        // The report whole, its NaN a null (a browser's JSON.parse takes it).
        let report = call(&engine, "/debugger/api/predictions/buy/report");
        assert_eq!((report.0, report.1.as_str()), (StatusCode::OK, "application/json"));
        let report = body_json(&report);
        assert_eq!(report["test"]["log_loss"], Value::Null);
        assert_eq!(report["candidates"], json!({"lightgbm": {}, "logistic": {}}));
        assert_eq!(report["reason"], "NaN is a word");

        for chart in ["calibration", "gains"] {
            let png = call(&engine, &format!("/debugger/api/predictions/buy/{chart}.png"));
            assert_eq!(
                (png.0, png.1.as_str(), png.2.as_slice()),
                (StatusCode::OK, "image/png", PNG_BYTES)
            );
        }
        // A prediction without the record, and no prediction at all: 404, saying which.
        for (path, says) in [
            ("/debugger/api/predictions/lapse/gains.png", "has no gains chart yet"),
            ("/debugger/api/predictions/nobody/report", "no prediction \"nobody\""),
            ("/debugger/api/predictions/orphan/report", "no prediction \"orphan\""),
            ("/debugger/api/predictions/Buy/report", "no prediction \"Buy\""),
        ] {
            let answer = call(&engine, path);
            assert_eq!(answer.0, StatusCode::NOT_FOUND, "{path}");
            let message = body_json(&answer)["error"]["message"].as_str().unwrap().to_owned();
            assert!(message.contains(says), "{path}: {message}");
        }
        // Deleted, they are gone from the list.
        for key in ["buy/", "lapse/", "orphan/"] {
            engine.delete_prediction_records(key).unwrap();
        }
        assert_eq!(
            body_json(&call(&engine, "/debugger/api/predictions"))["predictions"],
            json!([])
        );
    }
}
