//! The families this process rotated last, so that a PostgreSQL refresh can decide on the state
//! it wrote itself and send its guarded write at once: one round trip instead of a read and a
//! write. A remembered state is only ever a guess. The write is guarded by the generation, the
//! grace count and the revocation the decision saw (`postgres::ROTATE`), so a state that another
//! process has changed since is refused by PostgreSQL, which returns the current row in the same
//! statement; and a decision that writes nothing (a refusal, reuse) is never taken on a
//! remembered state, only on one read just now. See docs/design/refresh-rotation.md §7.
//!
//! Bounded: at most `capacity` families (an arbitrary one is forgotten to make room), each only
//! after a refresh of a valid token of it succeeded, so an unauthenticated caller cannot fill it.

use crate::domain::model::Family;
use std::collections::HashMap;
use std::sync::Mutex;

pub struct Recent {
    capacity: usize,
    families: Mutex<HashMap<String, Family>>,
}

impl Recent {
    /// Remembers at most `capacity` families; 0 remembers none.
    pub fn new(capacity: usize) -> Recent {
        Recent {
            capacity,
            families: Mutex::new(HashMap::new()),
        }
    }

    /// The state this process last wrote for the family, if it still remembers it.
    pub fn get(&self, id: &str) -> Option<Family> {
        if self.capacity == 0 {
            return None;
        }
        self.lock().get(id).cloned()
    }

    /// Remembers the state just written.
    pub fn put(&self, family: &Family) {
        if self.capacity == 0 {
            return;
        }
        let mut m = self.lock();
        if m.len() >= self.capacity && !m.contains_key(&family.id) {
            if let Some(k) = m.keys().next().cloned() {
                m.remove(&k);
            }
        }
        m.insert(family.id.clone(), family.clone());
    }

    /// Forgets a family (after this process revoked it).
    pub fn forget(&self, id: &str) {
        if self.capacity > 0 {
            self.lock().remove(id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Family>> {
        // A panic while holding the lock cannot leave the map inconsistent (every change is
        // one call), so a poisoned lock is still usable.
        self.families.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::grant::{new_family, FamilySeed};
    use crate::domain::scope::Scope;

    fn family(id: &str) -> Family {
        let scope = Scope::parse("openid").unwrap();
        new_family(FamilySeed {
            id,
            client_id: "c",
            user_id: "u",
            scope: &scope,
            authorization_details: None,
            dpop_jkt: None,
            session_id: "s",
            auth_time: 1,
            idle_ttl_ms: 10,
            absolute_ttl_ms: 100,
            user_agent: None,
            now_ms: 1000,
            first_token: None,
        })
    }

    #[test]
    fn holds_at_most_its_capacity_and_the_latest_state() {
        let r = Recent::new(2);
        r.put(&family("a"));
        r.put(&family("b"));
        let mut a = family("a");
        a.generation = 5;
        r.put(&a);
        assert_eq!(r.lock().len(), 2);
        assert_eq!(r.get("a").unwrap().generation, 5);
        r.put(&family("c"));
        assert_eq!(r.lock().len(), 2, "one family forgotten to make room");
        assert!(r.get("c").is_some());
        r.forget("c");
        assert!(r.get("c").is_none());
        let off = Recent::new(0);
        off.put(&family("a"));
        assert!(off.get("a").is_none());
    }
}
