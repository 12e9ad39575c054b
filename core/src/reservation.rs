//! The life of a balance reservation.
//!
//! ```text
//!            release                 (terminal, frees the amount)
//!   held ─────────────▶ released
//!     │  \ expires_at passes
//!     │   └───────────▶ expired      (terminal, frees the amount)
//!     │ commit
//!     ▼                  balance snapshot taken after the commit
//!  committed ─────────────────────────────────────▶ retired (terminal)
//! ```
//!
//! An amount counts against free funds while the reservation is `held` and
//! not past `expires_at`, and while it is `committed`: the order is on the
//! exchange, but the exchange's own balance only shows it from the next
//! snapshot on. Repeating an event is harmless: it simply does not apply.

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReservationStatus {
    Held,
    Committed,
    Released,
    Expired,
    Retired,
}

/// What can happen to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationEvent {
    Release,
    Commit,
    /// `expires_at` has passed.
    Expire,
    /// A balance snapshot taken after the commit arrived.
    SnapshotAfterCommit,
}

impl ReservationStatus {
    pub const ALL: [ReservationStatus; 5] = [
        ReservationStatus::Held,
        ReservationStatus::Committed,
        ReservationStatus::Released,
        ReservationStatus::Expired,
        ReservationStatus::Retired,
    ];

    /// The name stored in `botai.reservations.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Held => "held",
            ReservationStatus::Committed => "committed",
            ReservationStatus::Released => "released",
            ReservationStatus::Expired => "expired",
            ReservationStatus::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<ReservationStatus> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The state after `event`, or None when the event does not apply (the
    /// caller then reports `false` and changes nothing).
    pub fn on(self, event: ReservationEvent) -> Option<ReservationStatus> {
        use ReservationEvent as E;
        use ReservationStatus as S;
        match (self, event) {
            (S::Held, E::Release) => Some(S::Released),
            (S::Held, E::Commit) => Some(S::Committed),
            (S::Held, E::Expire) => Some(S::Expired),
            (S::Committed, E::SnapshotAfterCommit) => Some(S::Retired),
            _ => None,
        }
    }

    /// Does the amount count against free funds? `expired_by_time` is
    /// whether `expires_at` has passed; it only matters while held.
    pub fn holds_funds(self, expired_by_time: bool) -> bool {
        match self {
            ReservationStatus::Held => !expired_by_time,
            ReservationStatus::Committed => true,
            _ => false,
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, ReservationStatus::Released | ReservationStatus::Expired | ReservationStatus::Retired)
    }
}

#[cfg(test)]
mod tests {
    use super::ReservationEvent as E;
    use super::ReservationStatus as S;

    #[test]
    fn terminal_states_accept_nothing() {
        for st in S::ALL.into_iter().filter(|s| s.is_terminal()) {
            for ev in [E::Release, E::Commit, E::Expire, E::SnapshotAfterCommit] {
                assert_eq!(st.on(ev), None, "{st:?} + {ev:?}");
            }
            assert!(!st.holds_funds(false));
        }
    }

    #[test]
    fn repeats_are_harmless() {
        let released = S::Held.on(E::Release).unwrap();
        assert_eq!(released.on(E::Release), None);
        let committed = S::Held.on(E::Commit).unwrap();
        assert_eq!(committed.on(E::Commit), None);
        assert_eq!(committed.on(E::Release), None, "a placed order cannot be un-placed");
        assert_eq!(committed.on(E::Expire), None, "a committed amount waits for a snapshot, not a clock");
    }

    #[test]
    fn committed_holds_until_a_newer_snapshot() {
        let c = S::Held.on(E::Commit).unwrap();
        assert!(c.holds_funds(true));
        assert!(!c.on(E::SnapshotAfterCommit).unwrap().holds_funds(false));
        assert!(!S::Held.holds_funds(true));
    }

    #[test]
    fn names_round_trip() {
        for st in S::ALL {
            assert_eq!(S::parse(st.as_str()), Some(st));
        }
    }
}
