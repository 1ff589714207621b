//! The log's clock: how far in time the log had got when each event was appended. Predictions'
//! point-in-time features at a cutoff `t` read only events that were in the log when its clock
//! stood at `t` — a late, replayed or backfilled event never leaks into an older training row.
//!
//! The clock at an event is the newest `min(event time, arrival time)` of it and every event
//! before it in the log (Engage's own derived events, stamped with an evaluation time, do not
//! move it). For live traffic that is the arrival time, to within the gap between events. For
//! history loaded after the fact in time order it is the history's own time, so a purchase
//! history imported today still trains a model as the shop knew it then; an event older than
//! what the log already held when it came is late, and counts only at cutoffs after that.
//!
//! The clock never goes back along the log, so "in the log by `t`" is a log position: the
//! features read events with time ≤ t and seq ≤ `through(t)`. It is kept to the whole second
//! (an event counts once the second its clock stood in has passed): one mark per second the
//! log moved through, not one per event.

const SECOND_MS: i64 = 1_000;

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogClock {
    /// (first seq, clock): from that seq on, the log's clock stood at `clock` ms (the end of a
    /// whole second). Both columns increase.
    marks: Vec<(u64, i64)>,
}

impl LogClock {
    /// Moves the clock with the event at `seq` (called in log order; a seq at or below the
    /// last mark's is a replay of what was seen and changes nothing).
    pub fn advance(&mut self, seq: u64, event_ms: i64, received_ms: i64) {
        let reached = event_ms.min(received_ms);
        // Rounded up to a whole second: the clock stands at the second's end.
        let clock = reached
            .div_euclid(SECOND_MS)
            .saturating_add(1)
            .saturating_mul(SECOND_MS);
        match self.marks.last() {
            Some(&(last_seq, last_clock)) if seq <= last_seq || clock <= last_clock => {}
            _ => self.marks.push((seq, clock)),
        }
    }

    /// The last seq that was in the log when its clock stood at `t` (ms): every event at or
    /// below it had a clock ≤ t. 0 when none.
    pub fn through(&self, t: i64) -> u64 {
        // The first mark past t starts the events that came later.
        let later = self.marks.partition_point(|&(_, clock)| clock <= t);
        match self.marks.get(later) {
            Some(&(seq, _)) => seq - 1,
            None if later == 0 => 0,
            None => u64::MAX,
        }
    }

    /// The clock at `seq` (ms), if any event at or before it moved it.
    pub fn at(&self, seq: u64) -> Option<i64> {
        let at = self.marks.partition_point(|&(first, _)| first <= seq);
        at.checked_sub(1).map(|i| self.marks[i].1)
    }

    pub fn memory(&self) -> usize {
        crate::memory::heap(&self.marks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_follows_the_newest_time_and_marks_whole_seconds() {
        let mut clock = LogClock::default();
        assert_eq!(clock.through(i64::MAX), 0, "an empty log");
        clock.advance(1, 10_500, 99_000_000); // history: its own time
        clock.advance(2, 10_900, 99_000_000); // the same second: no mark
        clock.advance(3, 5_000, 99_000_000); // older than the log had got: late
        clock.advance(4, 20_000, 99_000_000);
        clock.advance(5, 90_000_000_000, 30_000); // a client clock in the future: its arrival
        clock.advance(4, 50_000, 50_000); // a replay changes nothing
        assert_eq!(clock.marks, vec![(1, 11_000), (4, 21_000), (5, 31_000)]);
        assert_eq!(clock.through(10_999), 0);
        assert_eq!(clock.through(11_000), 3, "event 3 came while the clock stood at 11 s");
        assert_eq!(clock.through(20_999), 3);
        assert_eq!(clock.through(21_000), 4);
        assert_eq!(clock.through(31_000), u64::MAX, "everything");
        assert_eq!(
            (clock.at(0), clock.at(3), clock.at(9)),
            (None, Some(11_000), Some(31_000))
        );
    }
}
