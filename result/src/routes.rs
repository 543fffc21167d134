//! The HTTP interface: the page, the JSON API, the event stream, and the
//! shared `/healthz`, `/readyz` and `/metrics`.
//!
//! Every handler answers from the last snapshot in memory. None of them
//! queries the database, so the number of viewers never reaches PostgreSQL.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use common::http::{ops_router, Readiness, Shutdown};

use crate::config::Labels;
use crate::metrics::ResultMetrics;
use crate::snapshot::TallyReceiver;
use crate::{page, sse};

/// What every handler can see. Cheap to clone: all `Arc`s and channel ends.
#[derive(Debug, Clone)]
pub struct AppState {
    pub labels: Arc<Labels>,
    /// Shown in small print, so someone comparing two phones can tell which
    /// replica served each page.
    pub hostname: Arc<str>,
    pub tally: TallyReceiver,
    pub metrics: ResultMetrics,
    /// Ends the SSE streams when the server stops.
    pub shutdown: Shutdown,
    /// One permit per open live stream (`RESULT_MAX_STREAMS`).
    pub streams: Arc<tokio::sync::Semaphore>,
}

/// A live tally must not be cached by browsers or proxies.
const NO_CACHE: &str = "no-cache";

/// The page loads nothing from elsewhere; its own inline style and script,
/// and the event stream from the same origin, are all it needs.
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; \
    script-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// Unknown paths get axum's 404, known paths with another method its 405.
pub fn router(state: AppState, readiness: Readiness) -> Router {
    let ops = ops_router(
        readiness,
        state.metrics.registry.clone(),
        state.shutdown.clone(),
    );
    Router::new()
        .route("/", get(index))
        .route("/api/results", get(api_results))
        .route("/events", get(sse::events))
        .with_state(state)
        .merge(ops)
}

/// The page with the current numbers in it. Before the first read it still
/// renders (with a "waiting" note, and it fills in by itself), but with 503
/// so that nothing mistakes it for a real result.
async fn index(State(state): State<AppState>) -> Response {
    let counts = state.tally.borrow().as_ref().map(|s| s.counts);
    let status = if counts.is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let html = page::render(&state.labels, counts, &state.hostname);
    let headers = [
        (header::CACHE_CONTROL, NO_CACHE),
        (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
    ];
    (status, headers, Html(html)).into_response()
}

/// `{"options":[{"id":"a","label":…,"votes":…},…],"total":…}`, as
/// serialized by the poller when the tally last changed.
async fn api_results(State(state): State<AppState>) -> Result<Response, ApiError> {
    let json = state
        .tally
        .borrow()
        .as_ref()
        .map(|s| Arc::clone(&s.json))
        .ok_or(ApiError::NotReady)?;
    let headers = [
        (header::CONTENT_TYPE, "application/json"),
        (header::CACHE_CONTROL, NO_CACHE),
    ];
    Ok((headers, json.to_string()).into_response())
}

/// What can go wrong for a client of the API, one status code each.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "results are not available yet: the database has not been read since this server started"
    )]
    NotReady,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
        };
        let body = Json(serde_json::json!({ "error": self.to_string() }));
        // The poller retries within a second or so; say when to come back.
        let headers = [
            (header::RETRY_AFTER, "1"),
            (header::CACHE_CONTROL, NO_CACHE),
        ];
        (status, headers, body).into_response()
    }
}
