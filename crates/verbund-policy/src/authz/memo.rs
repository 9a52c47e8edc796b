//! Verdicts remembered, so that a target judged once is not judged again.
//!
//! Cedar's verdict on a target is a function of three things only: the caller's entity
//! (its id and memberships), the act, and the target (its attributes and its
//! organisation chain: the rest of a page's entity set never reaches it, since a chain
//! that disagrees with another is judged in a pass of its own). The role policies are
//! fixed for the life of an [`Authz`](super::Authz). So a verdict taken once holds for
//! the same three again, whatever happened in between: a booking whose organisation
//! moved arrives with another chain, a caller who lost a role with other memberships,
//! and both are asked afresh. Nothing expires, because nothing can go stale.
//!
//! Why it pays: judging is most of what a page of bookings costs a caller Cedar does not
//! allow everything (about 30 µs per organisation, a page of 100 organisations 3 ms,
//! `cargo bench -p verbund-policy --bench judging`), and callers meet the same
//! organisations again — the same first page reloaded, a Land's administrator paging
//! through its 18,500 bookings meets each of its 2,150 organisations some nine times.
//!
//! Bounded: at most [`CAPACITY`] verdicts (some 400 bytes each: a target with a chain of
//! five ids), and when full the memo forgets everything at once and starts again — the
//! next pages cost what they cost without it, never more.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use verbund_domain::account::{Membership, Principal};

use super::{Act, Target, Verdict};

/// The most verdicts remembered: every organisation of Bayern (2,153) for nine callers.
pub(super) const CAPACITY: usize = 20_000;

/// What identifies a caller to Cedar: `Authz::user` builds the `User` entity from these
/// alone (its display name never reaches Cedar). A field it comes to read must be added
/// here, or verdicts would be shared between callers it tells apart.
#[derive(PartialEq, Eq, Hash)]
struct Caller {
    user_id: String,
    memberships: Vec<Membership>,
}

impl Caller {
    fn of(p: &Principal) -> Self {
        // Every field named: one added to `Principal` stops the build here until someone
        // decides whether `Authz::user` reads it.
        let Principal {
            user_id,
            user_name: _,
            memberships,
        } = p;
        Caller {
            user_id: user_id.clone(),
            memberships: memberships.clone(),
        }
    }
}

#[derive(Default)]
struct Remembered {
    len: usize,
    verdicts: HashMap<(Caller, Act), HashMap<Target, Verdict>>,
}

/// The verdicts taken so far, by caller, act and target.
pub(super) struct Memo {
    capacity: usize,
    remembered: Mutex<Remembered>,
}

impl Memo {
    /// A memo of at most `capacity` verdicts (0: remembers nothing).
    pub(super) fn new(capacity: usize) -> Self {
        Memo {
            capacity,
            remembered: Mutex::default(),
        }
    }

    /// The verdict remembered for each target, in order.
    pub(super) fn recall(
        &self,
        p: &Principal,
        act: Act,
        targets: &[Target],
    ) -> Vec<Option<Verdict>> {
        if self.capacity == 0 {
            return vec![None; targets.len()];
        }
        // A panic elsewhere while the lock was held leaves whole entries: each insert is
        // one map operation.
        let remembered = self
            .remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let known = remembered.verdicts.get(&(Caller::of(p), act));
        targets
            .iter()
            .map(|t| known.and_then(|by_target| by_target.get(t)).cloned())
            .collect()
    }

    /// Remembers the verdicts `judged` for `p` and `act`.
    pub(super) fn remember(
        &self,
        p: &Principal,
        act: Act,
        judged: impl ExactSizeIterator<Item = (Target, Verdict)>,
    ) {
        if self.capacity == 0 || judged.len() == 0 {
            return;
        }
        let mut remembered = self
            .remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if remembered.len.saturating_add(judged.len()) > self.capacity {
            *remembered = Remembered::default();
        }
        let Remembered { len, verdicts } = &mut *remembered;
        let by_target = verdicts.entry((Caller::of(p), act)).or_default();
        for (target, verdict) in judged.take(self.capacity) {
            if by_target.insert(target, verdict).is_none() {
                *len = len.saturating_add(1);
            }
        }
    }

    /// How many verdicts are remembered.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len
    }
}
