//! The grace rule's settings (SPEC §4 rule 3): how long and how often the immediate predecessor
//! of a refresh token may be presented again. One statement of their limits, for the configured
//! values (`refresh.reuse_grace_*`) and a client's own (`client create --reuse-grace-*`, the
//! admin API), and of how a client's own replace the configured ones.

use super::grant::Grace;
use super::model::Client;

/// The longest grace window, seconds: past it a replayed token is more likely stolen than lost.
pub const MAX_SECONDS: i64 = 60;
/// The most grace re-issues of one generation (each adds a live sibling to the family, whose
/// stored token hashes are bounded by `1 + MAX_COUNT`).
pub const MAX_COUNT: i64 = 10;

/// Which grace setting a value is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    Seconds,
    Count,
}

impl Setting {
    /// The largest value it may take.
    pub fn max(self) -> i64 {
        match self {
            Setting::Seconds => MAX_SECONDS,
            Setting::Count => MAX_COUNT,
        }
    }
}

/// Checks one grace setting: `Err` says why `value` is out of range (without the setting's
/// name, which each caller spells its own way: config key, CLI flag, JSON field).
pub fn check(setting: Setting, value: i64) -> Result<(), String> {
    if value < 0 {
        Err(format!("{value} is below the minimum of 0"))
    } else if value > setting.max() {
        Err(format!("{value} is above the maximum of {}", setting.max()))
    } else {
        Ok(())
    }
}

/// The grace rule for `client`: its own seconds and count where it has them, else the
/// `configured` ones.
pub fn for_client(configured: Grace, client: &Client) -> Grace {
    Grace {
        ms: client.reuse_grace_seconds.map_or(configured.ms, |s| s * 1000),
        count: client.reuse_grace_count.unwrap_or(configured.count),
    }
}

/// A change to a client's own grace rule: per setting, `None` leaves it as it is, `Some(None)`
/// returns it to the configured value, `Some(Some(v))` sets it to `v`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub seconds: Option<Option<i64>>,
    pub count: Option<Option<i64>>,
}

/// Applies `change` to `client` after checking every value it sets; refused, it changes
/// nothing and says which setting and why.
pub fn apply(change: Change, client: &mut Client) -> Result<(), (Setting, String)> {
    for (setting, given) in [(Setting::Seconds, change.seconds), (Setting::Count, change.count)] {
        if let Some(Some(v)) = given {
            check(setting, v).map_err(|e| (setting, e))?;
        }
    }
    if let Some(v) = change.seconds {
        client.reuse_grace_seconds = v;
    }
    if let Some(v) = change.count {
        client.reuse_grace_count = v;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_inclusive_and_refuse_negatives() {
        for (s, max) in [(Setting::Seconds, 60), (Setting::Count, 10)] {
            assert_eq!(check(s, 0), Ok(()));
            assert_eq!(check(s, max), Ok(()));
            assert_eq!(
                check(s, max + 1),
                Err(format!("{} is above the maximum of {max}", max + 1))
            );
            assert_eq!(check(s, -1), Err("-1 is below the minimum of 0".into()));
        }
    }

    #[test]
    fn a_clients_own_values_replace_the_configured_ones_one_by_one() {
        let configured = Grace { ms: 30_000, count: 2 };
        let mut c = Client::blank("c".into(), 0);
        assert_eq!(for_client(configured, &c), configured);
        c.reuse_grace_seconds = Some(0);
        assert_eq!(for_client(configured, &c), Grace { ms: 0, count: 2 });
        c.reuse_grace_count = Some(7);
        assert_eq!(for_client(configured, &c), Grace { ms: 0, count: 7 });
        c.reuse_grace_seconds = None;
        assert_eq!(for_client(configured, &c), Grace { ms: 30_000, count: 7 });
    }

    #[test]
    fn a_change_sets_clears_or_leaves_each_setting_and_a_bad_one_changes_nothing() {
        let mut c = Client::blank("c".into(), 0);
        let set = Change {
            seconds: Some(Some(5)),
            count: Some(Some(3)),
        };
        apply(set, &mut c).unwrap();
        assert_eq!((c.reuse_grace_seconds, c.reuse_grace_count), (Some(5), Some(3)));
        let bad = Change {
            seconds: Some(Some(1)),
            count: Some(Some(11)),
        };
        assert_eq!(
            apply(bad, &mut c),
            Err((Setting::Count, "11 is above the maximum of 10".into()))
        );
        assert_eq!((c.reuse_grace_seconds, c.reuse_grace_count), (Some(5), Some(3)));
        let clear = Change {
            seconds: Some(None),
            count: None,
        };
        apply(clear, &mut c).unwrap();
        assert_eq!((c.reuse_grace_seconds, c.reuse_grace_count), (None, Some(3)));
    }
}
