//! Which points a journal keeps: by age, thinned like Azure Site Recovery
//! (every point for the first hours, then one an hour), by count, and
//! under the journal's size cap.
//!
//! The policy is a pure function of the points and the time, so the same
//! points give the same answer whether retention runs after every commit or
//! once after a day. Thinning keeps the *latest* point of each clock-aligned
//! period: a period's latest point never changes once the period is over,
//! so a point kept by thinning stays kept until it expires.

use super::point::PointMeta;
use std::time::Duration;

/// How long points are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Every point younger than this is kept.
    pub keep_all_for: Duration,
    /// Older points are thinned to the latest one of each such period
    /// (periods aligned to the Unix epoch: whole hours for one hour).
    pub then_one_per: Duration,
    /// Points older than this are dropped.
    pub max_age: Duration,
    /// At most this many points are kept (the oldest go first).
    pub max_points: Option<usize>,
}

impl Default for Retention {
    /// Like Azure Site Recovery: every point for 2 hours, then one an hour,
    /// for 24 hours.
    fn default() -> Self {
        Retention {
            keep_all_for: Duration::from_secs(2 * 3600),
            then_one_per: Duration::from_secs(3600),
            max_age: Duration::from_secs(24 * 3600),
            max_points: None,
        }
    }
}

/// Why a point was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneReason {
    /// Older than `max_age`.
    Expired,
    /// Not the latest point of its thinning period.
    Thinned,
    /// More points than `max_points`.
    OverMaxPoints,
    /// The journal was over its size cap: dropped before its retention
    /// ended (an [`Alarm`] says so).
    SizeCap,
}

/// A dropped point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// The point's sequence number.
    pub seq: u64,
    /// When it was taken (Unix ms).
    pub taken_at: u64,
    /// Why it was dropped.
    pub reason: PruneReason,
}

/// Something an operator must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alarm {
    /// A point was dropped before its retention ended, to keep the journal
    /// under its size cap.
    DroppedEarly {
        /// The point's sequence number.
        seq: u64,
        /// When it was taken (Unix ms).
        taken_at: u64,
        /// What happened and how to stop it happening.
        reason: String,
    },
}

impl std::fmt::Display for Alarm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Alarm::DroppedEarly { seq, reason, .. } => {
                write!(f, "recovery point {seq} dropped early: {reason}")
            }
        }
    }
}

/// What retention and the size cap dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruning {
    /// Every dropped point, oldest first.
    pub pruned: Vec<Pruned>,
    /// One alarm per point the size cap dropped.
    pub alarms: Vec<Alarm>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Retention {
    /// The points (indices into `points`, oldest first) this policy drops
    /// at `now_ms`, with why. The latest point is always kept.
    pub(crate) fn plan(&self, points: &[PointMeta], now_ms: u64) -> Vec<(usize, PruneReason)> {
        let Some(latest) = points.len().checked_sub(1) else {
            return Vec::new();
        };
        let keep_all = millis(self.keep_all_for);
        let max_age = millis(self.max_age);
        // A zero period would divide by zero; one millisecond keeps all.
        let period = millis(self.then_one_per).max(1);
        let mut drops = Vec::new();
        let mut kept = Vec::new();
        for (i, p) in points.iter().enumerate() {
            let age = now_ms.saturating_sub(p.taken_at);
            let reason = if i == latest || age <= keep_all.min(max_age) {
                None
            } else if age > max_age {
                Some(PruneReason::Expired)
            } else if points[i + 1].taken_at / period == p.taken_at / period {
                Some(PruneReason::Thinned)
            } else {
                None
            };
            match reason {
                Some(reason) => drops.push((i, reason)),
                None => kept.push(i),
            }
        }
        if let Some(max) = self.max_points {
            let excess = kept.len().saturating_sub(max.max(1));
            drops.extend(
                kept[..excess]
                    .iter()
                    .map(|&i| (i, PruneReason::OverMaxPoints)),
            );
        }
        drops.sort_by_key(|&(i, _)| i);
        drops
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(seq: u64, taken_at: u64) -> PointMeta {
        PointMeta {
            seq,
            taken_at,
            app_consistent: false,
            consistency_id: None,
            digest: String::new(),
            label: String::new(),
        }
    }

    #[test]
    fn thinning_keeps_the_latest_point_of_each_hour_and_is_stable() {
        const MIN: u64 = 60_000;
        let points: Vec<_> = (0..12 * 30).map(|i| point(i, i * 5 * MIN)).collect();
        let r = Retention::default();
        let now = points.last().unwrap().taken_at;
        let dropped: Vec<usize> = r.plan(&points, now).into_iter().map(|(i, _)| i).collect();
        let kept: Vec<_> = (0..points.len())
            .filter(|i| !dropped.contains(i))
            .map(|i| points[i].clone())
            .collect();
        // Planning again on what was kept drops nothing more.
        assert!(r.plan(&kept, now).is_empty());
        // 2 h of every point (25 points, both ends included), then 22 whole hours.
        assert_eq!(
            kept.len(),
            25 + 22,
            "{:?}",
            kept.iter().map(|p| p.seq).collect::<Vec<_>>()
        );
    }

    #[test]
    fn max_points_drops_the_oldest_and_keeps_the_latest() {
        let points: Vec<_> = (0..5).map(|i| point(i, i)).collect();
        let r = Retention {
            max_points: Some(0),
            ..Retention::default()
        };
        let plan = r.plan(&points, 10);
        assert_eq!(plan.len(), 4);
        assert!(
            plan.iter()
                .all(|&(i, why)| i < 4 && why == PruneReason::OverMaxPoints)
        );
    }
}
