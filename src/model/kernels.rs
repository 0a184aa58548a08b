//! Host (CPU) kernels of the fast training path on f32 slices: strided matrix products
//! (through `gemm`, which picks AVX/AVX-512 at run time), layer norm, fused attention, GELU
//! and the bias, dropout and residual steps around them, each with its backward pass.
//!
//! Rows are processed in parallel with rayon. Reductions over rows (bias and norm gradients)
//! add fixed-size chunk partials in order, so results do not depend on the thread count.

use super::approx;
use super::config::Activation;
use rayon::prelude::*;

/// Rows per partial sum in column reductions (fixed: part of the result's rounding).
const REDUCE_ROWS: usize = 32;

/// A read-only matrix view: element (r, c) is `data[r * row_stride + c * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> View<'a> {
        View::strided(data, rows, cols, cols)
    }

    /// `rows x cols` with rows `row_stride` apart (a column block of a wider matrix).
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> View<'a> {
        assert!(rows == 0 || (rows - 1) * row_stride + cols <= data.len());
        View { data, rows, cols, row_stride, col_stride: 1 }
    }

    /// The transpose (no copy).
    pub fn t(self) -> View<'a> {
        View { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }
}

/// `dst = a·b` (or `dst += a·b` when `accumulate`); `dst` is `a.rows x b.cols` with rows
/// `dst_stride` apart.
pub fn matmul(dst: &mut [f32], dst_stride: usize, a: View, b: View, accumulate: bool) {
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
    let parallelism = match m * n * k {
        work if work < 1 << 15 => gemm::Parallelism::None,
        _ => gemm::Parallelism::Rayon(rayon::current_num_threads()),
    };
    // SAFETY: the asserts above keep every index of dst, a and b inside their slices.
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
pub fn linear(x: &[f32], n: usize, w: &[f32], out: usize) -> Vec<f32> {
    let inner = w.len() / out;
    let mut y = vec![0.0; n * out];
    matmul(&mut y, out, View::new(x, n, inner), View::new(w, out, inner).t(), false);
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
            for r in chunk * REDUCE_ROWS..end {
                let row = &m[r * stride..r * stride + width];
                part.iter_mut().zip(row).for_each(|(p, &x)| *p += x);
            }
            part
        })
        .collect();
    for part in partials {
        acc.iter_mut().zip(&part).for_each(|(a, &p)| *a += p);
    }
}

/// Adds `bias` to every row of `m` (rows of `bias.len()` values).
pub fn add_bias(m: &mut [f32], bias: &[f32]) {
    m.par_chunks_mut(bias.len()).for_each(|row| row.iter_mut().zip(bias).for_each(|(x, &b)| *x += b));
}

/// What the layer-norm backward pass needs.
#[derive(Debug, Clone, Default)]
pub struct NormCache {
    /// Normalised inputs, (x - mean) * rstd.
    pub xhat: Vec<f32>,
    /// 1 / sqrt(var + eps) per row.
    pub rstd: Vec<f32>,
}

/// Row-wise layer norm of `x` (rows of `gamma.len()`), as `layer_norm_slow`.
pub fn layer_norm(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> (Vec<f32>, NormCache) {
    let width = gamma.len();
    let rows = x.len() / width;
    let mut y = vec![0.0; x.len()];
    let mut cache = NormCache { xhat: vec![0.0; x.len()], rstd: vec![0.0; rows] };
    y.par_chunks_mut(width)
        .zip(cache.xhat.par_chunks_mut(width))
        .zip(cache.rstd.par_iter_mut())
        .zip(x.par_chunks(width))
        .for_each(|(((y, xhat), rstd), x)| {
            let mean = x.iter().sum::<f32>() / width as f32;
            let var = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
            *rstd = 1.0 / (var + eps).sqrt();
            for i in 0..width {
                xhat[i] = (x[i] - mean) * *rstd;
                y[i] = xhat[i] * gamma[i] + beta[i];
            }
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
    dx.par_chunks_mut(width)
        .zip(dy.par_chunks(width))
        .zip(cache.xhat.par_chunks(width))
        .zip(cache.rstd.par_iter())
        .for_each(|(((dx, dy), xhat), &rstd)| {
            let (mut sum, mut dot) = (0.0f32, 0.0f32);
            for i in 0..width {
                let g = dy[i] * gamma[i];
                sum += g;
                dot += g * xhat[i];
            }
            let (mean, mean_dot) = (sum / width as f32, dot / width as f32);
            for i in 0..width {
                dx[i] = rstd * (dy[i] * gamma[i] - mean - xhat[i] * mean_dot);
            }
        });
    let dy_xhat: Vec<f32> = dy.par_iter().zip(&cache.xhat).map(|(a, b)| a * b).collect();
    add_column_sums(dgamma, &dy_xhat, width, width);
    add_column_sums(dbeta, dy, width, width);
    dx
}

/// `(a + bias) * keep + residual` row by row, in place in `a` (the input of the norm that
/// follows attention and feed-forward blocks).
pub fn bias_dropout_residual(a: &mut [f32], bias: &[f32], keep: Option<&[f32]>, residual: &[f32]) {
    let width = bias.len();
    a.par_chunks_mut(width).zip(residual.par_chunks(width)).enumerate().for_each(|(row, (a, res))| {
        let keep = keep.map(|k| &k[row * width..(row + 1) * width]);
        for i in 0..width {
            let v = a[i] + bias[i];
            a[i] = keep.map_or(v, |k| v * k[i]) + res[i];
        }
    });
}

/// Multiplies `m` by a dropout mask in place.
pub fn apply_keep(m: &mut [f32], keep: Option<&[f32]>) {
    if let Some(keep) = keep {
        m.par_iter_mut().zip(keep).for_each(|(x, &k)| *x *= k);
    }
}

/// Adds `bias` to `u` (the feed-forward pre-activation, in place) and returns GELU(u)
/// (exact, with erf).
pub fn bias_gelu(u: &mut [f32], bias: &[f32]) -> Vec<f32> {
    bias_gelu_or(u, bias, Activation::GeluErf)
}

/// Adds `bias` to `u` in place and returns `act(u)`.
pub fn bias_gelu_or(u: &mut [f32], bias: &[f32], act: Activation) -> Vec<f32> {
    add_bias(u, bias);
    let f = match act {
        Activation::GeluErf => approx::gelu,
        Activation::GeluTanh => |x| gelu_tanh(x).0,
        Activation::Relu => |x: f32| x.max(0.0),
    };
    let mut out = vec![0.0; u.len()];
    out.par_chunks_mut(ELEMENTS)
        .zip(u.par_chunks(ELEMENTS))
        .for_each(|(o, u)| vectorised(|| o.iter_mut().zip(u).for_each(|(o, &x)| *o = f(x))));
    out
}

/// Elements per parallel task in element-wise loops.
const ELEMENTS: usize = 1 << 14;

/// Runs `f` compiled for AVX2 when the CPU has it, so that its loops vectorise 8 wide
/// (the baseline x86-64 target has 4-wide SSE2 only). Results are identical either way:
/// no multiply-add is fused.
#[inline(always)]
pub fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// GELU's derivative applied to `dg` in place: dg * GELU'(u).
pub fn gelu_backward(dg: &mut [f32], u: &[f32]) {
    activation_backward(dg, u, Activation::GeluErf)
}

/// `d *= act'(u)` in place.
pub fn activation_backward(d: &mut [f32], u: &[f32], act: Activation) {
    let derivative = match act {
        Activation::GeluErf => approx::gelu_derivative,
        Activation::GeluTanh => |x| gelu_tanh(x).1,
        Activation::Relu => |x: f32| if x > 0.0 { 1.0 } else { 0.0 },
    };
    d.par_chunks_mut(ELEMENTS)
        .zip(u.par_chunks(ELEMENTS))
        .for_each(|(d, u)| vectorised(|| d.iter_mut().zip(u).for_each(|(d, &x)| *d *= derivative(x))));
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

/// Shapes of one attention computation.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_size: usize,
}

impl AttentionShape {
    fn hidden(&self) -> usize {
        self.heads * self.head_size
    }
}

/// Multi-head self-attention on `qkv` ([batch * seq, 3 * hidden]: queries, keys, values)
/// with an additive key mask `bias` ([batch, seq]). Returns the softmax probabilities
/// ([batch, heads, seq, seq], before dropout) and the context ([batch * seq, hidden]);
/// `keep` is the dropout mask of the probabilities.
pub fn attention(qkv: &[f32], bias: &[f32], keep: Option<&[f32]>, shape: AttentionShape) -> (Vec<f32>, Vec<f32>) {
    let AttentionShape { seq, heads, .. } = shape;
    let hidden = shape.hidden();
    let scale = 1.0 / (shape.head_size as f32).sqrt();
    let mut probs = vec![0.0; shape.batch * heads * seq * seq];
    let mut context = vec![0.0; shape.batch * seq * hidden];
    probs.par_chunks_mut(heads * seq * seq).zip(context.par_chunks_mut(seq * hidden)).enumerate().for_each(
        |(b, (probs, context))| {
            let qkv = &qkv[b * seq * 3 * hidden..(b + 1) * seq * 3 * hidden];
            let bias = &bias[b * seq..(b + 1) * seq];
            let keep = keep.map(|k| &k[b * heads * seq * seq..(b + 1) * heads * seq * seq]);
            for h in 0..heads {
                let p = &mut probs[h * seq * seq..(h + 1) * seq * seq];
                let keep = keep.map(|k| &k[h * seq * seq..(h + 1) * seq * seq]);
                vectorised(|| head_forward(qkv, bias, keep, p, context, h, shape, scale));
            }
        },
    );
    (probs, context)
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn head_forward(
    qkv: &[f32],
    bias: &[f32],
    keep: Option<&[f32]>,
    probs: &mut [f32],
    context: &mut [f32],
    h: usize,
    shape: AttentionShape,
    scale: f32,
) {
    let (seq, d, hidden) = (shape.seq, shape.head_size, shape.hidden());
    let q = |i: usize| &qkv[i * 3 * hidden + h * d..i * 3 * hidden + (h + 1) * d];
    let k = |j: usize| &qkv[i3(j, hidden) + hidden + h * d..i3(j, hidden) + hidden + (h + 1) * d];
    let v = |j: usize| &qkv[i3(j, hidden) + 2 * hidden + h * d..i3(j, hidden) + 2 * hidden + (h + 1) * d];
    for i in 0..seq {
        let row = &mut probs[i * seq..(i + 1) * seq];
        for j in 0..seq {
            row[j] = dot(q(i), k(j)) * scale + bias[j];
        }
        softmax_in_place(row);
        let out = &mut context[i * hidden + h * d..i * hidden + (h + 1) * d];
        out.fill(0.0);
        for j in 0..seq {
            let p = keep.map_or(row[j], |k| row[j] * k[i * seq + j]);
            if p != 0.0 {
                out.iter_mut().zip(v(j)).for_each(|(o, &x)| *o += p * x);
            }
        }
    }
}

fn i3(row: usize, hidden: usize) -> usize {
    row * 3 * hidden
}

/// Gradient of `qkv` from the gradient of the context of [`attention`].
pub fn attention_backward(
    dcontext: &[f32],
    qkv: &[f32],
    probs: &[f32],
    keep: Option<&[f32]>,
    shape: AttentionShape,
) -> Vec<f32> {
    let AttentionShape { seq, heads, .. } = shape;
    let hidden = shape.hidden();
    let scale = 1.0 / (shape.head_size as f32).sqrt();
    let mut dqkv = vec![0.0; qkv.len()];
    dqkv.par_chunks_mut(seq * 3 * hidden).enumerate().for_each(|(b, dqkv)| {
        let rows = b * seq * 3 * hidden..(b + 1) * seq * 3 * hidden;
        let qkv = &qkv[rows];
        let dcontext = &dcontext[b * seq * hidden..(b + 1) * seq * hidden];
        let block = b * heads * seq * seq..(b + 1) * heads * seq * seq;
        let (probs, keep) = (&probs[block.clone()], keep.map(|k| &k[block]));
        let mut dp = vec![0.0f32; seq];
        for h in 0..heads {
            let p = &probs[h * seq * seq..(h + 1) * seq * seq];
            let keep = keep.map(|k| &k[h * seq * seq..(h + 1) * seq * seq]);
            vectorised(|| head_backward(dcontext, qkv, p, keep, dqkv, &mut dp, h, shape, scale));
        }
    });
    dqkv
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn head_backward(
    dcontext: &[f32],
    qkv: &[f32],
    probs: &[f32],
    keep: Option<&[f32]>,
    dqkv: &mut [f32],
    dp: &mut [f32],
    h: usize,
    shape: AttentionShape,
    scale: f32,
) {
    let (seq, d, hidden) = (shape.seq, shape.head_size, shape.hidden());
    let at = |row: usize, part: usize| i3(row, hidden) + part * hidden + h * d;
    for i in 0..seq {
        let dc = &dcontext[i * hidden + h * d..i * hidden + (h + 1) * d];
        let p = &probs[i * seq..(i + 1) * seq];
        // d(dropped probs) = dcontext · v_j; dv_j += dropped_p * dcontext.
        for j in 0..seq {
            let kj = keep.map_or(1.0, |k| k[i * seq + j]);
            let v = &qkv[at(j, 2)..at(j, 2) + d];
            dp[j] = dot(dc, v) * kj;
            let pd = p[j] * kj;
            if pd != 0.0 {
                let dv = &mut dqkv[at(j, 2)..at(j, 2) + d];
                dv.iter_mut().zip(dc).for_each(|(o, &g)| *o += pd * g);
            }
        }
        // Softmax backward: ds = p * (dp - sum(dp * p)), then the scale of the scores.
        let inner: f32 = dp.iter().zip(p).map(|(a, b)| a * b).sum();
        for j in 0..seq {
            let ds = p[j] * (dp[j] - inner) * scale;
            if ds == 0.0 {
                continue;
            }
            let (qi, kj) = (at(i, 0), at(j, 1));
            for c in 0..d {
                dqkv[qi + c] += ds * qkv[kj + c];
                dqkv[kj + c] += ds * qkv[qi + c];
            }
        }
    }
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
        matmul(&mut out, 4, View::new(&a, 2, 3), View::new(&b, 3, 4), false);
        close(&out, &flat(&want), 1e-6);
        // bᵀ stored as 4 x 3, read transposed; result into the right half of a 2 x 8 block.
        let bt = flat(&tensor(&b, &[3, 4]).t().unwrap().contiguous().unwrap());
        let mut wide = [1.0; 16];
        matmul(&mut wide[4..], 8, View::new(&a, 2, 3), View::new(&bt, 4, 3).t(), true);
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

    #[test]
    fn column_sums_do_not_depend_on_chunking() {
        let m = seq(100 * 3, 0.5);
        let mut acc = vec![1.0; 3];
        add_column_sums(&mut acc, &m, 3, 3);
        let want: Vec<f32> = (0..3).map(|c| 1.0 + (0..100).map(|r| m[r * 3 + c]).sum::<f32>()).collect();
        close(&acc, &want, 1e-5);
    }

    /// Attention against candle ops, forward and backward, with a padded key and dropout.
    #[test]
    fn attention_matches_candle_with_gradients() {
        let shape = AttentionShape { batch: 2, seq: 3, heads: 2, head_size: 4 };
        let (b, s, h, d) = (2, 3, 2, 4);
        let hidden = h * d;
        let qkv = seq(b * s * 3 * hidden, 0.11);
        let bias = vec![0.0, 0.0, f32::MIN, 0.0, 0.0, 0.0];
        let keep: Vec<f32> = (0..b * h * s * s).map(|i| if i % 5 == 0 { 0.0 } else { 1.25 }).collect();
        let (probs, context) = attention(&qkv, &bias, Some(&keep), shape);

        let qkv_var = candle_core::Var::from_tensor(&tensor(&qkv, &[b * s, 3 * hidden])).unwrap();
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
        close(&probs, &flat(&p), 1e-6);
        let pd = (p * tensor(&keep, &[b, h, s, s])).unwrap();
        let ctx =
            pd.matmul(&v).unwrap().transpose(1, 2).unwrap().contiguous().unwrap().reshape((b * s, hidden)).unwrap();
        close(&context, &flat(&ctx), 1e-5);

        let dctx = seq(b * s * hidden, 0.13);
        let loss = (ctx * tensor(&dctx, &[b * s, hidden])).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let dqkv = attention_backward(&dctx, &qkv, &probs, Some(&keep), shape);
        close(&dqkv, &flat(grads.get(&qkv_var).unwrap()), 1e-4);
    }

    #[test]
    fn bias_dropout_residual_composes() {
        let mut a = vec![1.0, 2.0, 3.0, 4.0];
        bias_dropout_residual(&mut a, &[0.5, -0.5], Some(&[2.0, 0.0, 2.0, 2.0]), &[1.0; 4]);
        assert_eq!(a, vec![4.0, 1.0, 8.0, 8.0]);
    }
}
