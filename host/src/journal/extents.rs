//! Byte ranges of the replica mapped to where their bytes come from.
//!
//! One structure serves three needs: the ranges a point being written has
//! already saved (so each byte's before-image is saved once, the oldest
//! one), the sources of a materialized point (the first undo set to cover a
//! byte wins), and the live part of a merged undo set. In every case an
//! earlier claim on a byte wins, so the only insertion is [`ExtentMap::fill`],
//! which maps the parts of a range nothing maps yet.

use std::collections::BTreeMap;
use std::ops::Range;

/// A piece of a range: its bytes, and the start and value of the extent
/// that maps them (`None`: nothing does).
pub(crate) type Piece<'a, T> = (Range<u64>, Option<(u64, &'a T)>);

/// Disjoint byte ranges, each with a value.
#[derive(Debug, Clone)]
pub(crate) struct ExtentMap<T> {
    /// Start of each extent → (end, value). Extents never overlap.
    map: BTreeMap<u64, (u64, T)>,
}

impl<T> Default for ExtentMap<T> {
    fn default() -> Self {
        ExtentMap {
            map: BTreeMap::new(),
        }
    }
}

impl<T: Clone> ExtentMap<T> {
    /// The parts of `range` no extent covers, in order.
    pub(crate) fn gaps(&self, range: Range<u64>) -> Vec<Range<u64>> {
        let mut gaps = Vec::new();
        if range.is_empty() {
            return gaps;
        }
        let mut pos = range.start;
        if let Some((_, &(end, _))) = self.map.range(..range.start).next_back()
            && end > pos
        {
            pos = end.min(range.end);
        }
        for (&start, &(end, _)) in self.map.range(range.start..range.end) {
            if start > pos {
                gaps.push(pos..start);
            }
            pos = pos.max(end);
            if pos >= range.end {
                break;
            }
        }
        if pos < range.end {
            gaps.push(pos..range.end);
        }
        gaps
    }

    /// Maps the parts of `range` not mapped yet to `value` (what is already
    /// mapped keeps its value); returns how many bytes were newly mapped.
    pub(crate) fn fill(&mut self, range: Range<u64>, value: T) -> u64 {
        let mut added = 0;
        for gap in self.gaps(range) {
            added += gap.end - gap.start;
            self.map.insert(gap.start, (gap.end, value.clone()));
        }
        added
    }

    /// `range` cut at extent boundaries, in order: each piece with the value
    /// that maps it, or `None` where nothing does.
    pub(crate) fn pieces(&self, range: Range<u64>) -> Vec<Piece<'_, T>> {
        let mut out = Vec::new();
        if range.is_empty() {
            return out;
        }
        let mut pos = range.start;
        let first = self
            .map
            .range(..range.start)
            .next_back()
            .filter(|(_, (end, _))| *end > range.start);
        let rest = self.map.range(range.start..range.end);
        for (&start, (end, value)) in first.into_iter().chain(rest) {
            if start > pos {
                out.push((pos..start, None));
                pos = start;
            }
            let piece_end = (*end).min(range.end);
            // The value comes with its extent's start, so a caller can find
            // where inside the extent the piece begins.
            out.push((pos..piece_end, Some((start, value))));
            pos = piece_end;
            if pos >= range.end {
                break;
            }
        }
        if pos < range.end {
            out.push((pos..range.end, None));
        }
        out
    }

    /// Every extent, in order of offset.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Range<u64>, &T)> {
        self.map
            .iter()
            .map(|(&start, (end, value))| (start..*end, value))
    }

    /// How many bytes are mapped.
    pub(crate) fn covered(&self) -> u64 {
        self.map.iter().map(|(start, (end, _))| end - start).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_claims_win_and_gaps_are_exact() {
        let mut m = ExtentMap::default();
        assert_eq!(m.fill(10..20, 'a'), 10);
        assert_eq!(m.fill(15..30, 'b'), 10);
        assert_eq!(m.fill(0..12, 'c'), 10);
        assert_eq!(m.gaps(0..40), vec![30..40]);
        let got: Vec<_> = m.iter().map(|(r, v)| (r, *v)).collect();
        assert_eq!(got, vec![(0..10, 'c'), (10..20, 'a'), (20..30, 'b')]);
        assert_eq!(m.covered(), 30);
    }

    #[test]
    fn pieces_cover_the_range_in_order() {
        let mut m = ExtentMap::default();
        m.fill(10..20, 'a');
        m.fill(30..40, 'b');
        let got: Vec<_> = m
            .pieces(15..35)
            .into_iter()
            .map(|(r, v)| (r, v.map(|(s, c)| (s, *c))))
            .collect();
        assert_eq!(
            got,
            vec![
                (15..20, Some((10, 'a'))),
                (20..30, None),
                (30..35, Some((30, 'b')))
            ]
        );
        assert_eq!(m.pieces(0..5), vec![(0..5, None)]);
        assert!(m.pieces(7..7).is_empty());
    }
}
