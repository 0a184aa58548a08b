//! A port of `numpy.random.default_rng(seed)` (numpy 2.4.6): SeedSequence, PCG64 with its
//! one-word 32-bit buffer, `random_interval`, `permutation` and Lemire `integers`.
//!
//! `datasets.Dataset.train_test_split` shuffles with `default_rng(seed).permutation(n)`, so this
//! is what makes nergrid's splits the same as the Python pipeline's, index for index. The
//! algorithm is written out in `shared/fixtures/NUMPY_PERMUTATION.md`; section numbers below
//! refer to it.

const INIT_A: u32 = 0x43b0_d7e5;
const MULT_A: u32 = 0x931e_8875;
const INIT_B: u32 = 0x8b51_f9dd;
const MULT_B: u32 = 0x58f3_8ded;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;
const POOL_SIZE: usize = 4;
const PCG_MULT: u128 = (2_549_297_995_355_413_924u128 << 64) + 4_865_540_595_714_422_341;

/// numpy's `SeedSequence` with an empty spawn key and a pool of four words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedSequence {
    pool: [u32; POOL_SIZE],
}

/// A seed as numpy's 32-bit entropy words, least significant first (section 1).
pub fn seed_words(seed: u128) -> Vec<u32> {
    let mut words = vec![(seed & 0xffff_ffff) as u32];
    let mut rest = seed >> 32;
    while rest > 0 {
        words.push((rest & 0xffff_ffff) as u32);
        rest >>= 32;
    }
    words
}

impl SeedSequence {
    /// Mixes entropy words into the pool (section 2).
    pub fn new(entropy: &[u32]) -> Self {
        let mut hash_const = INIT_A;
        let mut hashmix = |value: u32| {
            let mut value = value ^ hash_const;
            hash_const = hash_const.wrapping_mul(MULT_A);
            value = value.wrapping_mul(hash_const);
            value ^ (value >> XSHIFT)
        };
        let mut pool = [0u32; POOL_SIZE];
        for (i, slot) in pool.iter_mut().enumerate() {
            *slot = hashmix(entropy.get(i).copied().unwrap_or(0));
        }
        for src in 0..POOL_SIZE {
            for dst in (0..POOL_SIZE).filter(|&dst| dst != src) {
                pool[dst] = mix(pool[dst], hashmix(pool[src]));
            }
        }
        for &word in entropy.iter().skip(POOL_SIZE) {
            for slot in pool.iter_mut() {
                *slot = mix(*slot, hashmix(word));
            }
        }
        SeedSequence { pool }
    }

    /// The sequence for a non-negative integer seed.
    pub fn from_seed(seed: u128) -> Self {
        SeedSequence::new(&seed_words(seed))
    }

    pub fn pool(&self) -> [u32; POOL_SIZE] {
        self.pool
    }

    /// `generate_state(n_words, uint32)` (section 3).
    pub fn generate_state_u32(&self, n_words: usize) -> Vec<u32> {
        let mut hash_const = INIT_B;
        (0..n_words)
            .map(|i| {
                let mut value = self.pool[i % POOL_SIZE] ^ hash_const;
                hash_const = hash_const.wrapping_mul(MULT_B);
                value = value.wrapping_mul(hash_const);
                value ^ (value >> XSHIFT)
            })
            .collect()
    }

    /// `generate_state(n_words, uint64)`: pairs of u32 words, the even word as the low half.
    pub fn generate_state_u64(&self, n_words: usize) -> Vec<u64> {
        self.generate_state_u32(2 * n_words)
            .chunks(2)
            .map(|pair| u64::from(pair[0]) | (u64::from(pair[1]) << 32))
            .collect()
    }
}

fn mix(x: u32, y: u32) -> u32 {
    let r = MIX_MULT_L.wrapping_mul(x).wrapping_sub(MIX_MULT_R.wrapping_mul(y));
    r ^ (r >> XSHIFT)
}

/// The state of a PCG64 bit generator as `bit_generator.state` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pcg64State {
    pub state: u128,
    pub inc: u128,
    pub has_uint32: bool,
    /// The buffered high half; only meaningful when `has_uint32` is set.
    pub uinteger: u32,
}

/// `numpy.random.Generator(PCG64(seed_sequence))`.
#[derive(Debug, Clone)]
pub struct NumpyRng {
    state: Pcg64State,
}

impl NumpyRng {
    /// `numpy.random.default_rng(seed)`.
    pub fn new(seed: u128) -> Self {
        NumpyRng::from_seed_sequence(&SeedSequence::from_seed(seed))
    }

    /// PCG64 seeded from a seed sequence (section 4): word 0 is the HIGH half.
    pub fn from_seed_sequence(seq: &SeedSequence) -> Self {
        let s = seq.generate_state_u64(4);
        let initstate = (u128::from(s[0]) << 64) | u128::from(s[1]);
        let initseq = (u128::from(s[2]) << 64) | u128::from(s[3]);
        let inc = (initseq << 1) | 1;
        let mut rng = NumpyRng { state: Pcg64State { state: 0, inc, has_uint32: false, uinteger: 0 } };
        rng.step();
        rng.state.state = rng.state.state.wrapping_add(initstate);
        rng.step();
        rng
    }

    pub fn state(&self) -> Pcg64State {
        self.state
    }

    fn step(&mut self) {
        self.state.state = self.state.state.wrapping_mul(PCG_MULT).wrapping_add(self.state.inc);
    }

    /// `next_uint64` / `random_raw`: XSL-RR output of the advanced state (section 5).
    pub fn next64(&mut self) -> u64 {
        self.step();
        let state = self.state.state;
        let x = ((state >> 64) as u64) ^ (state as u64);
        x.rotate_right((state >> 122) as u32)
    }

    /// `next_uint32`: the low half of a fresh 64-bit output, then its buffered high half.
    pub fn next32(&mut self) -> u32 {
        if self.state.has_uint32 {
            self.state.has_uint32 = false;
            return self.state.uinteger;
        }
        let value = self.next64();
        self.state.has_uint32 = true;
        self.state.uinteger = (value >> 32) as u32;
        value as u32
    }

    /// A uniform integer in `[0, max]` by masking and rejection (section 7).
    pub fn random_interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mask = u64::MAX >> max.leading_zeros();
        loop {
            let value = if max <= u64::from(u32::MAX) { u64::from(self.next32()) & mask } else { self.next64() & mask };
            if value <= max {
                return value;
            }
        }
    }

    /// `Generator.permutation(n)`: Fisher–Yates from the top index down.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut items: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.random_interval(i as u64) as usize;
            items.swap(i, j);
        }
        items
    }

    /// `Generator.integers(low, high, size)` for int64, high exclusive (section 8).
    pub fn integers(&mut self, low: i64, high: i64, size: usize) -> Vec<i64> {
        let range = (high as u64).wrapping_sub(1).wrapping_sub(low as u64);
        (0..size).map(|_| (low as u64).wrapping_add(self.bounded(range)) as i64).collect()
    }

    fn bounded(&mut self, range: u64) -> u64 {
        match range {
            0 => 0,
            r if r == u64::from(u32::MAX) => u64::from(self.next32()),
            r if r < u64::from(u32::MAX) => u64::from(self.lemire32(r as u32)),
            u64::MAX => self.next64(),
            r => self.lemire64(r),
        }
    }

    fn lemire32(&mut self, range: u32) -> u32 {
        let excl = range + 1;
        let mut m = u64::from(self.next32()) * u64::from(excl);
        if (m as u32) < excl {
            let threshold = (u32::MAX - range) % excl;
            while (m as u32) < threshold {
                m = u64::from(self.next32()) * u64::from(excl);
            }
        }
        (m >> 32) as u32
    }

    fn lemire64(&mut self, range: u64) -> u64 {
        let excl = range + 1;
        let mut m = u128::from(self.next64()) * u128::from(excl);
        if (m as u64) < excl {
            let threshold = (u64::MAX - range) % excl;
            while (m as u64) < threshold {
                m = u128::from(self.next64()) * u128::from(excl);
            }
        }
        (m >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_42_matches_the_worked_example() {
        let seq = SeedSequence::from_seed(42);
        assert_eq!(seq.pool(), [0x631d3606, 0x07ae90ae, 0x6fc4be28, 0x2ced5c75]);
        let mut rng = NumpyRng::from_seed_sequence(&seq);
        assert_eq!(rng.state().state, 0xcea44f6798798f2aacbc7c9d68860ac8);
        assert_eq!(rng.state().inc, 0xfa505436c9a8416e66caf2e28d25abff);
        assert_eq!(rng.permutation(10), [5, 6, 0, 7, 3, 2, 4, 9, 1, 8]);
    }

    #[test]
    fn next32_returns_low_half_then_buffered_high_half() {
        let mut a = NumpyRng::new(42);
        let mut b = NumpyRng::new(42);
        let word = a.next64();
        assert_eq!(b.next32(), word as u32);
        assert_eq!(b.next32(), (word >> 32) as u32);
    }

    #[test]
    fn seed_words_split_large_seeds() {
        assert_eq!(seed_words(0), [0]);
        assert_eq!(seed_words(1 << 32), [0, 1]);
        assert_eq!(seed_words(u64::MAX as u128), [u32::MAX, u32::MAX]);
    }

    #[test]
    fn small_permutations_draw_nothing() {
        let mut rng = NumpyRng::new(7);
        let before = rng.state();
        assert!(rng.permutation(0).is_empty());
        assert_eq!(rng.permutation(1), [0]);
        assert_eq!(rng.state(), before);
    }
}
