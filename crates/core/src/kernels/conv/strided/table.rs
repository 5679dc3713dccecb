//! [`Table`]: the offset tables the strided jobs read (row starts, tap starts), each with
//! its largest entries, so a job checks its bounds in O(1) per image: rows of 8 elements
//! at offsets 0, 8 and 16 reach element 24 (`Table::of(vec![0, 8, 16]).reach([8])`).

/// A table of offsets into a buffer (row starts, tap starts; `K` parts per entry) with each
/// part's largest entry, found once when built: a job checks its bounds against the maxima
/// instead of entry by entry (checked per image, that was 2–4% of the conv autoencoder's
/// epoch).
pub(super) struct Table<const K: usize> {
    at: Vec<[usize; K]>,
    max: [usize; K],
}

impl<const K: usize> Table<K> {
    /// The table of `at`.
    pub(super) fn new(at: Vec<[usize; K]>) -> Self {
        let mut max = [0; K];
        for e in &at {
            for (m, &v) in max.iter_mut().zip(e) {
                *m = (*m).max(v);
            }
        }
        Table { at, max }
    }

    /// Entries.
    pub(super) fn len(&self) -> usize {
        self.at.len()
    }

    /// The entries.
    pub(super) fn entries(&self) -> &[[usize; K]] {
        &self.at
    }

    /// One past the furthest element the entries reach when part `k` spans `lens[k]`
    /// elements (0 for an empty table).
    pub(super) fn reach(&self, lens: [usize; K]) -> usize {
        if self.at.is_empty() {
            return 0;
        }
        self.max.iter().zip(lens).map(|(m, l)| m + l).max().unwrap_or(0)
    }
}

impl Table<1> {
    /// The table of single offsets `at`.
    pub(super) fn of(at: Vec<usize>) -> Self {
        Table::new(at.into_iter().map(|a| [a]).collect())
    }

    /// The offsets.
    pub(super) fn flat(&self) -> &[usize] {
        self.at.as_flattened()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_is_the_furthest_end_of_any_part() {
        assert_eq!(Table::of(vec![0, 8, 16]).reach([8]), 24);
        assert_eq!(Table::of(vec![]).reach([8]), 0);
        // Part 1 reaches further although its starts are smaller.
        let t = Table::new(vec![[10, 3], [2, 9]]);
        assert_eq!(t.reach([4, 7]), 16);
        assert_eq!(t.reach([0, 0]), 10);
        assert_eq!((t.len(), t.entries()[1]), (2, [2, 9]));
        assert_eq!(Table::of(vec![5, 1]).flat(), &[5, 1]);
    }
}
