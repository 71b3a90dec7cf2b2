//! Group settings as the control API changes them: a `SetGroupSettings`
//! request merged into the stored settings, and the checks a group's
//! settings pass before the store keeps them.
//!
//! The RPC merges rather than replaces so that an operator who changes one
//! setting (say the RPO target) cannot wipe the ones the request did not
//! carry (say the journal's size cap, whose loss drops recovery points).
//! Fields the request sets replace the group's, fields it names in `clear`
//! go back to unset, and every other field stays.

use super::convert::{Invalid, journal_from};
use super::proto as pb;
use crate::journal::Retention;
use crate::store::{GroupSettings, JournalSettings};
use crate::sync::DEFAULT_BLOCK_SIZE;
use std::time::Duration;

/// The longest duration a setting takes: 366 days. Anything longer is a
/// typo (milliseconds for seconds) rather than a policy.
pub const MAX_SECS: u64 = 366 * 86_400;

/// The longest recovery point retention: 366 days, in hours.
pub const MAX_RETENTION_HOURS: u32 = 366 * 24;

/// The most points a journal may be told to keep.
pub const MAX_POINTS: u64 = 1_000_000;

/// The smallest journal size cap: one block, else not even one point's
/// before-image fits.
pub const MIN_JOURNAL_BYTES: u64 = DEFAULT_BLOCK_SIZE as u64;

/// The names `SetGroupSettingsRequest.clear` takes.
pub const CLEARABLE: &[&str] = &[
    "master_target",
    "process_server",
    "account",
    "datastore",
    "retention_hours",
    "consistency",
    "rpo_target_secs",
    "cycle_interval_secs",
    "app_consistent_every",
    "journal",
    "journal.keep_all_secs",
    "journal.one_per_secs",
    "journal.max_age_secs",
    "journal.max_points",
    "journal.max_bytes",
];

/// The names of the fields `update` sets.
fn set_fields(update: &pb::GroupSettings) -> Vec<&'static str> {
    let mut set = Vec::new();
    let mut mark = |present: bool, name: &'static str| {
        if present {
            set.push(name);
        }
    };
    mark(update.master_target.is_some(), "master_target");
    mark(update.process_server.is_some(), "process_server");
    mark(update.account.is_some(), "account");
    mark(update.datastore.is_some(), "datastore");
    mark(update.retention_hours.is_some(), "retention_hours");
    mark(update.consistency.is_some(), "consistency");
    mark(update.rpo_target_secs.is_some(), "rpo_target_secs");
    mark(update.cycle_interval_secs.is_some(), "cycle_interval_secs");
    mark(
        update.app_consistent_every.is_some(),
        "app_consistent_every",
    );
    if let Some(j) = &update.journal {
        mark(j.keep_all_secs.is_some(), "journal.keep_all_secs");
        mark(j.one_per_secs.is_some(), "journal.one_per_secs");
        mark(j.max_age_secs.is_some(), "journal.max_age_secs");
        mark(j.max_points.is_some(), "journal.max_points");
        mark(j.max_bytes.is_some(), "journal.max_bytes");
    }
    set
}

/// `current` with `update` merged in and the `clear` fields unset.
pub fn merge(
    current: &GroupSettings,
    update: Option<pb::GroupSettings>,
    clear: &[String],
) -> Result<GroupSettings, Invalid> {
    let update = update.unwrap_or_default();
    let set = set_fields(&update);
    for name in clear {
        if !CLEARABLE.contains(&name.as_str()) {
            return Err(Invalid(format!(
                "clear names {name:?}, which is not a setting; it takes: {}",
                CLEARABLE.join(", ")
            )));
        }
        let journal_prefix = format!("{name}.");
        if let Some(both) = set
            .iter()
            .find(|f| **f == name.as_str() || f.starts_with(&journal_prefix))
        {
            return Err(Invalid(format!(
                "{both} is both set and cleared; do one or the other"
            )));
        }
    }

    let mut s = current.clone();
    let pb::GroupSettings {
        master_target,
        process_server,
        account,
        datastore,
        retention_hours,
        consistency,
        rpo_target_secs,
        cycle_interval_secs,
        app_consistent_every,
        journal,
    } = update;
    s.master_target = master_target.or(s.master_target);
    s.process_server = process_server.or(s.process_server);
    s.account = account.or(s.account);
    s.datastore = datastore.or(s.datastore);
    s.retention_hours = retention_hours.or(s.retention_hours);
    s.consistency = consistency.unwrap_or(s.consistency);
    s.rpo_target_secs = rpo_target_secs.or(s.rpo_target_secs);
    s.cycle_interval_secs = cycle_interval_secs.or(s.cycle_interval_secs);
    s.app_consistent_every = app_consistent_every.or(s.app_consistent_every);
    if let Some(journal) = journal {
        let j = journal_from(journal);
        let cur = &mut s.journal;
        cur.keep_all_secs = j.keep_all_secs.or(cur.keep_all_secs);
        cur.one_per_secs = j.one_per_secs.or(cur.one_per_secs);
        cur.max_age_secs = j.max_age_secs.or(cur.max_age_secs);
        cur.max_points = j.max_points.or(cur.max_points);
        cur.max_bytes = j.max_bytes.or(cur.max_bytes);
    }

    for name in clear {
        match name.as_str() {
            "master_target" => s.master_target = None,
            "process_server" => s.process_server = None,
            "account" => s.account = None,
            "datastore" => s.datastore = None,
            "retention_hours" => s.retention_hours = None,
            "consistency" => s.consistency = false,
            "rpo_target_secs" => s.rpo_target_secs = None,
            "cycle_interval_secs" => s.cycle_interval_secs = None,
            "app_consistent_every" => s.app_consistent_every = None,
            "journal" => s.journal = Default::default(),
            "journal.keep_all_secs" => s.journal.keep_all_secs = None,
            "journal.one_per_secs" => s.journal.one_per_secs = None,
            "journal.max_age_secs" => s.journal.max_age_secs = None,
            "journal.max_points" => s.journal.max_points = None,
            "journal.max_bytes" => s.journal.max_bytes = None,
            // Checked against CLEARABLE above.
            _ => {}
        }
    }
    Ok(s)
}

/// What unsetting a duration gives, for the fix in a refusal.
fn unset_means(default: Option<Duration>) -> String {
    match default {
        Some(d) => format!("clear it for the default ({} s)", d.as_secs()),
        None => "clear it for none".to_string(),
    }
}

/// A duration setting: from 1 s to [`MAX_SECS`].
fn check_secs(field: &str, value: Option<u64>, default: Option<Duration>) -> Result<(), Invalid> {
    match value {
        Some(0) => Err(Invalid(format!(
            "{field} is 0; set at least 1 second, or {}",
            unset_means(default)
        ))),
        Some(v) if v > MAX_SECS => Err(Invalid(format!(
            "{field} is {v} s, over 366 days; set at most {MAX_SECS} s (it counts seconds), or {}",
            unset_means(default)
        ))),
        _ => Ok(()),
    }
}

/// What the journal keeps for each retention setting the group leaves
/// unset (the maximum age follows the group's `retention_hours`).
pub fn unset_journal(s: &GroupSettings) -> Retention {
    crate::workflow::journal_options(&GroupSettings {
        journal: JournalSettings::default(),
        ..s.clone()
    })
    .retention
}

/// Refuses settings no group should have, naming the field and the fix.
pub fn validate(s: &GroupSettings) -> Result<(), Invalid> {
    for (field, value) in [
        ("master_target", &s.master_target),
        ("process_server", &s.process_server),
        ("account", &s.account),
        ("datastore", &s.datastore),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(Invalid(format!("{field} is empty; name one, or clear it")));
        }
    }
    match s.retention_hours {
        Some(0) => {
            return Err(Invalid(
                "retention_hours is 0, which would drop every point but the latest at once; \
                 set at least 1, or clear it for the default (24 hours)"
                    .to_string(),
            ));
        }
        Some(h) if h > MAX_RETENTION_HOURS => {
            return Err(Invalid(format!(
                "retention_hours is {h}, over 366 days; set at most {MAX_RETENTION_HOURS}, or \
                 clear it for the default (24 hours)"
            )));
        }
        _ => {}
    }
    check_secs("rpo_target_secs", s.rpo_target_secs, None)?;
    check_secs("cycle_interval_secs", s.cycle_interval_secs, None)?;
    if s.app_consistent_every == Some(0) {
        return Err(Invalid(
            "app_consistent_every is 0; it counts cycles: 1 makes every cycle app-consistent, \
             N every Nth; clear it for none"
                .to_string(),
        ));
    }
    if let (Some(interval), Some(target)) = (s.cycle_interval_secs, s.rpo_target_secs)
        && interval > target
    {
        return Err(Invalid(format!(
            "cycle_interval_secs ({interval} s) is longer than rpo_target_secs ({target} s), so \
             every cycle would miss the target; set a cycle interval of at most {target} s or a \
             longer RPO target"
        )));
    }

    let j = &s.journal;
    let defaults = unset_journal(s);
    check_secs(
        "journal.keep_all_secs",
        j.keep_all_secs,
        Some(defaults.keep_all_for),
    )?;
    check_secs(
        "journal.one_per_secs",
        j.one_per_secs,
        Some(defaults.then_one_per),
    )?;
    check_secs(
        "journal.max_age_secs",
        j.max_age_secs,
        Some(defaults.max_age),
    )?;
    if let Some(points) = j.max_points {
        let points = u64::try_from(points).unwrap_or(u64::MAX);
        if points == 0 || points > MAX_POINTS {
            return Err(Invalid(format!(
                "journal.max_points is {points}; set 1 to {MAX_POINTS} (the latest point is \
                 always kept), or clear it for no count cap"
            )));
        }
    }
    if let Some(bytes) = j.max_bytes
        && bytes < MIN_JOURNAL_BYTES
    {
        return Err(Invalid(format!(
            "journal.max_bytes is {bytes} bytes, under one block ({MIN_JOURNAL_BYTES} bytes), so \
             no point would fit; set at least {MIN_JOURNAL_BYTES} (1 MiB), or clear it for no \
             size cap"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> GroupSettings {
        GroupSettings {
            master_target: Some("mt-01".into()),
            rpo_target_secs: Some(300),
            cycle_interval_secs: Some(60),
            journal: JournalSettings {
                keep_all_secs: Some(600),
                max_bytes: Some(8 << 30),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn unset_fields_keep_their_values_and_set_ones_replace() {
        let update = pb::GroupSettings {
            rpo_target_secs: Some(120),
            journal: Some(pb::JournalSettings {
                max_points: Some(50),
                ..Default::default()
            }),
            ..Default::default()
        };
        let merged = merge(&stored(), Some(update), &[]).unwrap();
        assert_eq!(merged.rpo_target_secs, Some(120));
        assert_eq!(merged.master_target.as_deref(), Some("mt-01"));
        assert_eq!(merged.journal.keep_all_secs, Some(600));
        assert_eq!(merged.journal.max_bytes, Some(8 << 30));
        assert_eq!(merged.journal.max_points, Some(50));
    }

    #[test]
    fn clear_unsets_and_refuses_unknown_names_and_set_and_clear_at_once() {
        let merged = merge(
            &stored(),
            None,
            &["journal.max_bytes".into(), "master_target".into()],
        )
        .unwrap();
        assert_eq!(merged.journal.max_bytes, None);
        assert_eq!(merged.journal.keep_all_secs, Some(600));
        assert_eq!(merged.master_target, None);
        let all = merge(&stored(), None, &["journal".into()]).unwrap();
        assert_eq!(all.journal, JournalSettings::default());

        let e = merge(&stored(), None, &["journal.size".into()]).unwrap_err();
        assert!(e.0.contains("journal.max_bytes"), "{e}");
        let both = pb::GroupSettings {
            journal: Some(pb::JournalSettings {
                max_bytes: Some(1 << 30),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = merge(&stored(), Some(both), &["journal".into()]).unwrap_err();
        assert!(
            e.0.contains("journal.max_bytes is both set and cleared"),
            "{e}"
        );
    }

    #[test]
    fn zero_and_absurd_values_are_refused_naming_the_field() {
        let cases: Vec<(&str, GroupSettings)> = vec![
            (
                "rpo_target_secs is 0",
                GroupSettings {
                    rpo_target_secs: Some(0),
                    ..Default::default()
                },
            ),
            (
                "journal.one_per_secs is 0",
                GroupSettings {
                    journal: JournalSettings {
                        one_per_secs: Some(0),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            ),
            (
                "journal.max_age_secs is 31622401 s",
                GroupSettings {
                    journal: JournalSettings {
                        max_age_secs: Some(MAX_SECS + 1),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            ),
            (
                "journal.max_bytes is 4096 bytes",
                GroupSettings {
                    journal: JournalSettings {
                        max_bytes: Some(4096),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            ),
            (
                "journal.max_points is 0",
                GroupSettings {
                    journal: JournalSettings {
                        max_points: Some(0),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            ),
            (
                "app_consistent_every is 0",
                GroupSettings {
                    app_consistent_every: Some(0),
                    ..Default::default()
                },
            ),
            (
                "cycle_interval_secs (600 s) is longer than rpo_target_secs (300 s)",
                GroupSettings {
                    rpo_target_secs: Some(300),
                    cycle_interval_secs: Some(600),
                    ..Default::default()
                },
            ),
            (
                "retention_hours is 0",
                GroupSettings {
                    retention_hours: Some(0),
                    ..Default::default()
                },
            ),
            (
                "datastore is empty",
                GroupSettings {
                    datastore: Some(" ".into()),
                    ..Default::default()
                },
            ),
        ];
        for (want, settings) in cases {
            let e = validate(&settings).unwrap_err();
            assert!(e.0.contains(want), "want {want:?}, got {e}");
        }
        validate(&stored()).unwrap();
        validate(&GroupSettings::default()).unwrap();
        let at_the_edges = GroupSettings {
            journal: JournalSettings {
                max_bytes: Some(MIN_JOURNAL_BYTES),
                max_age_secs: Some(MAX_SECS),
                max_points: Some(1),
                ..Default::default()
            },
            ..Default::default()
        };
        validate(&at_the_edges).unwrap();
    }

    #[test]
    fn the_fix_names_the_default_the_group_would_get() {
        let s = GroupSettings {
            retention_hours: Some(72),
            journal: JournalSettings {
                max_age_secs: Some(0),
                ..Default::default()
            },
            ..Default::default()
        };
        let e = validate(&s).unwrap_err();
        assert!(e.0.contains("the default (259200 s)"), "{e}");
    }
}
