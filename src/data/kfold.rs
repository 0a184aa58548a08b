//! scikit-learn's `KFold(n_splits=k, shuffle=True, random_state=seed)`, index for index.
//!
//! KFold shuffles `arange(n)` with numpy's legacy `RandomState(seed).shuffle`: MT19937 seeded
//! by `init_genrand(seed)` (a 32-bit seed, not PCG64), then Fisher–Yates from the top index
//! down, each `j` drawn in `[0, i]` by mask-and-reject on single 32-bit outputs. The shuffled
//! array is cut into k consecutive folds, the first `n % k` one longer; train and test come
//! back sorted because scikit-learn selects them with masks over `arange(n)`.

use super::error::DataError;

const STATE_WORDS: usize = 624;
const SHIFT_WORDS: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// The Mersenne Twister MT19937 as numpy's legacy `RandomState` seeds it with an integer.
pub struct Mt19937 {
    state: [u32; STATE_WORDS],
    position: usize,
}

impl Mt19937 {
    /// `init_genrand(seed)`.
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; STATE_WORDS];
        state[0] = seed;
        for i in 1..STATE_WORDS {
            let previous = state[i - 1];
            state[i] = 1_812_433_253u32.wrapping_mul(previous ^ (previous >> 30)).wrapping_add(i as u32);
        }
        Mt19937 { state, position: STATE_WORDS }
    }

    /// `genrand_int32`: the next tempered 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        if self.position >= STATE_WORDS {
            self.regenerate();
        }
        let mut y = self.state[self.position];
        self.position += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn regenerate(&mut self) {
        for i in 0..STATE_WORDS {
            let y = (self.state[i] & UPPER_MASK) | (self.state[(i + 1) % STATE_WORDS] & LOWER_MASK);
            let twisted = (y >> 1) ^ if y & 1 == 1 { MATRIX_A } else { 0 };
            self.state[i] = self.state[(i + SHIFT_WORDS) % STATE_WORDS] ^ twisted;
        }
        self.position = 0;
    }

    /// numpy's legacy `random_interval(max)`: a value in `[0, max]` by mask-and-reject.
    fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mask = u32::MAX >> max.leading_zeros();
        loop {
            let value = self.next_u32() & mask;
            if value <= max {
                return value;
            }
        }
    }

    /// `RandomState.shuffle` of a 1-d array.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.interval(i as u32) as usize;
            items.swap(i, j);
        }
    }
}

/// One fold of a k-fold split: sorted `train` and `test` sentence positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// `KFold(n_splits=k, shuffle=True, random_state=seed).split(range(n))`, or scikit-learn's
/// `ValueError` as a `DataError::Split`.
pub fn kfold(n: usize, k: usize, seed: u64) -> Result<Vec<Fold>, DataError> {
    if k < 2 {
        return Err(DataError::Split(format!(
            "k-fold cross-validation requires at least one train/test split by setting n_splits=2 or more, \
             got n_splits={k}"
        )));
    }
    if k > n {
        return Err(DataError::Split(format!(
            "cannot have number of splits n_splits={k} greater than the number of samples: n_samples={n}"
        )));
    }
    let seed = u32::try_from(seed)
        .map_err(|_| DataError::Split(format!("a k-fold seed must be between 0 and 2**32 - 1, got {seed}")))?;
    if n > u32::MAX as usize {
        return Err(DataError::Split(format!("k-fold supports at most 2**32 - 1 sentences, got {n}")));
    }
    let mut order: Vec<usize> = (0..n).collect();
    Mt19937::new(seed).shuffle(&mut order);
    let mut folds = Vec::with_capacity(k);
    let mut start = 0;
    for fold in 0..k {
        let size = n / k + usize::from(fold < n % k);
        let mut test = order[start..start + size].to_vec();
        test.sort_unstable();
        let mut in_test = vec![false; n];
        test.iter().for_each(|&i| in_test[i] = true);
        let train = (0..n).filter(|&i| !in_test[i]).collect();
        folds.push(Fold { train, test });
        start += size;
    }
    Ok(folds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_the_reference_output() {
        // The reference mt19937ar.c with init_genrand(5489): first output 3499211612;
        // the 10000th output is 4123659995 (the C++ standard's check value).
        let mut mt = Mt19937::new(5489);
        assert_eq!(mt.next_u32(), 3_499_211_612);
        let mut mt = Mt19937::new(5489);
        let last = (0..10_000).map(|_| mt.next_u32()).last().unwrap();
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn folds_partition_the_sentences_with_longer_folds_first() {
        let folds = kfold(11, 3, 7).unwrap();
        let sizes: Vec<usize> = folds.iter().map(|f| f.test.len()).collect();
        assert_eq!(sizes, [4, 4, 3]);
        let mut all: Vec<usize> = folds.iter().flat_map(|f| f.test.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..11).collect::<Vec<_>>());
        for f in &folds {
            assert_eq!(f.train.len() + f.test.len(), 11);
            assert!(f.train.windows(2).all(|w| w[0] < w[1]) && f.test.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn scikit_learn_errors_are_reproduced() {
        assert!(kfold(10, 1, 0).is_err());
        assert!(kfold(3, 4, 0).is_err());
        assert!(kfold(10, 2, 1 << 32).is_err());
        assert_eq!(kfold(2, 2, u64::from(u32::MAX)).unwrap().len(), 2);
    }
}
