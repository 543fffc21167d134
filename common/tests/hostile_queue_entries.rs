//! Property tests of the queue-entry decoder with arbitrary entries: it
//! never panics, accepts exactly the two fields with valid values, and
//! reads back what the producer wrote. Failing cases are kept by proptest
//! in `hostile_queue_entries.proptest-regressions` next to this file and
//! run first on every later run.

use common::queue::{decode, encode, EntryId};
use common::{Choice, VoterId};
use proptest::prelude::*;

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        Just(b"voter_id".to_vec()),
        Just(b"vote".to_vec()),
        Just(b"a".to_vec()),
        "[0-9a-f]{32}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #[test]
    fn any_entry_decodes_or_is_malformed_without_a_panic(
        id in "\\PC{0,30}",
        fields in prop::collection::vec((bytes(), bytes()), 0..5),
    ) {
        if let Ok(entry) = decode(&id, &fields) {
            // Accepted: exactly the two fields, each valid.
            prop_assert_eq!(fields.len(), 2);
            let value = |name: &[u8]| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            prop_assert_eq!(value(b"voter_id"), Some(entry.voter.as_str().as_bytes().to_vec()));
            prop_assert_eq!(value(b"vote"), Some(entry.choice.as_str().as_bytes().to_vec()));
            prop_assert_eq!(id.parse::<EntryId>().ok(), Some(entry.id));
        }
    }

    #[test]
    fn what_is_encoded_decodes_to_itself(
        ms in 0i64..i64::MAX, seq in 0i64..i64::MAX, b in any::<bool>(), reversed in any::<bool>(),
    ) {
        let voter = VoterId::generate();
        let choice = if b { Choice::B } else { Choice::A };
        let mut fields: Vec<(Vec<u8>, Vec<u8>)> = encode(&voter, choice)
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        if reversed {
            fields.reverse();
        }
        let entry = decode(&format!("{ms}-{seq}"), &fields).expect("a valid entry");
        prop_assert_eq!(entry.voter, voter);
        prop_assert_eq!(entry.choice, choice);
        prop_assert_eq!(entry.id, EntryId { ms, seq });
    }
}
