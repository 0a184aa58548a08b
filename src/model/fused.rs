//! The fused CPU training path: the same model as [`super::encoder`] (same parameters, same
//! dropout draws in the same order), computed on host slices with the kernels of
//! [`super::kernels`] and differentiated by hand instead of through candle's autograd graph.
//!
//! candle's backward pass allocates a zero tensor and an addition for every node of the
//! graph, and its element-wise CPU operations run on one thread; here each layer is a few
//! large matrix products and parallel fused loops, and gradients go straight into per-parameter
//! buffers. Tests check the loss and every gradient against the autograd path.
//!
//! Padding is not computed: the tokens of a batch are packed (a sentence's tokens only attend
//! to each other, which is what the attention mask does in the padded layout), so a batch
//! costs its real tokens, not batch x longest. Dropout masks are drawn for the padded layout
//! and the real tokens' part is used, so the draws are those of the autograd path.

use super::config::{Architecture, Config};
use super::dropout::Dropout;
use super::encoder::HostBatch;
use super::head::{TokenClassifier, IGNORE_INDEX};
use super::host::HostWeights;
use super::kernels::{self, AttentionShape, NormCache, Products, View};
use super::params::{layer_names, Params, CLASSIFIER_BIAS, CLASSIFIER_WEIGHT};

/// Positions of the parameters of one layer in [`Params`] order.
#[derive(Debug, Clone, Copy)]
struct LayerIndex {
    /// weight and bias of query, key, value
    qkv: [(usize, usize); 3],
    output: (usize, usize),
    norm1: (usize, usize),
    ffn_in: (usize, usize),
    ffn_out: (usize, usize),
    norm2: (usize, usize),
}

/// Positions of every parameter the fast path reads.
#[derive(Debug, Clone)]
struct Index {
    word: usize,
    position: usize,
    token_type: Option<usize>,
    norm: (usize, usize),
    layers: Vec<LayerIndex>,
    classifier: (usize, usize),
}

fn pair(params: &Params, name: &str) -> (usize, usize) {
    (params.index_of(&format!("{name}.weight")), params.index_of(&format!("{name}.bias")))
}

impl Index {
    fn new(params: &Params, cfg: &Config) -> Index {
        let layers = (0..cfg.num_layers)
            .map(|i| {
                let [q, k, v, o, n1, f1, f2, n2] = layer_names(cfg.architecture, i);
                LayerIndex {
                    qkv: [pair(params, &q), pair(params, &k), pair(params, &v)],
                    output: pair(params, &o),
                    norm1: pair(params, &n1),
                    ffn_in: pair(params, &f1),
                    ffn_out: pair(params, &f2),
                    norm2: pair(params, &n2),
                }
            })
            .collect();
        Index {
            word: params.index_of("embeddings.word_embeddings.weight"),
            position: params.index_of("embeddings.position_embeddings.weight"),
            token_type: (cfg.type_vocab_size > 0).then(|| params.index_of("embeddings.token_type_embeddings.weight")),
            norm: pair(params, "embeddings.LayerNorm"),
            layers,
            classifier: (params.index_of(CLASSIFIER_WEIGHT), params.index_of(CLASSIFIER_BIAS)),
        }
    }
}

/// Activations one layer's backward pass needs.
struct LayerCache {
    input: Vec<f32>,
    qkv: Vec<f32>,
    probs: Vec<f32>,
    probs_keep: Option<Vec<f32>>,
    context: Vec<f32>,
    output_keep: Option<Vec<f32>>,
    norm1: NormCache,
    hidden1: Vec<f32>,
    pre_activation: Vec<f32>,
    activation: Vec<f32>,
    ffn_keep: Option<Vec<f32>>,
    norm2: NormCache,
}

/// Where the real tokens of a padded batch are.
struct Packing {
    /// Row-major padded index of each real token.
    rows: Vec<usize>,
    lengths: Vec<usize>,
    /// Padded batch size and length.
    batch: usize,
    seq: usize,
}

impl Packing {
    fn new(batch: &HostBatch) -> Packing {
        Packing { rows: batch.token_rows(), lengths: batch.lengths.clone(), batch: batch.batch, seq: batch.seq }
    }

    fn tokens(&self) -> usize {
        self.rows.len()
    }

    /// The real tokens' rows of a padded [batch * seq, width] matrix.
    fn gather(&self, padded: &[f32], width: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.rows.len() * width);
        for &r in &self.rows {
            out.extend_from_slice(&padded[r * width..(r + 1) * width]);
        }
        out
    }

    /// Each sentence's [heads, len, len] corner of a padded [batch, heads, seq, seq] tensor.
    fn gather_attention(&self, padded: &[f32], heads: usize) -> Vec<f32> {
        let seq = self.seq;
        let mut out = Vec::with_capacity(self.lengths.iter().map(|l| heads * l * l).sum());
        for (b, &len) in self.lengths.iter().enumerate() {
            for h in 0..heads {
                for i in 0..len {
                    let at = ((b * heads + h) * seq + i) * seq;
                    out.extend_from_slice(&padded[at..at + len]);
                }
            }
        }
        out
    }
}

/// Everything the forward pass keeps for the backward pass.
struct Cache {
    packing: Packing,
    embed_norm: NormCache,
    embed_keep: Option<Vec<f32>>,
    layers: Vec<LayerCache>,
    /// The classifier's input after dropout.
    features: Vec<f32>,
    classifier_keep: Option<Vec<f32>>,
}

/// The model on host memory for one pass.
struct Pass<'a> {
    cfg: &'a Config,
    w: HostWeights<'a>,
    index: Index,
    labels: usize,
    products: Products,
}

/// Errors of the fast path (only ever a misuse: it runs on CPU f32 parameters).
#[derive(Debug, thiserror::Error)]
pub enum FastError {
    #[error("the fused CPU path needs contiguous f32 parameters on the CPU")]
    NotOnHost,
    #[error("a sequence of {tokens} tokens does not fit the model's {positions} positions")]
    TooLong { tokens: usize, positions: usize },
}

impl<'a> Pass<'a> {
    fn new(model: &'a TokenClassifier, products: Products) -> Result<Pass<'a>, FastError> {
        let params = model.params();
        Ok(Pass {
            cfg: model.config(),
            w: HostWeights::new(params).ok_or(FastError::NotOnHost)?,
            index: Index::new(params, model.config()),
            labels: model.labels().len(),
            products,
        })
    }

    /// The real tokens' part of a dropout mask drawn for the padded [batch * seq, hidden].
    fn draw_tokens(&self, dropout: &mut Option<&mut Dropout>, pk: &Packing, p: f64) -> Option<Vec<f32>> {
        let h = self.cfg.hidden_size;
        let padded = dropout.as_deref_mut().and_then(|d| d.mask(pk.batch * pk.seq * h, p))?;
        Some(pk.gather(&padded, h))
    }

    /// The sentences' part of a dropout mask drawn for the padded attention probabilities.
    fn draw_attention(&self, dropout: &mut Option<&mut Dropout>, pk: &Packing) -> Option<Vec<f32>> {
        let heads = self.cfg.num_heads;
        let n = pk.batch * heads * pk.seq * pk.seq;
        let padded = dropout.as_deref_mut().and_then(|d| d.mask(n, self.cfg.attention_dropout))?;
        Some(pk.gather_attention(&padded, heads))
    }

    /// Forward pass: logits of the real tokens [tokens, labels] and what the backward pass
    /// needs.
    fn forward(&self, batch: &HostBatch, mut dropout: Option<&mut Dropout>) -> (Vec<f32>, Cache) {
        let packing = Packing::new(batch);
        let n = packing.tokens();
        let embedded = self.embed(batch, &packing);
        let (gamma, beta) = (self.w.get(self.index.norm.0), self.w.get(self.index.norm.1));
        let (mut x, embed_norm) = kernels::layer_norm(&embedded, gamma, beta, self.eps());
        let embed_keep = self.draw_tokens(&mut dropout, &packing, self.cfg.hidden_dropout);
        kernels::apply_keep(&mut x, embed_keep.as_deref());
        let mut layers = Vec::with_capacity(self.index.layers.len());
        for layer in &self.index.layers {
            let (y, cache) = self.layer_forward(layer, x, &packing, &mut dropout);
            layers.push(cache);
            x = y;
        }
        let classifier_keep = self.draw_tokens(&mut dropout, &packing, self.cfg.classifier_dropout);
        kernels::apply_keep(&mut x, classifier_keep.as_deref());
        let (wc, bc) = self.index.classifier;
        let mut logits = kernels::linear(self.products, &x, n, self.w.get(wc), self.labels);
        kernels::add_bias(&mut logits, self.w.get(bc));
        let cache = Cache { packing, embed_norm, embed_keep, layers, features: x, classifier_keep };
        (logits, cache)
    }

    fn eps(&self) -> f32 {
        self.cfg.layer_norm_eps as f32
    }

    /// word + position (+ token type 0) embeddings of the real tokens: [tokens, hidden]
    fn embed(&self, batch: &HostBatch, pk: &Packing) -> Vec<f32> {
        let h = self.cfg.hidden_size;
        let (word, position) = (self.w.get(self.index.word), self.w.get(self.index.position));
        let token_type = self.index.token_type.map(|i| &self.w.get(i)[..h]);
        let mut out = vec![0.0; pk.tokens() * h];
        for (&t, row) in pk.rows.iter().zip(out.chunks_mut(h)) {
            let (id, pos) = (batch.input_ids[t] as usize, batch.position_ids[t] as usize);
            let (wr, pr) = (&word[id * h..(id + 1) * h], &position[pos * h..(pos + 1) * h]);
            for i in 0..h {
                row[i] = wr[i] + pr[i] + token_type.map_or(0.0, |tt| tt[i]);
            }
        }
        out
    }

    fn attention_shape(&self) -> AttentionShape {
        AttentionShape { heads: self.cfg.num_heads, head_size: self.cfg.head_size() }
    }

    /// One post-norm transformer layer. x: [n, hidden] -> [n, hidden]
    fn layer_forward(
        &self,
        layer: &LayerIndex,
        x: Vec<f32>,
        pk: &Packing,
        dropout: &mut Option<&mut Dropout>,
    ) -> (Vec<f32>, LayerCache) {
        let (h, ff) = (self.cfg.hidden_size, self.cfg.intermediate_size);
        let n = pk.tokens();
        let mut qkv = vec![0.0; n * 3 * h];
        let mut qkv_bias = Vec::with_capacity(3 * h);
        for (part, (w, b)) in layer.qkv.iter().enumerate() {
            let weight = View::new(self.w.get(*w), h, h).t();
            kernels::matmul(self.products, &mut qkv[part * h..], 3 * h, View::new(&x, n, h), weight, false);
            qkv_bias.extend_from_slice(self.w.get(*b));
        }
        kernels::add_bias(&mut qkv, &qkv_bias);
        let probs_keep = self.draw_attention(dropout, pk);
        let (probs, context) =
            kernels::attention(self.products, &qkv, probs_keep.as_deref(), &pk.lengths, self.attention_shape());
        let mut attended = kernels::linear(self.products, &context, n, self.w.get(layer.output.0), h);
        let output_keep = match self.cfg.architecture {
            Architecture::DistilBert => None,
            _ => self.draw_tokens(dropout, pk, self.cfg.hidden_dropout),
        };
        kernels::bias_dropout_residual(&mut attended, self.w.get(layer.output.1), output_keep.as_deref(), &x);
        let (hidden1, norm1) = self.norm(&attended, layer.norm1);
        let mut pre_activation = kernels::linear(self.products, &hidden1, n, self.w.get(layer.ffn_in.0), ff);
        let activation = kernels::bias_gelu_or(&mut pre_activation, self.w.get(layer.ffn_in.1), self.cfg.activation);
        let mut out = kernels::linear(self.products, &activation, n, self.w.get(layer.ffn_out.0), h);
        let ffn_keep = self.draw_tokens(dropout, pk, self.cfg.hidden_dropout);
        kernels::bias_dropout_residual(&mut out, self.w.get(layer.ffn_out.1), ffn_keep.as_deref(), &hidden1);
        let (y, norm2) = self.norm(&out, layer.norm2);
        let cache = LayerCache {
            input: x,
            qkv,
            probs,
            probs_keep,
            context,
            output_keep,
            norm1,
            hidden1,
            pre_activation,
            activation,
            ffn_keep,
            norm2,
        };
        (y, cache)
    }

    fn norm(&self, x: &[f32], (gamma, beta): (usize, usize)) -> (Vec<f32>, NormCache) {
        kernels::layer_norm(x, self.w.get(gamma), self.w.get(beta), self.eps())
    }

    /// Backward pass from the logits' gradient; adds every parameter's gradient to `grads`.
    fn backward(&self, dlogits: &[f32], cache: &Cache, batch: &HostBatch, grads: &mut [Vec<f32>]) {
        let h = self.cfg.hidden_size;
        let n = cache.packing.tokens();
        let (wc, bc) = self.index.classifier;
        let labels = View::new(dlogits, n, self.labels);
        kernels::matmul(self.products, &mut grads[wc], h, labels.t(), View::new(&cache.features, n, h), true);
        kernels::add_column_sums(&mut grads[bc], dlogits, self.labels, self.labels);
        let mut dy = vec![0.0; n * h];
        kernels::matmul(self.products, &mut dy, h, labels, View::new(self.w.get(wc), self.labels, h), false);
        kernels::apply_keep(&mut dy, cache.classifier_keep.as_deref());
        for (layer, lc) in self.index.layers.iter().zip(&cache.layers).rev() {
            dy = self.layer_backward(layer, lc, dy, &cache.packing, grads);
        }
        kernels::apply_keep(&mut dy, cache.embed_keep.as_deref());
        let dembed = self.norm_backward(&dy, &cache.embed_norm, self.index.norm, grads);
        self.embed_backward(&dembed, batch, &cache.packing, grads);
    }

    fn norm_backward(
        &self,
        dy: &[f32],
        cache: &NormCache,
        (gamma, beta): (usize, usize),
        grads: &mut [Vec<f32>],
    ) -> Vec<f32> {
        let (dgamma, dbeta) = two_mut(grads, gamma, beta);
        kernels::layer_norm_backward(dy, cache, self.w.get(gamma), dgamma, dbeta)
    }

    /// Adds `dy`'s rows to the rows of the embeddings that produced them.
    fn embed_backward(&self, dy: &[f32], batch: &HostBatch, pk: &Packing, grads: &mut [Vec<f32>]) {
        let h = self.cfg.hidden_size;
        for (&t, row) in pk.rows.iter().zip(dy.chunks(h)) {
            let id = batch.input_ids[t] as usize;
            let pos = batch.position_ids[t] as usize;
            add_row(&mut grads[self.index.word][id * h..(id + 1) * h], row);
            add_row(&mut grads[self.index.position][pos * h..(pos + 1) * h], row);
            if let Some(tt) = self.index.token_type {
                add_row(&mut grads[tt][..h], row);
            }
        }
    }

    /// One layer backward: dy is the gradient of the layer's output; returns its input's.
    fn layer_backward(
        &self,
        layer: &LayerIndex,
        c: &LayerCache,
        dy: Vec<f32>,
        pk: &Packing,
        grads: &mut [Vec<f32>],
    ) -> Vec<f32> {
        let (h, ff) = (self.cfg.hidden_size, self.cfg.intermediate_size);
        let n = pk.tokens();
        // y = norm2((ffn_out(gelu(ffn_in(h1))) + b) * keep + h1)
        let dr2 = self.norm_backward(&dy, &c.norm2, layer.norm2, grads);
        let mut dout = dr2.clone();
        kernels::apply_keep(&mut dout, c.ffn_keep.as_deref());
        let mut dact = vec![0.0; n * ff];
        self.linear_backward(layer.ffn_out, &dout, &c.activation, (n, ff, h), Some(&mut dact), grads);
        kernels::activation_backward(&mut dact, &c.pre_activation, self.cfg.activation);
        let mut dh1 = dr2;
        self.linear_backward(layer.ffn_in, &dact, &c.hidden1, (n, h, ff), Some(&mut dh1), grads);
        // h1 = norm1((output(context) + b) * keep + x)
        let dr1 = self.norm_backward(&dh1, &c.norm1, layer.norm1, grads);
        let mut dattended = dr1.clone();
        kernels::apply_keep(&mut dattended, c.output_keep.as_deref());
        let mut dcontext = vec![0.0; n * h];
        self.linear_backward(layer.output, &dattended, &c.context, (n, h, h), Some(&mut dcontext), grads);
        let keep = c.probs_keep.as_deref();
        let dqkv = kernels::attention_backward(
            self.products,
            &dcontext,
            &c.qkv,
            &c.probs,
            keep,
            &pk.lengths,
            self.attention_shape(),
        );
        let mut dx = dr1;
        for (part, &(w, b)) in layer.qkv.iter().enumerate() {
            let dpart = View::strided(&dqkv[part * h..], n, h, 3 * h);
            kernels::matmul(self.products, &mut grads[w], h, dpart.t(), View::new(&c.input, n, h), true);
            kernels::add_column_sums(&mut grads[b], &dqkv[part * h..], h, 3 * h);
            kernels::matmul(self.products, &mut dx, h, dpart, View::new(self.w.get(w), h, h), true);
        }
        dx
    }

    /// For y = x·wᵀ + b with dy given: adds dw and db, and adds dx to `dx` when given.
    /// dims: (rows, inputs, outputs)
    fn linear_backward(
        &self,
        (w, b): (usize, usize),
        dy: &[f32],
        x: &[f32],
        (n, inputs, outputs): (usize, usize, usize),
        dx: Option<&mut [f32]>,
        grads: &mut [Vec<f32>],
    ) {
        let dy_view = View::new(dy, n, outputs);
        kernels::matmul(self.products, &mut grads[w], inputs, dy_view.t(), View::new(x, n, inputs), true);
        kernels::add_column_sums(&mut grads[b], dy, outputs, outputs);
        if let Some(dx) = dx {
            kernels::matmul(self.products, dx, inputs, dy_view, View::new(self.w.get(w), outputs, inputs), true);
        }
    }
}

fn add_row(dst: &mut [f32], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
}

/// Two distinct elements of `v`, mutably.
fn two_mut<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    assert!(a < b, "two_mut expects increasing indices");
    let (left, right) = v.split_at_mut(b);
    (&mut left[a], &mut right[0])
}

/// Masked cross-entropy over `logits` ([rows, labels]): the summed loss divided by
/// `denominator`, and its gradient with respect to the logits.
pub fn cross_entropy_with_grad(logits: &[f32], labels: usize, targets: &[i64], denominator: f64) -> (f64, Vec<f32>) {
    let mut grad = vec![0.0; logits.len()];
    let mut loss = 0.0f64;
    let scale = (1.0 / denominator) as f32;
    for ((row, g), &target) in logits.chunks(labels).zip(grad.chunks_mut(labels)).zip(targets) {
        if target == IGNORE_INDEX {
            continue;
        }
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
        let log_sum = sum.ln();
        loss -= (row[target as usize] - max - log_sum) as f64;
        for (gi, &x) in g.iter_mut().zip(row) {
            *gi = (x - max - log_sum).exp() * scale;
        }
        g[target as usize] -= scale;
    }
    (loss / denominator, grad)
}

/// Zeroed gradient buffers, one per parameter in [`Params`] order.
pub fn zero_grads(params: &Params) -> Vec<Vec<f32>> {
    params.iter().map(|(_, v)| kernels::zeroed(v.elem_count())).collect()
}

/// One training forward and backward pass on the CPU: returns the loss (summed over
/// labelled positions, divided by `denominator`) and adds every parameter's gradient to
/// `grads` (from [`zero_grads`]). Dropout masks come from `dropout` in the order the autograd
/// path draws them. `products` says how the matrix products compute.
pub fn loss_and_grads(
    products: Products,
    model: &TokenClassifier,
    batch: &HostBatch,
    targets: &[i64],
    denominator: f64,
    dropout: Option<&mut Dropout>,
    grads: &mut [Vec<f32>],
) -> Result<f64, FastError> {
    let pass = Pass::new(model, products)?;
    let (logits, cache) = pass.forward(batch, dropout);
    let targets: Vec<i64> = cache.packing.rows.iter().map(|&r| targets[r]).collect();
    let (loss, dlogits) = cross_entropy_with_grad(&logits, pass.labels, &targets, denominator);
    pass.backward(&dlogits, &cache, batch, grads);
    Ok(loss)
}

/// Logits without dropout in the padded layout: [batch * seq, labels] (zeros on padding).
pub fn logits(products: Products, model: &TokenClassifier, batch: &HostBatch) -> Result<Vec<f32>, FastError> {
    let pass = Pass::new(model, products)?;
    let positions = model.config().max_position_embeddings;
    if batch.position_ids.iter().any(|&p| p as usize >= positions) {
        return Err(FastError::TooLong { tokens: batch.seq, positions });
    }
    let (packed, cache) = pass.forward(batch, None);
    let labels = pass.labels;
    let mut padded = vec![0.0; batch.batch * batch.seq * labels];
    for (&r, row) in cache.packing.rows.iter().zip(packed.chunks(labels)) {
        padded[r * labels..(r + 1) * labels].copy_from_slice(row);
    }
    Ok(padded)
}

/// Whether the fast path can run `model` (every parameter in host memory).
pub fn available(model: &TokenClassifier) -> bool {
    HostWeights::new(model.params()).is_some()
}
