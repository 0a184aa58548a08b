//! Host (CPU) kernels of the fast training path on f32 slices: strided matrix products
//! (through `gemm`, which picks AVX/AVX-512 at run time, or with bf16 operands through
//! [`super::bf16`]), layer norm, fused attention, GELU
//! and the bias, dropout and residual steps around them, each with its backward pass.
//!
//! Rows are processed in parallel with rayon. Reductions over rows (bias and norm gradients)
//! add fixed-size chunk partials in order, so results do not depend on the thread count.

use super::approx;
use super::bf16::{self, Family};
use super::config::Activation;
use rayon::prelude::*;

/// Rows per partial sum in column reductions (fixed: part of the result's rounding).
const REDUCE_ROWS: usize = 32;

/// A read-only matrix view: element (r, c) is `data[r * row_stride + c * col_stride]`.
///
/// The fields are private and every constructor checks that each element lies inside `data`:
/// [`matmul`] hands the pointer and strides to unsafe `gemm`, which relies on that invariant.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> View<'a> {
    /// A row-major `rows x cols` matrix. Panics when `data` is too short.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> View<'a> {
        View::strided(data, rows, cols, cols)
    }

    /// `rows x cols` with rows `row_stride` apart (a column block of a wider matrix). Panics
    /// when an element would lie outside `data`.
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> View<'a> {
        match View::checked(data, rows, cols, row_stride) {
            Some(view) => view,
            None => panic!("view {rows}x{cols} with row stride {row_stride} exceeds {} elements", data.len()),
        }
    }

    /// [`View::strided`], or `None` when an element would lie outside `data` (or the last
    /// index overflows).
    pub fn checked(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Option<View<'a>> {
        let fits = match (rows, cols) {
            (0, _) | (_, 0) => true,
            _ => (rows - 1)
                .checked_mul(row_stride)
                .and_then(|last| last.checked_add(cols))
                .is_some_and(|end| end <= data.len()),
        };
        fits.then_some(View { data, rows, cols, row_stride, col_stride: 1 })
    }

    /// The elements, shape and strides, read-only (the bf16 kernels pack from them).
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn row_stride(&self) -> usize {
        self.row_stride
    }

    pub fn col_stride(&self) -> usize {
        self.col_stride
    }

    /// The transpose (no copy): the same elements, so still inside `data`.
    pub fn t(self) -> View<'a> {
        View { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }
}

/// How the matrix products compute: in f32, or with operands rounded to bf16 and f32
/// accumulation on a kernel family. Everything else (norms, softmax, activations, the loss)
/// stays f32 either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Products {
    F32,
    Bf16(Family),
}

/// `dst = a·b` (or `dst += a·b` when `accumulate`); `dst` is `a.rows x b.cols` with rows
/// `dst_stride` apart. Large products use every rayon thread.
pub fn matmul(p: Products, dst: &mut [f32], dst_stride: usize, a: View, b: View, accumulate: bool) {
    let threads = match a.rows * a.cols * b.cols {
        work if work < 1 << 15 => 1,
        _ => rayon::current_num_threads(),
    };
    product(p, dst, dst_stride, a, b, accumulate, threads)
}

/// [`matmul`] on the calling thread (inside parallel loops).
pub fn matmul_serial(p: Products, dst: &mut [f32], dst_stride: usize, a: View, b: View, accumulate: bool) {
    product(p, dst, dst_stride, a, b, accumulate, 1)
}

/// Floating-point operations of every matrix product since the process started (2·m·n·k
/// each), for throughput figures.
pub fn product_flop() -> u64 {
    PRODUCT_FLOP.load(std::sync::atomic::Ordering::Relaxed)
}

/// Multiply-adds below which bf16 products take the emulated path (measured: a 32 x 32 x 64
/// product ran at 9 GFLOP/s on AMX with packing, 19 emulated, on a loaded 2-core machine).
const SMALL_PRODUCT: usize = 1 << 17;

static PRODUCT_FLOP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn product(p: Products, dst: &mut [f32], dst_stride: usize, a: View, b: View, accumulate: bool, threads: usize) {
    let flop = 2 * (a.rows * a.cols * b.cols) as u64;
    PRODUCT_FLOP.fetch_add(flop, std::sync::atomic::Ordering::Relaxed);
    match p {
        Products::F32 => product_f32(dst, dst_stride, a, b, accumulate, threads),
        // Packing costs more than it saves on small products (a head's attention scores):
        // those round the operands and multiply in f32, the same numbers in another order.
        Products::Bf16(_) if a.rows * a.cols * b.cols < SMALL_PRODUCT => {
            bf16::product(Family::Emulated, dst, dst_stride, a, b, accumulate, threads)
        }
        Products::Bf16(family) => bf16::product(family, dst, dst_stride, a, b, accumulate, threads),
    }
}

/// The f32 product through `gemm`.
pub(super) fn product_f32(dst: &mut [f32], dst_stride: usize, a: View, b: View, accumulate: bool, threads: usize) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    assert_eq!(a.cols, b.rows, "matmul: inner dimensions differ");
    assert!(m == 0 || (m - 1) * dst_stride + n <= dst.len(), "matmul: dst too small");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.chunks_mut(dst_stride).take(m).for_each(|r| r[..n].fill(0.0));
        }
        return;
    }
    let parallelism = match threads {
        1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    };
    // SAFETY: gemm reads a[i * row_stride + j * col_stride] for i < m, j < k (and b likewise
    // for k x n), which every `View` constructor checked lies inside its slice (the fields are
    // private, `t` only swaps them); it writes dst[i * dst_stride + j] for i < m, j < n, which
    // the assert above checked. m, n, k > 0 here. `dst` is a `&mut`, so it aliases neither.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// `x·wᵀ` for a row-major `x` (n x inner) and a weight `w` (out x inner): n x out.
pub fn linear(p: Products, x: &[f32], n: usize, w: &[f32], out: usize) -> Vec<f32> {
    let inner = w.len() / out;
    let mut y = vec![0.0; n * out];
    matmul(p, &mut y, out, View::new(x, n, inner), View::new(w, out, inner).t(), false);
    y
}

/// Column sums of a `rows x width` matrix (rows `stride` apart), added to `acc`.
pub fn add_column_sums(acc: &mut [f32], m: &[f32], width: usize, stride: usize) {
    let rows = if m.is_empty() { 0 } else { (m.len() - width) / stride + 1 };
    let partials: Vec<Vec<f32>> = (0..rows.div_ceil(REDUCE_ROWS))
        .into_par_iter()
        .map(|chunk| {
            let mut part = vec![0.0f32; width];
            let end = ((chunk + 1) * REDUCE_ROWS).min(rows);
            vectorised(
                #[inline(always)]
                || {
                    for r in chunk * REDUCE_ROWS..end {
                        let row = &m[r * stride..r * stride + width];
                        for i in 0..width {
                            part[i] += row[i];
                        }
                    }
                },
            );
            part
        })
        .collect();
    vectorised(
        #[inline(always)]
        || {
            for part in partials {
                let (acc, part) = (&mut acc[..width], &part[..width]);
                for i in 0..width {
                    acc[i] += part[i];
                }
            }
        },
    );
}

/// Adds `bias` to every row of `m` (rows of `bias.len()` values).
pub fn add_bias(m: &mut [f32], bias: &[f32]) {
    let rows = rows_per_task(bias.len());
    m.par_chunks_mut(bias.len() * rows).for_each(|block| {
        vectorised(
            #[inline(always)]
            || {
                for row in block.chunks_mut(bias.len()) {
                    row.iter_mut().zip(bias).for_each(|(x, &b)| *x += b);
                }
            },
        )
    });
}

/// Rows of `width` elements per parallel task: tasks of about [`ELEMENTS`] elements.
fn rows_per_task(width: usize) -> usize {
    (ELEMENTS / width.max(1)).max(1)
}

/// `n` zeros, written in parallel chunks as the memory is first touched. `vec![0.0; n]`
/// leaves large buffers untouched, so the first reads map the shared zero page and the first
/// writes then copy it, one page and one flush of every core's TLB at a time, on one thread:
/// for the optimizer's moments of a BERT-base model that was a second of the first step.
pub fn zeroed(n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(n);
    v.spare_capacity_mut().par_chunks_mut(ELEMENTS * 4).for_each(|c| {
        c.iter_mut().for_each(|x| {
            x.write(0.0);
        })
    });
    // SAFETY: the loop above wrote every element of the spare capacity, which is at least `n`
    // (`with_capacity`), so the first `n` are initialised; f32 has no drop.
    unsafe { v.set_len(n) };
    v
}

/// What the layer-norm backward pass needs.
#[derive(Debug, Clone, Default)]
pub struct NormCache {
    /// Normalised inputs, (x - mean) * rstd.
    pub xhat: Vec<f32>,
    /// 1 / sqrt(var + eps) per row.
    pub rstd: Vec<f32>,
}

/// Lanes of the partial sums in [`sum`]: one AVX-512 register of f32.
const LANES: usize = 16;

/// The sum of `f(a[i], b[i], c[i])` over the shortest of the three, accumulated in [`LANES`]
/// interleaved partial sums (element i into lane i % LANES) that are then added in order: it
/// vectorises (a single running sum waits on every add), and gives the same result on every
/// machine and thread count.
#[inline(always)]
fn sum(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (mut ca, mut cb, mut cc) = (a.chunks_exact(LANES), b.chunks_exact(LANES), c.chunks_exact(LANES));
    for ((xa, xb), xc) in (&mut ca).zip(&mut cb).zip(&mut cc) {
        for l in 0..LANES {
            lanes[l] += f(xa[l], xb[l], xc[l]);
        }
    }
    let tail = ca.remainder().iter().zip(cb.remainder()).zip(cc.remainder());
    for (lane, ((&xa, &xb), &xc)) in lanes.iter_mut().zip(tail) {
        *lane += f(xa, xb, xc);
    }
    lanes.iter().sum()
}

/// Row-wise layer norm of `x` (rows of `gamma.len()`), as `layer_norm_slow`.
pub fn layer_norm(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> (Vec<f32>, NormCache) {
    let width = gamma.len();
    let rows = x.len() / width;
    let mut y = vec![0.0; x.len()];
    let mut cache = NormCache { xhat: vec![0.0; x.len()], rstd: vec![0.0; rows] };
    let block = rows_per_task(width);
    y.par_chunks_mut(width * block)
        .zip(cache.xhat.par_chunks_mut(width * block))
        .zip(cache.rstd.par_chunks_mut(block))
        .zip(x.par_chunks(width * block))
        .for_each(|(((y, xhat), rstd), x)| {
            vectorised(
                #[inline(always)]
                || {
                    let rows =
                        y.chunks_mut(width).zip(xhat.chunks_mut(width)).zip(rstd.iter_mut()).zip(x.chunks(width));
                    for (((y, xhat), rstd), x) in rows {
                        let mean = sum(x, x, x, |v, _, _| v) / width as f32;
                        let var = sum(x, x, x, |v, _, _| (v - mean) * (v - mean)) / width as f32;
                        *rstd = 1.0 / (var + eps).sqrt();
                        for i in 0..width {
                            xhat[i] = (x[i] - mean) * *rstd;
                            y[i] = xhat[i] * gamma[i] + beta[i];
                        }
                    }
                },
            )
        });
    (y, cache)
}

/// Gradient of the input of [`layer_norm`]; adds the parameter gradients to `dgamma` and
/// `dbeta`.
pub fn layer_norm_backward(
    dy: &[f32],
    cache: &NormCache,
    gamma: &[f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) -> Vec<f32> {
    let width = gamma.len();
    let mut dx = vec![0.0; dy.len()];
    let block = rows_per_task(width);
    dx.par_chunks_mut(width * block)
        .zip(dy.par_chunks(width * block))
        .zip(cache.xhat.par_chunks(width * block))
        .zip(cache.rstd.par_chunks(block))
        .for_each(|(((dx, dy), xhat), rstd)| {
            vectorised(
                #[inline(always)]
                || {
                    let rows = dx.chunks_mut(width).zip(dy.chunks(width)).zip(xhat.chunks(width)).zip(rstd);
                    for (((dx, dy), xhat), &rstd) in rows {
                        let mean = sum(dy, gamma, xhat, |d, g, _| d * g) / width as f32;
                        let mean_dot = sum(dy, gamma, xhat, |d, g, h| d * g * h) / width as f32;
                        for i in 0..width {
                            dx[i] = rstd * (dy[i] * gamma[i] - mean - xhat[i] * mean_dot);
                        }
                    }
                },
            )
        });
    let mut dy_xhat = cache.xhat.clone();
    zip_apply(&mut dy_xhat, dy, |o, d| *o *= d);
    add_column_sums(dgamma, &dy_xhat, width, width);
    add_column_sums(dbeta, dy, width, width);
    dx
}

/// `(a + bias) * keep + residual` row by row, in place in `a` (the input of the norm that
/// follows attention and feed-forward blocks).
pub fn bias_dropout_residual(a: &mut [f32], bias: &[f32], keep: Option<&[f32]>, residual: &[f32]) {
    let width = bias.len();
    let block = width * rows_per_task(width);
    a.par_chunks_mut(block).zip(residual.par_chunks(block)).enumerate().for_each(|(task, (a, res))| {
        let keep = keep.map(|k| &k[task * block..task * block + a.len()]);
        vectorised(
            #[inline(always)]
            || {
                for (r, (a, res)) in a.chunks_mut(width).zip(res.chunks(width)).enumerate() {
                    let keep = keep.map(|k| &k[r * width..(r + 1) * width]);
                    for i in 0..width {
                        let v = a[i] + bias[i];
                        a[i] = keep.map_or(v, |k| v * k[i]) + res[i];
                    }
                }
            },
        )
    });
}

/// Multiplies `m` by a dropout mask in place.
pub fn apply_keep(m: &mut [f32], keep: Option<&[f32]>) {
    if let Some(keep) = keep {
        zip_apply(m, keep, |x, k| *x *= k);
    }
}

/// Adds `bias` to `u` (the feed-forward pre-activation, in place) and returns GELU(u)
/// (exact, with erf).
#[cfg(test)]
pub fn bias_gelu(u: &mut [f32], bias: &[f32]) -> Vec<f32> {
    bias_gelu_or(u, bias, Activation::GeluErf)
}

/// Adds `bias` to `u` in place and returns `act(u)`.
pub fn bias_gelu_or(u: &mut [f32], bias: &[f32], act: Activation) -> Vec<f32> {
    add_bias(u, bias);
    let mut out = vec![0.0; u.len()];
    // One arm per activation: each loop is compiled (and vectorised) with its function inlined.
    match act {
        Activation::GeluErf => map_into(&mut out, u, approx::gelu),
        Activation::GeluTanh => map_into(&mut out, u, |x| gelu_tanh(x).0),
        Activation::Relu => map_into(&mut out, u, |x| x.max(0.0)),
    }
    out
}

/// `op(&mut out[i], input[i])` over the shorter of the two, in parallel chunks.
fn zip_apply(out: &mut [f32], input: &[f32], op: impl Fn(&mut f32, f32) + Sync) {
    out.par_chunks_mut(ELEMENTS).zip(input.par_chunks(ELEMENTS)).for_each(|(o, x)| {
        vectorised(
            #[inline(always)]
            || {
                // An index loop: an iterator's `fold` that is not inlined here would be
                // compiled for the baseline target.
                let n = o.len().min(x.len());
                let (o, x) = (&mut o[..n], &x[..n]);
                for i in 0..n {
                    op(&mut o[i], x[i]);
                }
            },
        )
    });
}

/// `out[i] = f(input[i])` in parallel chunks.
fn map_into(out: &mut [f32], input: &[f32], f: impl Fn(f32) -> f32 + Sync) {
    zip_apply(
        out,
        input,
        #[inline(always)]
        |o, x| *o = f(x),
    )
}

/// `d[i] *= f(input[i])` in parallel chunks.
fn scale_by(d: &mut [f32], input: &[f32], f: impl Fn(f32) -> f32 + Sync) {
    zip_apply(
        d,
        input,
        #[inline(always)]
        |d, x| *d *= f(x),
    )
}

/// Elements per parallel task in element-wise loops.
const ELEMENTS: usize = 1 << 14;

/// Runs `f` compiled for AVX-512 (16 wide) or AVX2 (8 wide), the best the CPU has, so that
/// its loops vectorise (the baseline x86-64 target has 4-wide SSE2 only). Results are
/// identical either way: no multiply-add is fused. Callers mark `f` `#[inline(always)]`:
/// a closure that is not inlined here is compiled for the baseline target.
#[inline(always)]
pub fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        /// # Safety
        /// The CPU has AVX-512 F, BW and VL and AVX2 (`f` is compiled to use them).
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
        unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        /// # Safety
        /// The CPU has AVX2.
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx2")
        {
            // SAFETY: the CPU supports AVX-512 F, BW and VL and AVX2.
            return unsafe { avx512(f) };
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// GELU's derivative applied to `dg` in place: dg * GELU'(u).
#[cfg(test)]
pub fn gelu_backward(dg: &mut [f32], u: &[f32]) {
    activation_backward(dg, u, Activation::GeluErf)
}

/// `d *= act'(u)` in place.
pub fn activation_backward(d: &mut [f32], u: &[f32], act: Activation) {
    match act {
        Activation::GeluErf => scale_by(d, u, approx::gelu_derivative),
        Activation::GeluTanh => scale_by(d, u, |x| gelu_tanh(x).1),
        Activation::Relu => scale_by(d, u, |x| if x > 0.0 { 1.0 } else { 0.0 }),
    }
}

/// The tanh approximation of GELU (candle's `gelu`) and its derivative.
fn gelu_tanh(x: f32) -> (f32, f32) {
    const C: f32 = 0.797_884_6; // sqrt(2 / pi)
    let inner = C * (x + 0.044715 * x * x * x);
    let t = inner.tanh();
    let value = 0.5 * x * (1.0 + t);
    let derivative = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * C * (1.0 + 3.0 * 0.044715 * x * x);
    (value, derivative)
}

/// Heads of one attention computation.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub heads: usize,
    pub head_size: usize,
}

impl AttentionShape {
    fn hidden(&self) -> usize {
        self.heads * self.head_size
    }
}

/// Splits `values` into consecutive mutable parts of the given sizes.
fn split_parts(mut values: &mut [f32], sizes: impl Iterator<Item = usize>) -> Vec<&mut [f32]> {
    let mut parts = Vec::new();
    for n in sizes {
        let (part, rest) = values.split_at_mut(n);
        parts.push(part);
        values = rest;
    }
    parts
}

/// Start of each sentence's block when sentence `i` takes `size(len_i)` elements.
fn starts(lengths: &[usize], size: impl Fn(usize) -> usize) -> Vec<usize> {
    let mut at = 0;
    lengths
        .iter()
        .map(|&l| {
            let start = at;
            at += size(l);
            start
        })
        .collect()
}

/// Multi-head self-attention over packed sentences (no padding): `qkv` holds queries, keys
/// and values of every token ([tokens, 3 * hidden]), sentence `i` being the next
/// `lengths[i]` rows. Returns the softmax probabilities (per sentence [heads, len, len],
/// before dropout) and the context ([tokens, hidden]); `keep` is the dropout mask of the
/// probabilities, laid out as they are. Sentences run in parallel, each head's products as
/// small single-threaded matrix products on strided column blocks.
pub fn attention(
    p: Products,
    qkv: &[f32],
    keep: Option<&[f32]>,
    lengths: &[usize],
    shape: AttentionShape,
) -> (Vec<f32>, Vec<f32>) {
    let (heads, hidden) = (shape.heads, shape.hidden());
    let tokens: usize = lengths.iter().sum();
    let prob_sizes = lengths.iter().map(|&l| heads * l * l);
    let mut probs = vec![0.0; prob_sizes.clone().sum()];
    let mut context = vec![0.0; tokens * hidden];
    let (token_at, prob_at) = (starts(lengths, |l| l), starts(lengths, |l| heads * l * l));
    let prob_parts = split_parts(&mut probs, prob_sizes);
    let context_parts = split_parts(&mut context, lengths.iter().map(|&l| l * hidden));
    prob_parts.into_par_iter().zip(context_parts).enumerate().for_each(|(b, (probs, context))| {
        let len = lengths[b];
        let qkv = &qkv[token_at[b] * 3 * hidden..(token_at[b] + len) * 3 * hidden];
        let keep = keep.map(|k| &k[prob_at[b]..prob_at[b] + heads * len * len]);
        let mut dropped = vec![0.0; len * len];
        for h in 0..heads {
            let probs = &mut probs[h * len * len..(h + 1) * len * len];
            let keep = keep.map(|k| &k[h * len * len..(h + 1) * len * len]);
            head_forward(p, qkv, keep, probs, &mut dropped, context, h, len, shape);
        }
    });
    (probs, context)
}

/// The query, key or value block (`part` 0, 1, 2) of head `h`: [len, head_size].
fn head_block(qkv: &[f32], part: usize, h: usize, len: usize, shape: AttentionShape) -> View<'_> {
    let hidden = shape.hidden();
    let start = part * hidden + h * shape.head_size;
    View::strided(&qkv[start..], len, shape.head_size, 3 * hidden)
}

#[allow(clippy::too_many_arguments)]
fn head_forward(
    p: Products,
    qkv: &[f32],
    keep: Option<&[f32]>,
    probs: &mut [f32],
    dropped: &mut [f32],
    context: &mut [f32],
    h: usize,
    len: usize,
    shape: AttentionShape,
) {
    let d = shape.head_size;
    let scale = 1.0 / (d as f32).sqrt();
    let block = |part| head_block(qkv, part, h, len, shape);
    matmul_serial(p, probs, len, block(0), block(1).t(), false);
    vectorised(
        #[inline(always)]
        || {
            for row in probs.chunks_mut(len) {
                row.iter_mut().for_each(|x| *x *= scale);
                softmax_in_place(row);
            }
        },
    );
    let weights = match keep {
        Some(keep) => {
            vectorised(
                #[inline(always)]
                || dropped.iter_mut().zip(probs.iter().zip(keep)).for_each(|(o, (&p, &k))| *o = p * k),
            );
            &*dropped
        }
        None => &*probs,
    };
    matmul_serial(p, &mut context[h * d..], shape.hidden(), View::new(weights, len, len), block(2), false);
}

/// Gradient of `qkv` from the gradient of the context of [`attention`].
pub fn attention_backward(
    products: Products,
    dcontext: &[f32],
    qkv: &[f32],
    probs: &[f32],
    keep: Option<&[f32]>,
    lengths: &[usize],
    shape: AttentionShape,
) -> Vec<f32> {
    let (heads, hidden) = (shape.heads, shape.hidden());
    let mut dqkv = vec![0.0; qkv.len()];
    let (token_at, prob_at) = (starts(lengths, |l| l), starts(lengths, |l| heads * l * l));
    let parts = split_parts(&mut dqkv, lengths.iter().map(|&l| l * 3 * hidden));
    parts.into_par_iter().enumerate().for_each(|(b, dqkv)| {
        let (len, t0, p0) = (lengths[b], token_at[b], prob_at[b]);
        let qkv = &qkv[t0 * 3 * hidden..(t0 + len) * 3 * hidden];
        let dcontext = &dcontext[t0 * hidden..(t0 + len) * hidden];
        let size = heads * len * len;
        let (probs, keep) = (&probs[p0..p0 + size], keep.map(|k| &k[p0..p0 + size]));
        let mut scratch = [vec![0.0; len * len], vec![0.0; len * len]];
        for h in 0..heads {
            let p = &probs[h * len * len..(h + 1) * len * len];
            let keep = keep.map(|k| &k[h * len * len..(h + 1) * len * len]);
            head_backward(products, dcontext, qkv, p, keep, dqkv, &mut scratch, h, len, shape);
        }
    });
    dqkv
}

#[allow(clippy::too_many_arguments)]
fn head_backward(
    products: Products,
    dcontext: &[f32],
    qkv: &[f32],
    probs: &[f32],
    keep: Option<&[f32]>,
    dqkv: &mut [f32],
    [dp, dropped]: &mut [Vec<f32>; 2],
    h: usize,
    len: usize,
    shape: AttentionShape,
) {
    let (d, hidden) = (shape.head_size, shape.hidden());
    let scale = 1.0 / (d as f32).sqrt();
    let dc = View::strided(&dcontext[h * d..], len, d, hidden);
    let block = |part| head_block(qkv, part, h, len, shape);
    let weights = match keep {
        Some(keep) => {
            vectorised(
                #[inline(always)]
                || dropped.iter_mut().zip(probs.iter().zip(keep)).for_each(|(o, (&p, &k))| *o = p * k),
            );
            &dropped[..]
        }
        None => probs,
    };
    // dv = (dropped probs)ᵀ · dcontext; d(dropped probs) = dcontext · vᵀ.
    matmul_serial(products, &mut dqkv[2 * hidden + h * d..], 3 * hidden, View::new(weights, len, len).t(), dc, false);
    matmul_serial(products, dp, len, dc, block(2).t(), false);
    // Softmax backward: ds = p * (dp - sum(dp * p)), times the scale of the scores.
    vectorised(
        #[inline(always)]
        || {
            for (i, (dp, p)) in dp.chunks_mut(len).zip(probs.chunks(len)).enumerate() {
                if let Some(keep) = keep {
                    dp.iter_mut().zip(&keep[i * len..(i + 1) * len]).for_each(|(x, &k)| *x *= k);
                }
                let inner: f32 = dot(dp, p);
                dp.iter_mut().zip(p).for_each(|(x, &p)| *x = p * (*x - inner) * scale);
            }
        },
    );
    let ds = View::new(dp, len, len);
    matmul_serial(products, &mut dqkv[h * d..], 3 * hidden, ds, block(1), false);
    matmul_serial(products, &mut dqkv[hidden + h * d..], 3 * hidden, ds.t(), block(0), false);
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums let the compiler use vector registers.
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = approx::exp(*x - max);
        sum += *x;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|x| *x *= inv);
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor, D};

    #[test]
    fn zeroed_is_zeros_of_the_length_asked() {
        for n in [0, 1, 5, ELEMENTS * 4 + 3] {
            // Freed memory full of ones just before: the allocator hands it back to `zeroed`,
            // so a `zeroed` that skipped its writes would show ones (or the allocator's own
            // bookkeeping), not zeros.
            drop(std::hint::black_box(vec![1.0f32; n]));
            let v = zeroed(n);
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|&x| x == 0.0));
        }
    }

    /// The sixteen-lane sum of the norms against a running f64 sum, with and without a
    /// remainder.
    #[test]
    fn lane_sums_match_a_plain_sum() {
        for n in [0, 1, 15, 16, 17, 768, 1000] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 31) % 97) as f32 / 48.0 - 1.0).collect();
            let want: f64 = x.iter().map(|&v| v as f64 * 2.0).sum();
            let got = sum(&x, &x, &x, |a, b, _| a + b) as f64;
            assert!((got - want).abs() < 1e-4, "n {n}: {got} vs {want}");
        }
    }

    fn seq(n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|i| ((i * 37 % 23) as f32 - 11.0) * scale).collect()
    }

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "at {i}: {x} vs {y}");
        }
    }

    fn tensor(v: &[f32], shape: &[usize]) -> Tensor {
        Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
    }

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn matmul_handles_transposes_blocks_and_accumulation() {
        let a = seq(6, 0.1); // 2 x 3
        let b = seq(12, 0.2); // 3 x 4
        let want = tensor(&a, &[2, 3]).matmul(&tensor(&b, &[3, 4])).unwrap();
        let mut out = vec![0.0; 8];
        matmul(Products::F32, &mut out, 4, View::new(&a, 2, 3), View::new(&b, 3, 4), false);
        close(&out, &flat(&want), 1e-6);
        // bᵀ stored as 4 x 3, read transposed; result into the right half of a 2 x 8 block.
        let bt = flat(&tensor(&b, &[3, 4]).t().unwrap().contiguous().unwrap());
        let mut wide = [1.0; 16];
        matmul(Products::F32, &mut wide[4..], 8, View::new(&a, 2, 3), View::new(&bt, 4, 3).t(), true);
        let got: Vec<f32> = wide.chunks(8).flat_map(|r| r[4..].to_vec()).collect();
        let want_plus_one: Vec<f32> = flat(&want).iter().map(|x| x + 1.0).collect();
        close(&got, &want_plus_one, 1e-6);
        assert!(wide.chunks(8).all(|r| r[..4] == [1.0; 4]));
    }

    #[test]
    fn layer_norm_matches_the_slow_reference_with_gradients() {
        let (rows, width) = (3, 8);
        let x = seq(rows * width, 0.3);
        let (g, b) = (seq(width, 0.05), seq(width, 0.02));
        let (y, cache) = layer_norm(&x, &g, &b, 1e-5);
        let xv = candle_core::Var::from_tensor(&tensor(&x, &[rows, width])).unwrap();
        let gv = candle_core::Var::from_tensor(&tensor(&g, &[width])).unwrap();
        let bv = candle_core::Var::from_tensor(&tensor(&b, &[width])).unwrap();
        let want = candle_nn::ops::layer_norm_slow(&xv, &gv, &bv, 1e-5).unwrap();
        close(&y, &flat(&want), 1e-5);
        let dy = seq(rows * width, 0.07);
        let loss = (want * tensor(&dy, &[rows, width])).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let (mut dg, mut db) = (vec![0.0; width], vec![0.0; width]);
        let dx = layer_norm_backward(&dy, &cache, &g, &mut dg, &mut db);
        close(&dx, &flat(grads.get(&xv).unwrap()), 1e-4);
        close(&dg, &flat(grads.get(&gv).unwrap()), 1e-5);
        close(&db, &flat(grads.get(&bv).unwrap()), 1e-5);
    }

    #[test]
    fn gelu_and_its_derivative_match_candle() {
        let u0 = seq(40, 0.2);
        let mut u = u0.clone();
        let g = bias_gelu(&mut u, &[0.0; 40]);
        let uv = candle_core::Var::from_tensor(&tensor(&u0, &[40])).unwrap();
        let want = uv.gelu_erf().unwrap();
        close(&g, &flat(&want), 1e-6);
        let grads = want.sum_all().unwrap().backward().unwrap();
        let mut d = vec![1.0; 40];
        gelu_backward(&mut d, &u);
        close(&d, &flat(grads.get(&uv).unwrap()), 1e-5);
    }

    #[test]
    fn tanh_gelu_and_relu_match_candle() {
        // Off zero, where candle's relu gradient (1) and torch's (0) differ.
        let u0: Vec<f32> = seq(40, 0.2).iter().map(|x| x + 0.01).collect();
        for act in [Activation::GeluTanh, Activation::Relu] {
            let mut u = u0.clone();
            let g = bias_gelu_or(&mut u, &[0.0; 40], act);
            let uv = candle_core::Var::from_tensor(&tensor(&u0, &[40])).unwrap();
            let want = match act {
                Activation::GeluTanh => uv.gelu().unwrap(),
                _ => uv.relu().unwrap(),
            };
            close(&g, &flat(&want), 1e-5);
            let grads = want.sum_all().unwrap().backward().unwrap();
            let mut d = vec![1.0; 40];
            activation_backward(&mut d, &u, act);
            close(&d, &flat(grads.get(&uv).unwrap()), 1e-4);
        }
    }

    /// The partial sums are fixed-size row chunks added in order, so the result is bit for bit
    /// the same whatever the thread count (and so however rayon splits the chunks).
    #[test]
    fn column_sums_do_not_depend_on_chunking() {
        let m = seq(1000 * 3, 0.37);
        let sums = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut acc = vec![1.0; 3];
            pool.install(|| add_column_sums(&mut acc, &m, 3, 3));
            acc
        };
        let one = sums(1);
        for threads in [2, 3, 7] {
            assert_eq!(
                sums(threads).iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                one.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "{threads} threads"
            );
        }
        let want: Vec<f64> = (0..3).map(|c| 1.0 + (0..1000).map(|r| m[r * 3 + c] as f64).sum::<f64>()).collect();
        for (got, want) in one.iter().zip(&want) {
            assert!((*got as f64 - want).abs() < 1e-3 * want.abs().max(1.0), "{got} vs {want}");
        }
    }

    #[test]
    fn a_view_cannot_be_built_out_of_bounds() {
        let data = [0.0f32; 10];
        assert!(View::checked(&data, 2, 5, 5).is_some());
        assert!(View::checked(&data, 3, 4, 3).is_some(), "rows may overlap: last index 2*3+4 = 10");
        assert!(View::checked(&data, 3, 4, 4).is_none(), "last row ends at 12");
        assert!(View::checked(&data, 2, 11, 0).is_none());
        assert!(View::checked(&data, usize::MAX, 1, usize::MAX).is_none(), "overflow is out of bounds");
        assert!(View::checked(&data, 0, 100, 100).is_some(), "an empty view reads nothing");
        let t = View::new(&data, 2, 5).t();
        assert_eq!((t.rows(), t.cols()), (5, 2));
        assert!(std::panic::catch_unwind(|| View::strided(&data, 3, 4, 4)).is_err());
    }

    /// Packed attention against candle ops on the padded batch (masked keys), forward and
    /// backward, with dropout.
    #[test]
    fn attention_matches_candle_with_gradients() {
        let shape = AttentionShape { heads: 2, head_size: 4 };
        let (b, s, h, d) = (2, 3, 2, 4);
        let hidden = h * d;
        let lengths = [3, 2];
        let padded_qkv = seq(b * s * 3 * hidden, 0.11);
        let real_rows = [0, 1, 2, 3, 4];
        let packed: Vec<f32> =
            real_rows.iter().flat_map(|&r| padded_qkv[r * 3 * hidden..(r + 1) * 3 * hidden].to_vec()).collect();
        let bias = vec![0.0, 0.0, 0.0, 0.0, 0.0, f32::MIN];
        let padded_keep: Vec<f32> = (0..b * h * s * s).map(|i| if i % 5 == 0 { 0.0 } else { 1.25 }).collect();
        // The packed mask: sentence 0 whole, sentence 1 its 2 x 2 corners.
        let mut keep = padded_keep[..h * s * s].to_vec();
        for head in 0..h {
            for i in 0..2 {
                let at = h * s * s + head * s * s + i * s;
                keep.extend_from_slice(&padded_keep[at..at + 2]);
            }
        }
        let (probs, context) = attention(Products::F32, &packed, Some(&keep), &lengths, shape);

        let qkv_var = candle_core::Var::from_tensor(&tensor(&padded_qkv, &[b * s, 3 * hidden])).unwrap();
        let part = |i: usize| {
            qkv_var
                .narrow(1, i * hidden, hidden)
                .unwrap()
                .reshape((b, s, h, d))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let scores = (q.matmul(&k.t().unwrap()).unwrap() * (1.0 / 2.0)).unwrap();
        let scores = scores.broadcast_add(&tensor(&bias, &[b, 1, 1, s])).unwrap();
        let p = candle_nn::ops::softmax(&scores, D::Minus1).unwrap();
        close(&probs[..h * s * s], &flat(&p)[..h * s * s], 1e-6);
        let pd = (p * tensor(&padded_keep, &[b, h, s, s])).unwrap();
        let ctx =
            pd.matmul(&v).unwrap().transpose(1, 2).unwrap().contiguous().unwrap().reshape((b * s, hidden)).unwrap();
        close(&context, &flat(&ctx)[..5 * hidden], 1e-5);

        let dctx = seq(b * s * hidden, 0.13);
        let mut padded_dctx = dctx.clone();
        padded_dctx[5 * hidden..].fill(0.0);
        let loss = (ctx * tensor(&padded_dctx, &[b * s, hidden])).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let dqkv =
            attention_backward(Products::F32, &dctx[..5 * hidden], &packed, &probs, Some(&keep), &lengths, shape);
        close(&dqkv, &flat(grads.get(&qkv_var).unwrap())[..5 * 3 * hidden], 1e-4);
    }

    #[test]
    fn bias_dropout_residual_composes() {
        let mut a = vec![1.0, 2.0, 3.0, 4.0];
        bias_dropout_residual(&mut a, &[0.5, -0.5], Some(&[2.0, 0.0, 2.0, 2.0]), &[1.0; 4]);
        assert_eq!(a, vec![4.0, 1.0, 8.0, 8.0]);
    }
}
