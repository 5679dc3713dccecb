//! torchvision's `BalancedPositiveNegativeSampler`: per image, up to `batch_size_per_image`
//! labelled predictions, at most `positive_fraction` of them positive, the rest negative,
//! each side drawn uniformly without replacement.

use nabla_core::Generator;

/// How many predictions per image a loss sees, and the largest share of positives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BalancedSampler {
    /// Predictions sampled per image (fewer when not enough are labelled).
    pub batch_size_per_image: usize,
    /// The largest fraction of them that is positive.
    pub positive_fraction: f32,
}

impl BalancedSampler {
    /// The sampled positives and negatives (each in increasing index order) among `labels`:
    /// ≥ 1 positive (a class), 0 negative, < 0 ignored.
    pub fn sample(&self, labels: &[i64], g: &mut Generator) -> (Vec<usize>, Vec<usize>) {
        let pos: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] >= 1).collect();
        let neg: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == 0).collect();
        let want_pos = (self.batch_size_per_image as f32 * self.positive_fraction) as usize;
        let num_pos = want_pos.min(pos.len());
        let num_neg = (self.batch_size_per_image - num_pos).min(neg.len());
        (pick(pos, num_pos, g), pick(neg, num_neg, g))
    }
}

/// `k` of `items` drawn without replacement (a partial Fisher–Yates shuffle), sorted.
fn pick(mut items: Vec<usize>, k: usize, g: &mut Generator) -> Vec<usize> {
    let n = items.len();
    for i in 0..k.min(n) {
        let j = i + g.below((n - i) as u64) as usize;
        items.swap(i, j);
    }
    items.truncate(k);
    items.sort_unstable();
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_batch_size_and_fraction() {
        let s = BalancedSampler {
            batch_size_per_image: 16,
            positive_fraction: 0.25,
        };
        // 10 positives (labels 1..=3), 30 negatives, 5 ignored.
        let mut labels = vec![0i64; 30];
        labels.extend((0..10).map(|i| 1 + i % 3));
        labels.extend([-1; 5]);
        let mut g = Generator::new(3);
        let (pos, neg) = s.sample(&labels, &mut g);
        assert_eq!((pos.len(), neg.len()), (4, 12));
        assert!(pos.iter().all(|&i| labels[i] >= 1) && neg.iter().all(|&i| labels[i] == 0));
        assert!(pos.windows(2).all(|w| w[0] < w[1]) && neg.windows(2).all(|w| w[0] < w[1]));
        // Another draw picks other negatives.
        let (_, neg2) = s.sample(&labels, &mut g);
        assert_ne!(neg, neg2);
    }

    #[test]
    fn few_positives_leave_the_rest_to_negatives() {
        let s = BalancedSampler {
            batch_size_per_image: 8,
            positive_fraction: 0.5,
        };
        let labels = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -1];
        let (pos, neg) = s.sample(&labels, &mut Generator::new(0));
        assert_eq!((pos, neg.len()), (vec![0], 7));
        // Too few of both: everything labelled is taken.
        let (pos, neg) = s.sample(&[1, 0, -1], &mut Generator::new(0));
        assert_eq!((pos, neg), (vec![0], vec![1]));
    }

    #[test]
    fn every_negative_is_drawn_about_equally_often() {
        let s = BalancedSampler {
            batch_size_per_image: 5,
            positive_fraction: 0.0,
        };
        let labels = vec![0i64; 10];
        let mut hits = [0usize; 10];
        let mut g = Generator::new(7);
        for _ in 0..2000 {
            for i in s.sample(&labels, &mut g).1 {
                hits[i] += 1;
            }
        }
        // Each is picked with probability 1/2: 1000 ± a few standard deviations (~22).
        assert!(hits.iter().all(|&h| (900..1100).contains(&h)), "{hits:?}");
    }
}
