//! `/events`: the tally as Server-Sent Events.
//!
//! Each stream is a view of the poller's `watch` channel: it sends the
//! current tally at once, then the latest one after each change. Streams
//! never touch the database, and a client too slow to keep up skips straight
//! to the newest tally instead of queueing the ones it missed.

use std::convert::Infallible;
use std::future::ready;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio_stream::wrappers::WatchStream;

use crate::metrics::ClientGuard;
use crate::routes::AppState;
use crate::snapshot::Snapshot;

/// The SSE event name; the page's script listens for it.
pub const TALLY_EVENT: &str = "tally";

/// How often an idle stream sends a comment. Proxies and load balancers drop
/// connections that stay silent (often after 30–60 s), and a write is how
/// the server notices a client that went away without closing.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

type EventStream = Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>;

/// `GET /events`: the current tally at once, then one `tally` event per
/// change, until the client leaves or the server stops. Beyond
/// `RESULT_MAX_STREAMS` open streams: 503, and the browser's EventSource
/// tries again after `retry` (another replica, or later).
#[tracing::instrument(skip_all)]
pub async fn events(State(state): State<AppState>) -> Response {
    let Ok(permit) = state.streams.clone().try_acquire_owned() else {
        state.metrics.sse_refused.inc();
        tracing::debug!("SSE client refused: too many streams");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5"), (header::CACHE_CONTROL, "no-store")],
            "This result server has as many live viewers as it can serve. Reload in a few seconds.\n",
        )
            .into_response();
    };
    tracing::debug!("SSE client connected");
    let updates = WatchStream::new(state.tally.clone())
        // Before the first read there is nothing to send; keep-alives flow
        // and the first tally goes out as soon as it exists.
        .filter_map(|snapshot| ready(snapshot.map(|s| Ok(tally_event(&s)))))
        // A stream would otherwise never end, and graceful shutdown waits
        // for every open response: end them all when the server stops, and
        // let EventSource reconnect to another replica.
        .take_until(state.shutdown.clone().wait());
    let stream = Counted {
        inner: Box::pin(updates) as EventStream,
        _client: ClientGuard::new(&state.metrics.sse_clients),
        _permit: permit,
    };
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// One `tally` event carrying the same JSON as `/api/results`. Building it
/// copies the shared, already serialized JSON; nothing is serialized again.
fn tally_event(snapshot: &Snapshot) -> Event {
    Event::default().event(TALLY_EVENT).data(&*snapshot.json)
}

/// A stream that counts as a connected client for as long as it exists.
/// axum drops the response body when the client disconnects or the stream
/// ends, which drops the guard and lowers the gauge.
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    _client: ClientGuard,
    _permit: OwnedSemaphorePermit,
}

impl<S: Stream + Unpin> Stream for Counted<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.get_mut().inner.poll_next_unpin(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}
