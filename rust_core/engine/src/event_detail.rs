//! One stored event with its identity decision, for the debugger: the profile it is in now,
//! the identifiers it linked first, the merges it caused and the identifiers it carried that
//! were refused, with one sentence saying what happened.

use crate::error::{EngineError, Result};
use crate::identifiers::Identifier;
use crate::identity::graph::{created_profile_id, ProfileLookup};
use crate::ingest::Engine;
use crate::profiles::{decode_stored, profile_identifiers};
use crate::proto::{Event, Merge, ProfileIdentifier};
use crate::time;

pub struct EventDetail {
    pub seq: u64,
    pub source_id: u32,
    pub event: Event,
    /// None when the event carries no identifier a profile is made of.
    pub identity: Option<EventIdentity>,
}

pub struct EventIdentity {
    pub profile_id: String,
    pub identifiers: Vec<ProfileIdentifier>,
    /// Identifiers this event linked first ("type:value").
    pub new_identifiers: Vec<String>,
    /// Merges this event caused (into the profile it is in now, or one merged into it since).
    pub merges: Vec<Merge>,
    /// (identifier, why) of the identifiers it carried that were not linked.
    pub refused: Vec<(String, String)>,
    pub decision: String,
}

fn text(identifier: &Identifier) -> String {
    format!("{}:{}", identifier.kind, identifier.value)
}

impl Engine {
    /// The event at log seq `seq` and its identity decision; NotFound for an unknown seq.
    pub fn event_detail(&self, seq: u64) -> Result<EventDetail> {
        let (source_id, event) = {
            let store = &self.shared.store;
            let txn = store.log.read()?;
            let value = store
                .log_dbs
                .events
                .get(&txn.txn, &seq)?
                .ok_or_else(|| EngineError::NotFound(format!("no event {seq}")))?;
            (crate::profile_reads::source_of(value), decode_stored(seq, value)?)
        };
        let carried = profile_identifiers(crate::identifiers::of_event(&event, &self.shared.profiles.custom()));
        let identity = match carried.first() {
            None => None,
            Some(first) => self.identity_of(seq, &event, first, &carried)?,
        };
        Ok(EventDetail {
            seq,
            source_id,
            event,
            identity,
        })
    }

    fn identity_of(
        &self,
        seq: u64,
        event: &Event,
        first: &Identifier,
        carried: &[Identifier],
    ) -> Result<Option<EventIdentity>> {
        let (view, refusals) = {
            let mut state = self.shared.profiles.lock();
            let refusals = state.graph.refusals_of(&event.message_id);
            // The profile of the first identifier that is linked (a refused one is not).
            let view = carried
                .iter()
                .filter(|identifier| !refusals.iter().any(|r| &r.identifier == *identifier))
                .chain(std::iter::once(first))
                .find_map(|identifier| state.graph.view(&ProfileLookup::Identifier(identifier.clone())));
            (view, refusals)
        };
        let Some(view) = view else {
            return Ok(None);
        };
        let new_identifiers: Vec<String> = view
            .identifiers
            .iter()
            .filter(|(_, first_seq)| *first_seq == seq)
            .map(|(identifier, _)| text(identifier))
            .collect();
        let merges: Vec<Merge> = view
            .merge_history
            .iter()
            .filter(|merge| merge.message_id == event.message_id)
            .map(|merge| Merge {
                survivor_id: merge.survivor.to_string(),
                merged_id: merge.merged.to_string(),
                message_id: merge.message_id.clone(),
                timestamp: Some(time::from_ms(merge.timestamp_ms)),
            })
            .collect();
        let refused: Vec<(String, String)> = refusals
            .iter()
            .map(|r| (text(&r.identifier), crate::profile_reads::refusal_text(&r.reason)))
            .collect();
        let profile_id = view.id.to_string();
        // The profile this event created, if it created one: it may since have been merged
        // into the one it is in now (profile ids are made from the creating event).
        let created = view
            .identifiers
            .iter()
            .filter(|(_, first_seq)| *first_seq == seq)
            .map(|(identifier, _)| created_profile_id(&event.message_id, identifier))
            .find(|id| *id == view.id || view.merge_history.iter().any(|merge| merge.merged == *id));
        let mut decision = if !merges.is_empty() {
            let merged: Vec<String> = merges
                .iter()
                .map(|m| format!("{} into {}", m.merged_id, m.survivor_id))
                .collect();
            format!("Merged {}", merged.join(", "))
        } else if let Some(created) = created {
            let mut text = format!("Created {created} with {}", new_identifiers.join(", "));
            if created != view.id {
                text.push_str(&format!(" (since merged into {profile_id})"));
            }
            text
        } else if !new_identifiers.is_empty() {
            format!("Added {} to {profile_id}", new_identifiers.join(", "))
        } else {
            format!("Joined {profile_id}: its identifiers were already there")
        };
        for (identifier, why) in &refused {
            decision.push_str(&format!("; {identifier} was not linked: {why}"));
        }
        let identifiers = self.profile_identifiers(view.identifiers)?;
        Ok(Some(EventIdentity {
            profile_id,
            identifiers,
            new_identifiers,
            merges,
            refused,
            decision,
        }))
    }
}
