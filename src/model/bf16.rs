//! bf16 matrix products of the fused CPU path: both operands rounded to bf16 (round to
//! nearest even, as torch's autocast), products accumulated in f32.
//!
//! Three kernel families, the best one the CPU has chosen once per process: AMX tiles
//! (`tdpbf16ps` through `asm!`, after Linux grants the tile state with `arch_prctl`),
//! AVX512-BF16 dot products (`_mm512_dpbf16_ps`), or an emulation that rounds the operands
//! to bf16 and multiplies them with the f32 kernels (the same rounded inputs, f32 speed).
//! [`FORCE_VARIABLE`] forces a lower family. The binary stays portable: the AVX-512 and AMX
//! code only runs after the run-time checks.
//!
//! AMX and AVX512-BF16 read the same packed operands: `a` as bf16 rows, `b` in the
//! pair-interleaved ("VNNI") layout the dot-product instructions take, `[k / 2][n][2]`. Rows
//! of `a` and columns of `b` are padded to a multiple of [`TILE`]; the depth k to a multiple
//! of [`TILE`] for AMX tiles, of 2 for AVX512-BF16 (padding the product's inner dimension
//! only costs work). Padding is zero, so edges need no special code. A whole 32 x 32 block
//! of the result is written into `dst` (AVX512-BF16) or goes through a scratch block (AMX,
//! and blocks at the edges).

use super::kernels::{self, View};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Rows, columns and depth of one block of the packed products.
const TILE: usize = 32;

/// Multiply-adds from which a product's row blocks run in parallel.
const PARALLEL_WORK: usize = 1 << 21;

/// The environment variable that forces a lower kernel family.
pub const FORCE_VARIABLE: &str = "NERGRID_CPU_KERNELS";

/// A family of bf16 kernels, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// bf16-rounded operands multiplied by the f32 kernels.
    Emulated,
    Avx512Bf16,
    Amx,
}

impl Family {
    const ALL: [Family; 3] = [Family::Amx, Family::Avx512Bf16, Family::Emulated];

    /// The name `result.json`, `log.txt` and [`FORCE_VARIABLE`] use.
    pub fn name(self) -> &'static str {
        match self {
            Family::Amx => "amx",
            Family::Avx512Bf16 => "avx512_bf16",
            Family::Emulated => "emulated",
        }
    }

    fn parse(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Every family this CPU can run, best first.
    pub fn available() -> Vec<Family> {
        Family::ALL.into_iter().filter(|&f| f <= best_on_this_cpu()).collect()
    }
}

/// The family a run uses and the line `log.txt` gets about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub family: Family,
    pub note: String,
}

/// The family to run given the best the CPU has and the value of [`FORCE_VARIABLE`] (unset or
/// empty: the best). A forced family above the CPU's gives the CPU's best, and says so.
pub fn choose(best: Family, forced: Option<&str>) -> Result<Selection, String> {
    let forced = forced.map(str::trim).filter(|s| !s.is_empty());
    let Some(name) = forced else {
        let note = match best {
            Family::Emulated => "bf16 kernels: emulated (the CPU has neither AMX nor AVX512-BF16: operands rounded \
                                 to bf16, products computed in f32, at f32 speed)"
                .to_string(),
            _ => format!("bf16 kernels: {}", best.name()),
        };
        return Ok(Selection { family: best, note });
    };
    let asked = Family::parse(name).ok_or_else(|| {
        let names: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
        format!("{FORCE_VARIABLE}: unknown kernel family \"{name}\" (one of {})", names.join(", "))
    })?;
    let family = asked.min(best);
    let note = match asked > best {
        true => format!(
            "bf16 kernels: {} ({FORCE_VARIABLE}={name}, which this CPU cannot run; its best is {})",
            family.name(),
            best.name()
        ),
        false => {
            format!("bf16 kernels: {} (forced by {FORCE_VARIABLE}; the CPU's best is {})", family.name(), best.name())
        }
    };
    Ok(Selection { family, note })
}

/// [`choose`] with this CPU and the process environment.
pub fn select() -> Result<Selection, String> {
    choose(best_on_this_cpu(), std::env::var(FORCE_VARIABLE).ok().as_deref())
}

/// The best family this CPU (and its operating system) runs; detected once per process.
pub fn best_on_this_cpu() -> Family {
    static BEST: OnceLock<Family> = OnceLock::new();
    *BEST.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Family {
    // Each family implies the ones below it: the AMX path also runs the AVX512-BF16 kernel
    // when forced to, so it needs that too.
    let avx512_bf16 = std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bf16");
    match (avx512_bf16, avx512_bf16 && amx::enable()) {
        (_, true) => Family::Amx,
        (true, false) => Family::Avx512Bf16,
        _ => Family::Emulated,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Family {
    Family::Emulated
}

/// The name of the f32 kernels `gemm` dispatches to on this CPU (its rule: AVX-512F, else FMA,
/// else scalar code), for the run's record.
pub fn f32_family() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return "gemm_avx512";
        }
        if std::is_x86_feature_detected!("fma") {
            return "gemm_fma";
        }
        "gemm_scalar"
    }
    #[cfg(not(target_arch = "x86_64"))]
    "gemm"
}

/// `x` rounded to the nearest bf16 (ties to even), as its 16 bits; a NaN stays a (quiet) NaN.
/// Branch-free, so that loops over slices of it vectorise.
#[inline(always)]
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    // Non-NaN bit patterns are at most 0xFF80_0000, so their sum cannot overflow; a NaN's may,
    // but its result is not used.
    let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16;
    let quiet_nan = (bits >> 16) | 0x40;
    match bits & 0x7FFF_FFFF > 0x7F80_0000 {
        true => quiet_nan as u16,
        false => rounded as u16,
    }
}

/// `dst[i] = to_bf16(src[i])` over the shorter of the two, vectorised.
#[inline(always)]
fn convert(dst: &mut [u16], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, &x)| *d = to_bf16(x));
}

/// `x` rounded to the nearest bf16, as an f32.
#[inline(always)]
pub fn round_bf16(x: f32) -> f32 {
    f32::from_bits((to_bf16(x) as u32) << 16)
}

/// `dst = a·b` (or `+=` when `accumulate`) with bf16 operands and f32 accumulation; `dst`
/// rows `dst_stride` apart. `threads` > 1 spreads blocks of rows over rayon's threads.
#[allow(clippy::too_many_arguments)]
pub fn product(family: Family, dst: &mut [f32], dst_stride: usize, a: View, b: View, accumulate: bool, threads: usize) {
    let (m, n, k) = (a.rows(), b.cols(), a.cols());
    assert_eq!(a.cols(), b.rows(), "matmul: inner dimensions differ");
    assert!(m == 0 || (m - 1) * dst_stride + n <= dst.len(), "matmul: dst too small");
    if m == 0 || n == 0 || k == 0 {
        return kernels::product_f32(dst, dst_stride, a, b, accumulate, threads);
    }
    let family = family.min(best_on_this_cpu());
    // Below a few million multiply-adds, handing blocks to other threads costs more than it
    // saves.
    let threads = if m * n * k < PARALLEL_WORK { 1 } else { threads };
    match family {
        Family::Emulated => {
            let (ra, rb) = (rounded(a), rounded(b));
            let (va, vb) = (rounded_view(&ra, m, k), rounded_view(&rb, k, n));
            kernels::product_f32(dst, dst_stride, va, vb, accumulate, threads)
        }
        _ => {
            let depth = match family {
                Family::Amx => k.next_multiple_of(TILE),
                _ => k.next_multiple_of(2),
            };
            let packed_a = PackedA::new(a, depth, threads);
            let packed_b = PackedB::new(b, depth, threads);
            blocks(family, &packed_a, &packed_b, dst, dst_stride, (m, n), accumulate, threads);
        }
    }
}

/// `v` with every element rounded to bf16, in a copy laid out as `v` is in memory (row-major,
/// or column-major for a transposed view), so that the copy reads and writes runs that are
/// adjacent: the copy and the view to read it as.
fn rounded(v: View) -> (Vec<f32>, bool) {
    let transposed = v.col_stride() != 1 && v.row_stride() == 1;
    let v = if transposed { v.t() } else { v };
    let mut out = vec![0.0; v.rows() * v.cols()];
    let (cols, rs, cs) = (v.cols(), v.row_stride(), v.col_stride());
    kernels::vectorised(
        #[inline(always)]
        || {
            for (r, row) in out.chunks_mut(cols.max(1)).enumerate() {
                match cs {
                    1 => row.iter_mut().zip(&v.data()[r * rs..r * rs + cols]).for_each(|(d, &x)| *d = round_bf16(x)),
                    _ => row.iter_mut().enumerate().for_each(|(c, d)| *d = round_bf16(v.data()[r * rs + c * cs])),
                }
            }
        },
    );
    (out, transposed)
}

/// The view of a [`rounded`] copy of a `rows x cols` view.
fn rounded_view(copy: &(Vec<f32>, bool), rows: usize, cols: usize) -> View<'_> {
    match copy.1 {
        true => View::new(&copy.0, cols, rows).t(),
        false => View::new(&copy.0, rows, cols),
    }
}

/// `a` (m x k) as bf16 rows of `depth` (k rounded up for the kernel family), `rows` rounded
/// up to [`TILE`].
struct PackedA {
    data: Vec<u16>,
    rows: usize,
    depth: usize,
}

impl PackedA {
    fn new(a: View, depth: usize, threads: usize) -> PackedA {
        let rows = a.rows().next_multiple_of(TILE);
        assert!(depth >= a.cols() && depth.is_multiple_of(2));
        let mut data = vec![0u16; rows * depth];
        let (cols, rs, cs) = (a.cols(), a.row_stride(), a.col_stride());
        if rs == 1 && cs != 1 {
            columns_into_rows(&mut data, a, depth, threads);
            return PackedA { data, rows, depth };
        }
        // One block of TILE rows per task. Runs of elements adjacent in memory are converted
        // together (vectorised), then placed.
        let fill = |(block, out): (usize, &mut [u16])| {
            let height = TILE.min(a.rows().saturating_sub(block * TILE));
            let first = block * TILE;
            kernels::vectorised(
                #[inline(always)]
                || {
                    if cs == 1 {
                        // Rows contiguous: each row converts straight into its packed row.
                        for r in 0..height {
                            let src = &a.data()[(first + r) * rs..(first + r) * rs + cols];
                            convert(&mut out[r * depth..r * depth + cols], src);
                        }
                    } else {
                        for r in 0..height {
                            (0..cols).for_each(|c| out[r * depth + c] = to_bf16(a.data()[(first + r) * rs + c * cs]));
                        }
                    }
                },
            )
        };
        match threads {
            1 => data.chunks_mut(TILE * depth).enumerate().for_each(fill),
            _ => data.par_chunks_mut(TILE * depth).enumerate().for_each(fill),
        }
        PackedA { data, rows, depth }
    }
}

/// How many of `units` blocks one task packs: all of them on one thread, else two tasks per
/// thread.
fn per_task(units: usize, threads: usize) -> usize {
    match threads {
        1 => units,
        t => units.div_ceil(2 * t),
    }
}

/// [`PackedA`]'s rows of a transposed view (column c of `a` contiguous in memory): a task
/// takes a group of row blocks and walks along the columns, converting [`TILE`] columns' runs
/// for the group into a block that it then writes out row by row.
fn columns_into_rows(data: &mut [u16], a: View, depth: usize, threads: usize) {
    let (m, cols, cs) = (a.rows(), a.cols(), a.col_stride());
    let src = a.data();
    let group = per_task(m.div_ceil(TILE), threads);
    let fill = |(g, out): (usize, &mut [u16])| {
        let first = g * group * TILE;
        let height = (group * TILE).min(m - first);
        // square[c][r]: column c0 + c, row r0 + r; small enough to stay in L1.
        const SUB: usize = 4 * TILE;
        let mut square = [[0u16; SUB]; TILE];
        kernels::vectorised(
            #[inline(always)]
            || {
                for r0 in (0..height).step_by(SUB) {
                    let rows = SUB.min(height - r0);
                    for c0 in (0..cols).step_by(TILE) {
                        let run = TILE.min(cols - c0);
                        for (c, column) in square.iter_mut().enumerate().take(run) {
                            let start = (c0 + c) * cs + first + r0;
                            convert(&mut column[..rows], &src[start..start + rows]);
                        }
                        for r in 0..rows {
                            let row = &mut out[(r0 + r) * depth + c0..(r0 + r) * depth + c0 + run];
                            row.iter_mut().zip(&square[..run]).for_each(|(d, column)| *d = column[r]);
                        }
                    }
                }
            },
        )
    };
    match threads {
        1 => data.chunks_mut(group * TILE * depth).enumerate().for_each(fill),
        _ => data.par_chunks_mut(group * TILE * depth).enumerate().for_each(fill),
    }
}

/// Two bf16 values as the pair the dot-product instructions read: `low` first in memory.
#[inline(always)]
fn pair(low: f32, high: f32) -> u32 {
    to_bf16(low) as u32 | (to_bf16(high) as u32) << 16
}

/// `b` (k x n) in panels of [`TILE`] columns, each panel `depth / 2` rows of [`TILE`] pairs:
/// element (2p + t, j) at `((j / TILE) * depth / 2 + p) * 2 * TILE + (j % TILE) * 2 + t`, with k
/// rounded up to `depth` and n to [`TILE`]. A panel is contiguous, so a kernel streams it.
/// Held as u32 pairs (bf16 `2p` in the low half, `2p + 1` in the high half).
struct PackedB {
    data: Vec<u32>,
    cols: usize,
    depth: usize,
}

impl PackedB {
    fn new(b: View, depth: usize, threads: usize) -> PackedB {
        let cols = b.cols().next_multiple_of(TILE);
        assert!(depth >= b.rows() && depth.is_multiple_of(2));
        let mut data = vec![0u32; depth / 2 * cols];
        let (k_len, rs, cs) = (b.rows(), b.row_stride(), b.col_stride());
        if cs == 1 && rs != 1 {
            rows_into_panels(&mut data, b, depth, threads);
            return PackedB { data, cols, depth };
        }
        let src = b.data();
        // One panel per task; runs adjacent in memory are converted together, then placed.
        let fill = |(panel, out): (usize, &mut [u32])| {
            let width = TILE.min(b.cols() - panel * TILE);
            let first = panel * TILE;
            let pairs = k_len / 2;
            kernels::vectorised(
                #[inline(always)]
                || {
                    if rs == 1 {
                        // bᵀ row-major (a weight read as x·Wᵀ): each column of the panel is
                        // contiguous, so its pairs are too. TILE / 2 pairs of every column at a
                        // time go into a square (column-major), which is written out row by row.
                        let mut square = [[0u32; TILE / 2]; TILE];
                        for p0 in (0..k_len.div_ceil(2)).step_by(TILE / 2) {
                            let run = (TILE / 2).min(k_len.div_ceil(2) - p0);
                            for (jj, column) in square.iter_mut().enumerate().take(width) {
                                let start = (first + jj) * cs + 2 * p0;
                                let full = run.min(pairs - p0.min(pairs));
                                let values = &src[start..start + 2 * full];
                                column.iter_mut().zip(values.chunks_exact(2)).for_each(|(d, v)| *d = pair(v[0], v[1]));
                                if full < run {
                                    // k is odd: the last pair's second element is padding.
                                    column[full] = pair(src[start + 2 * full], 0.0);
                                }
                            }
                            for pp in 0..run {
                                let row = &mut out[(p0 + pp) * TILE..(p0 + pp) * TILE + width];
                                row.iter_mut().zip(&square[..width]).for_each(|(d, column)| *d = column[pp]);
                            }
                        }
                    } else {
                        let at = |k: usize, j: usize| src[k * rs + (first + j) * cs];
                        for p in 0..k_len.div_ceil(2) {
                            for jj in 0..width {
                                let high = if 2 * p + 1 < k_len { at(2 * p + 1, jj) } else { 0.0 };
                                out[p * TILE + jj] = pair(at(2 * p, jj), high);
                            }
                        }
                    }
                },
            )
        };
        match threads {
            1 => data.chunks_mut(depth / 2 * TILE).enumerate().for_each(fill),
            _ => data.par_chunks_mut(depth / 2 * TILE).enumerate().for_each(fill),
        }
        PackedB { data, cols, depth }
    }

    /// The panel of columns `col..col + TILE`, as bf16 values.
    fn panel(&self, col: usize) -> &[u16] {
        let pairs = &self.data[col * self.depth / 2..(col + TILE) * self.depth / 2];
        // SAFETY: the pointer comes from a live slice of `pairs.len()` u32s borrowed from
        // `self` (the result borrows `self` too), so its `2 * pairs.len()` u16s are in bounds
        // and initialised; u16's alignment (2) divides u32's (4); every bit pattern is a u16.
        unsafe { std::slice::from_raw_parts(pairs.as_ptr() as *const u16, pairs.len() * 2) }
    }
}

/// [`PackedB`]'s panels of a row-major `b`: rows 2p and 2p + 1 interleave into pair row p of
/// every panel. A task takes a group of panels and walks down the rows, so that it reads
/// each row's run for the group once, in order (walking down one panel at a time would read
/// 128-byte pieces of rows a whole row apart).
fn rows_into_panels(data: &mut [u32], b: View, depth: usize, threads: usize) {
    let (k_len, n, rs) = (b.rows(), b.cols(), b.row_stride());
    let (src, panel_len) = (b.data(), depth / 2 * TILE);
    let group = per_task(n.div_ceil(TILE), threads);
    let fill = |(g, out): (usize, &mut [u32])| {
        let first = g * group * TILE;
        let width = (group * TILE).min(n - first);
        kernels::vectorised(
            #[inline(always)]
            || {
                for p in 0..k_len.div_ceil(2) {
                    let low = &src[2 * p * rs + first..2 * p * rs + first + width];
                    let high = match 2 * p + 1 < k_len {
                        true => &src[(2 * p + 1) * rs + first..(2 * p + 1) * rs + first + width],
                        false => &[][..],
                    };
                    for (q, (low, out)) in low.chunks(TILE).zip(out.chunks_mut(panel_len)).enumerate() {
                        let row = &mut out[p * TILE..p * TILE + low.len()];
                        match high.is_empty() {
                            true => row.iter_mut().zip(low).for_each(|(d, &l)| *d = pair(l, 0.0)),
                            false => {
                                let high = &high[q * TILE..q * TILE + low.len()];
                                row.iter_mut().zip(low.iter().zip(high)).for_each(|(d, (&l, &h))| *d = pair(l, h))
                            }
                        }
                    }
                }
            },
        )
    };
    match threads {
        1 => data.chunks_mut(group * panel_len).enumerate().for_each(fill),
        _ => data.par_chunks_mut(group * panel_len).enumerate().for_each(fill),
    }
}

/// Every [`TILE`]-row block of the `m x n` result, in parallel when `threads` > 1.
#[allow(clippy::too_many_arguments)]
fn blocks(
    family: Family,
    a: &PackedA,
    b: &PackedB,
    dst: &mut [f32],
    stride: usize,
    (m, n): (usize, usize),
    accumulate: bool,
    threads: usize,
) {
    assert!(a.depth == b.depth && a.rows >= m && b.cols >= n);
    let dst = &mut dst[..(m - 1) * stride + n];
    let row_block = |(i, out): (usize, &mut [f32])| {
        let rows = TILE.min(m - i * TILE);
        row_block(family, a, b, i * TILE, out, stride, (rows, n), accumulate)
    };
    match threads {
        1 => dst.chunks_mut(TILE * stride).enumerate().for_each(row_block),
        _ => dst.par_chunks_mut(TILE * stride).enumerate().for_each(row_block),
    }
}

/// One block of [`TILE`] rows starting at `row` (only `rows` of them real): every column block.
#[allow(clippy::too_many_arguments)]
fn row_block(
    family: Family,
    a: &PackedA,
    b: &PackedB,
    row: usize,
    out: &mut [f32],
    stride: usize,
    (rows, cols): (usize, usize),
    accumulate: bool,
) {
    let mut scratch = [0f32; TILE * TILE];
    let a_block = &a.data[row * a.depth..(row + TILE) * a.depth];
    #[cfg(target_arch = "x86_64")]
    let _tiles = (family == Family::Amx).then(amx::Tiles::configure);
    for col in (0..cols).step_by(TILE) {
        #[cfg(target_arch = "x86_64")]
        match family {
            // SAFETY: `Tiles::configure` ran on this thread (the family is only Amx when the
            // CPU and kernel allow tiles); the kernels check the operands' lengths.
            Family::Amx => unsafe { amx::block(a_block, b.panel(col), a.depth, &mut scratch) },
            // A whole block goes straight into `out`, added to it when accumulating.
            _ if rows == TILE && cols - col >= TILE => {
                // SAFETY: `product` lowers the family to what the CPU has, and `detect` only
                // finds Avx512Bf16 or Amx when the CPU has AVX512F and AVX512-BF16. The kernel
                // asserts that `out` holds TILE rows of TILE at `stride` (true here: `rows` is
                // TILE and TILE columns remain from `col`).
                unsafe { avx512::block(a_block, b.panel(col), a.depth, TILE, &mut out[col..], stride, accumulate) };
                continue;
            }
            // SAFETY: as above; the scratch block is TILE x TILE with stride TILE.
            _ => unsafe { avx512::block(a_block, b.panel(col), a.depth, rows, &mut scratch, TILE, false) },
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("bf16 kernel {family:?} without x86_64");
        let width = TILE.min(cols - col);
        for r in 0..rows {
            let dst = &mut out[r * stride + col..r * stride + col + width];
            let src = &scratch[r * TILE..r * TILE + width];
            match accumulate {
                true => dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s),
                false => dst.copy_from_slice(src),
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::TILE;
    use std::arch::x86_64::*;

    /// A 32 x 32 block: rows of `a` (TILE x depth, bf16) times a panel of `b` (`depth / 2`
    /// rows of TILE pairs), into `out` (TILE rows of TILE, `stride` apart), or added to it
    /// when `accumulate`. Only the groups of 8 rows that hold one of the first `rows` are
    /// computed (a's rows past the matrix are padding).
    ///
    /// # Safety
    /// The CPU has AVX512F and AVX512-BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn block(
        a: &[u16],
        panel: &[u16],
        depth: usize,
        rows: usize,
        out: &mut [f32],
        stride: usize,
        accumulate: bool,
    ) {
        assert!(a.len() >= TILE * depth && panel.len() >= depth * TILE && depth.is_multiple_of(2));
        assert!(stride >= TILE && out.len() >= (TILE - 1) * stride + TILE);
        for r0 in (0..rows.min(TILE)).step_by(8) {
            let mut acc = [[_mm512_setzero_ps(); 2]; 8];
            for p in 0..depth / 2 {
                // SAFETY (reads): p < depth / 2 keeps both vectors of the pair row in `panel`,
                // and (r0 + i) * depth + 2p + 1 < TILE * depth keeps the pair of `a` in `a`.
                let bp = panel.as_ptr().add(p * 2 * TILE);
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp as *const _));
                let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(TILE) as *const _));
                for (i, acc) in acc.iter_mut().enumerate() {
                    let pair = (a.as_ptr().add((r0 + i) * depth + 2 * p) as *const i32).read_unaligned();
                    let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(pair));
                    acc[0] = _mm512_dpbf16_ps(acc[0], av, b0);
                    acc[1] = _mm512_dpbf16_ps(acc[1], av, b1);
                }
            }
            for (i, acc) in acc.iter().enumerate() {
                // SAFETY (reads when accumulating, and writes): row r0 + i < TILE and columns
                // < TILE lie inside `out` by the second assert.
                let row = out.as_mut_ptr().add((r0 + i) * stride);
                let (mut low, mut high) = (acc[0], acc[1]);
                if accumulate {
                    low = _mm512_add_ps(low, _mm512_loadu_ps(row));
                    high = _mm512_add_ps(high, _mm512_loadu_ps(row.add(16)));
                }
                _mm512_storeu_ps(row, low);
                _mm512_storeu_ps(row.add(16), high);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod amx {
    use super::TILE;
    use std::arch::asm;

    /// Asks Linux for the AMX tile data state (without it the first tile instruction traps),
    /// after checking CPUID for AMX-TILE and AMX-BF16. True when tiles may be used. Called
    /// once per process (through `best_on_this_cpu`).
    pub(super) fn enable() -> bool {
        // CPUID leaf 7 exists on every x86_64 CPU with AVX-512 (checked by the caller).
        let leaf = std::arch::x86_64::__cpuid_count(7, 0);
        let (amx_bf16, amx_tile) = (leaf.edx & (1 << 22) != 0, leaf.edx & (1 << 24) != 0);
        amx_bf16 && amx_tile && request_tile_state()
    }

    #[cfg(target_os = "linux")]
    fn request_tile_state() -> bool {
        const ARCH_GET_XCOMP_PERM: libc::c_long = 0x1022;
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        let mut granted: u64 = 0;
        // SAFETY: arch_prctl with these codes reads its integer argument or writes one u64.
        unsafe {
            if libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0 {
                return false;
            }
            if libc::syscall(libc::SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &mut granted as *mut u64) != 0 {
                return false;
            }
        }
        granted & (1 << XFEATURE_XTILEDATA) != 0
    }

    #[cfg(not(target_os = "linux"))]
    fn request_tile_state() -> bool {
        false
    }

    /// The tile configuration of this thread while alive: tiles 0-3 hold the 2 x 2 blocks of
    /// the result, 4-5 two 16-row blocks of `a`, 6-7 two 16-column blocks of `b`, each 16
    /// rows of 64 bytes.
    pub(super) struct Tiles;

    impl Tiles {
        pub(super) fn configure() -> Tiles {
            let mut config = [0u8; 64];
            config[0] = 1; // palette 1
            for t in 0..8 {
                config[16 + 2 * t..18 + 2 * t].copy_from_slice(&64u16.to_le_bytes());
                config[48 + t] = 16;
            }
            // SAFETY: only constructed when `enable` succeeded; the configuration is valid for
            // palette 1 (8 tiles of at most 16 rows of 64 bytes).
            unsafe { asm!("ldtilecfg [{}]", in(reg) config.as_ptr(), options(nostack, readonly)) };
            Tiles
        }
    }

    impl Drop for Tiles {
        fn drop(&mut self) {
            // SAFETY: releases the state `configure` set up on this thread.
            unsafe { asm!("tilerelease", options(nostack, nomem)) };
        }
    }

    /// As `avx512::block`, with tiles.
    ///
    /// # Safety
    /// A [`Tiles`] is alive on this thread.
    pub(super) unsafe fn block(a: &[u16], panel: &[u16], depth: usize, out: &mut [f32; TILE * TILE]) {
        assert!(a.len() >= TILE * depth && panel.len() >= depth * TILE && depth.is_multiple_of(TILE) && depth > 0);
        let a_stride = depth * 2; // bytes between rows of a
        let b_stride = TILE * 4; // bytes between pair rows of the panel
        let out_stride = TILE * 4;
        // Per step of 32 in depth: a's two 16-row tiles move 64 bytes right, the panel's two
        // 16-column tiles (64 bytes apart) move 16 pair rows down.
        // SAFETY: the caller keeps a `Tiles` alive on this thread, so the tile configuration
        // (8 tiles of 16 rows x 64 bytes) is loaded. The assert above bounds every access: the
        // a tiles read rows r < TILE at bytes [r * 2 * depth, r * 2 * depth + 2 * depth) of `a`
        // over depth / TILE steps of 64 bytes; the panel tiles read `depth / 2` pair rows of
        // TILE * 4 bytes, all of `panel`; the stores write the 32 x 32 f32 of `out`.
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "2:",
            "tileloadd tmm4, [{a} + {sa}*1]",
            "tileloadd tmm5, [{a2} + {sa}*1]",
            "tileloadd tmm6, [{b} + {sb}*1]",
            "tileloadd tmm7, [{b} + {sb}*1 + 64]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {a}, 64",
            "add {a2}, 64",
            "add {b}, {b_step}",
            "dec {steps}",
            "jnz 2b",
            "tilestored [{c} + {sc}*1], tmm0",
            "tilestored [{c} + {sc}*1 + 64], tmm1",
            "tilestored [{c2} + {sc}*1], tmm2",
            "tilestored [{c2} + {sc}*1 + 64], tmm3",
            a = inout(reg) a.as_ptr() => _,
            a2 = inout(reg) a.as_ptr().add(16 * depth) => _,
            b = inout(reg) panel.as_ptr() => _,
            sa = in(reg) a_stride,
            sb = in(reg) b_stride,
            b_step = in(reg) 16 * b_stride,
            steps = inout(reg) depth / TILE => _,
            c = in(reg) out.as_mut_ptr(),
            c2 = in(reg) out.as_mut_ptr().add(16 * TILE),
            sc = in(reg) out_stride,
            options(nostack),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(round_bf16(1.0), 1.0);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
        assert_eq!(round_bf16(1.0 + 1.0 / 256.0), 1.0);
        assert_eq!(round_bf16(1.0 + 3.0 / 256.0), 1.0 + 4.0 / 256.0);
        // Just past halfway between -2 and -2 - 2^-6 (the spacing in [2, 4)).
        assert_eq!(round_bf16(-2.0 - 1.0 / 128.0 - 1e-4), -2.0 - 1.0 / 64.0);
        assert!(round_bf16(f32::NAN).is_nan());
        assert_eq!(round_bf16(f32::MAX), f32::INFINITY);
        assert_eq!(round_bf16(f32::NEG_INFINITY), f32::NEG_INFINITY);
    }

    /// The branch-free rounding against the textbook one (NaN kept quiet, otherwise round to
    /// nearest even) over a spread of bit patterns, both signs, NaNs and infinities included.
    #[test]
    fn branch_free_rounding_equals_the_plain_definition() {
        let plain = |x: f32| -> u16 {
            let bits = x.to_bits();
            if x.is_nan() {
                return ((bits >> 16) | 0x40) as u16;
            }
            ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
        };
        let specials = [0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0xFFFF_FFFF, 0x7F80_0001, 0x0000_8000, 0x3F80_8000];
        for bits in (0..=u32::MAX).step_by(65_521).chain(specials) {
            let x = f32::from_bits(bits);
            assert_eq!(to_bf16(x), plain(x), "bits {bits:#010x}");
        }
        // The slice form (the one that vectorises) gives the same bits.
        let inputs: Vec<f32> = (0..1000u32).map(|i| f32::from_bits(i.wrapping_mul(4_294_967_291 / 999))).collect();
        let mut packed = vec![0u16; inputs.len()];
        convert(&mut packed, &inputs);
        assert!(packed.iter().zip(&inputs).all(|(&b, &x)| b == plain(x)));
        let mut few = [0u16; 4];
        convert(&mut few, &[1.0, -0.0, 1.0 + 1.0 / 256.0, f32::NAN]);
        assert_eq!(few, [0x3F80, 0x8000, 0x3F80, 0x7FC0]);
    }

    #[test]
    fn forcing_picks_a_lower_family_and_says_so() {
        let best = choose(Family::Amx, None).unwrap();
        assert_eq!((best.family, best.note.as_str()), (Family::Amx, "bf16 kernels: amx"));
        let forced = choose(Family::Amx, Some("avx512_bf16")).unwrap();
        assert_eq!(forced.family, Family::Avx512Bf16);
        assert!(forced.note.contains("forced by NERGRID_CPU_KERNELS"), "{}", forced.note);
        let above = choose(Family::Avx512Bf16, Some("amx")).unwrap();
        assert_eq!(above.family, Family::Avx512Bf16);
        assert!(above.note.contains("cannot run"), "{}", above.note);
        let none = choose(Family::Emulated, Some("")).unwrap();
        assert!(none.note.contains("neither AMX nor AVX512-BF16"), "{}", none.note);
        let bad = choose(Family::Amx, Some("avx2")).unwrap_err();
        assert_eq!(bad, "NERGRID_CPU_KERNELS: unknown kernel family \"avx2\" (one of amx, avx512_bf16, emulated)");
    }

    /// Values with bits below bf16's precision, so that a kernel that skipped the rounding
    /// would be caught.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 997.0 - 1.003).collect()
    }

    /// `a·b` in f64 from the bf16-rounded operands.
    fn reference(a: View, b: View) -> Vec<f64> {
        let mut out = vec![0.0; a.rows() * b.cols()];
        for i in 0..a.rows() {
            for j in 0..b.cols() {
                out[i * b.cols() + j] = (0..a.cols())
                    .map(|k| {
                        let x = round_bf16(a.data()[i * a.row_stride() + k * a.col_stride()]) as f64;
                        x * round_bf16(b.data()[k * b.row_stride() + j * b.col_stride()]) as f64
                    })
                    .sum();
            }
        }
        out
    }

    /// Every family this CPU has, over shapes with edges, a single row and depths that are not
    /// a multiple of the tile, with transposed and strided views and accumulation.
    #[test]
    fn every_family_matches_the_rounded_reference_over_odd_shapes() {
        // The last is above PARALLEL_WORK, so that packing and blocks run in several tasks.
        let shapes = [
            (1, 1, 1),
            (1, 77, 33),
            (5, 3, 2),
            (33, 31, 65),
            (64, 64, 64),
            (70, 45, 100),
            (2, 130, 7),
            (150, 200, 131),
        ];
        for family in Family::available() {
            for &(m, n, k) in &shapes {
                for threads in [1, 2] {
                    check(family, m, n, k, threads);
                }
            }
        }
    }

    fn check(family: Family, m: usize, n: usize, k: usize, threads: usize) {
        // a: m x k read from a wider matrix (row stride k + 3), then transposed from k x m;
        // b: k x n read transposed from n x k, then row-major.
        let (a_data, b_data) = (values(m * (k + 3), 7), values(n * k, 11));
        let layouts = [
            (View::strided(&a_data, m, k, k + 3), View::new(&b_data, n, k).t()),
            (View::new(&a_data[..m * k], k, m).t(), View::new(&b_data, k, n)),
        ];
        for (a, b) in layouts {
            check_views(family, a, b, threads);
        }
    }

    fn check_views(family: Family, a: View, b: View, threads: usize) {
        let (m, n, k) = (a.rows(), b.cols(), a.cols());
        let want = reference(a, b);
        // Into the right part of a wider destination, once set and once accumulated onto 1.
        let stride = n + 5;
        for accumulate in [false, true] {
            let mut dst = vec![1.0f32; m * stride];
            product(family, &mut dst[2..], stride, a, b, accumulate, threads);
            for i in 0..m {
                assert_eq!(dst[i * stride..i * stride + 2], [1.0, 1.0], "{family:?} left of the block");
                for j in 0..n {
                    let got = dst[i * stride + 2 + j] as f64 - if accumulate { 1.0 } else { 0.0 };
                    let w = want[i * n + j];
                    // f32 accumulation of k products of magnitude <= 1.
                    let tol = 2e-6 * k as f64 + 1e-6;
                    assert!(
                        (got - w).abs() <= tol,
                        "{family:?} {m}x{n}x{k} threads {threads} acc {accumulate} at ({i},{j}): {got} vs {w}"
                    );
                }
                if stride > n + 2 {
                    assert!(dst[i * stride + 2 + n..(i + 1) * stride].iter().all(|&x| x == 1.0));
                }
            }
        }
    }

    #[test]
    fn the_cpu_of_this_machine_is_detected_consistently() {
        let available = Family::available();
        assert_eq!(available.first(), Some(&best_on_this_cpu()));
        assert_eq!(available.last(), Some(&Family::Emulated));
    }
}
