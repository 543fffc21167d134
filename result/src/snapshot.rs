//! The tally as last read, and the JSON every reader is sent.

use std::sync::Arc;

use common::schema::Counts;
use common::Choice;
use serde::Serialize;
use tokio::sync::watch;

use crate::config::Labels;

/// What readers hold: `None` until the first successful read, then the latest
/// snapshot. A `watch` keeps only the newest value, so a slow SSE client skips
/// to the current tally instead of replaying every change it missed.
pub type TallyReceiver = watch::Receiver<Option<Snapshot>>;
pub type TallySender = watch::Sender<Option<Snapshot>>;

/// The tally at one moment, with its JSON already rendered.
///
/// The JSON is built once per change, not once per reader: `/api/results`
/// and every SSE stream share the same `Arc`, so a thousand viewers cost one
/// serialization and one copy each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub counts: Counts,
    pub json: Arc<str>,
}

impl Snapshot {
    pub fn new(labels: &Labels, counts: Counts) -> Snapshot {
        let body = Results {
            options: Choice::ALL.map(|choice| OptionVotes {
                id: choice.as_str(),
                label: labels.get(choice),
                votes: counts.get(choice),
            }),
            total: counts.total(),
        };
        // Strings and integers always serialize; a failure here would be a
        // bug in serde_json, not a condition to handle.
        let json = serde_json::to_string(&body).expect("plain data serializes to JSON");
        Snapshot {
            counts,
            json: json.into(),
        }
    }
}

/// The public shape of `/api/results` and of each SSE `tally` event. Field
/// order is the order of the JSON keys.
#[derive(Serialize)]
struct Results<'a> {
    options: [OptionVotes<'a>; 2],
    total: i64,
}

#[derive(Serialize)]
struct OptionVotes<'a> {
    id: &'static str,
    label: &'a str,
    votes: i64,
}

/// A channel with no tally yet.
pub fn channel() -> (TallySender, TallyReceiver) {
    watch::channel(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_documented_shape() {
        let labels = Labels {
            a: "Gandom".to_owned(),
            b: "Amoo".to_owned(),
        };
        let snapshot = Snapshot::new(&labels, Counts { a: 12, b: 7 });
        assert_eq!(
            &*snapshot.json,
            r#"{"options":[{"id":"a","label":"Gandom","votes":12},{"id":"b","label":"Amoo","votes":7}],"total":19}"#
        );
    }

    #[test]
    fn labels_are_json_escaped_not_html_escaped() {
        let labels = Labels {
            a: "say \"hi\"".to_owned(),
            b: "<b>".to_owned(),
        };
        let snapshot = Snapshot::new(&labels, Counts::default());
        let value: serde_json::Value = serde_json::from_str(&snapshot.json).expect("valid JSON");
        assert_eq!(value["options"][0]["label"], "say \"hi\"");
        assert_eq!(value["options"][1]["label"], "<b>");
        assert_eq!(value["total"], 0);
    }
}
