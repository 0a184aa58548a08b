//! Batching: a seeded permutation of the training set each epoch, batches split into
//! micro-batches for gradient accumulation, targets padded with the ignore index.

use crate::model::IGNORE_INDEX;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The order of the `n` training sentences in `epoch` (1-based), a function of the seed.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Streams 0 and 1 are the initialisation and dropout draws of the same seed.
    rng.set_stream(1 + epoch as u64);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    order
}

/// Splits one optimizer batch into at most `parts` micro-batches of near-equal size.
pub fn micro_batches(batch: &[usize], parts: usize) -> Vec<&[usize]> {
    let size = batch.len().div_ceil(parts.max(1)).max(1);
    batch.chunks(size).collect()
}

/// Number of optimizer steps per epoch: `ceil(n / batch_size)`.
pub fn steps_per_epoch(n: usize, batch_size: usize) -> usize {
    n.div_ceil(batch_size.max(1))
}

/// Row-major targets of sequences padded to the longest: [rows * longest].
pub fn padded_targets(rows: &[&[i64]]) -> Vec<i64> {
    let longest = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut out = vec![IGNORE_INDEX; rows.len() * longest];
    for (i, row) in rows.iter().enumerate() {
        out[i * longest..i * longest + row.len()].copy_from_slice(row);
    }
    out
}

/// Evaluation batches: indices grouped by length so that little padding is computed
/// (padding is masked, so predictions do not depend on the grouping).
pub fn eval_batches(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (lengths[i], i));
    order.chunks(batch_size.max(1)).map(<[usize]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_a_seeded_permutation_that_changes_per_epoch() {
        let a = epoch_order(50, 7, 1);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(50, 7, 1));
        assert_ne!(a, epoch_order(50, 7, 2));
        assert_ne!(a, epoch_order(50, 8, 1));
    }

    #[test]
    fn micro_batches_cover_the_batch() {
        let batch = [4, 8, 1, 9, 3];
        assert_eq!(micro_batches(&batch, 1), vec![&batch[..]]);
        assert_eq!(micro_batches(&batch, 2), vec![&batch[..3], &batch[3..]]);
        assert_eq!(micro_batches(&batch, 8).len(), 5);
    }

    #[test]
    fn steps_round_up() {
        assert_eq!(steps_per_epoch(666, 16), 42);
        assert_eq!(steps_per_epoch(16, 16), 1);
        assert_eq!(steps_per_epoch(0, 16), 0);
    }

    #[test]
    fn targets_pad_with_ignore_index() {
        let out = padded_targets(&[&[1, 2, 3], &[4]]);
        assert_eq!(out, vec![1, 2, 3, 4, -100, -100]);
    }

    #[test]
    fn eval_batches_group_by_length_stably() {
        let b = eval_batches(&[5, 2, 9, 2, 5], 2);
        assert_eq!(b, vec![vec![1, 3], vec![0, 4], vec![2]]);
    }
}
