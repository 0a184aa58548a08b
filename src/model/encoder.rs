//! A trainable BERT-family encoder with Hugging Face tensor names: every parameter is a
//! `Var` that receives a gradient, dropout is real and seeded in training and absent in
//! evaluation.

use super::config::{Architecture, Config};
use super::dropout::Dropout;
use super::ops;
use super::params::{layer_names, Params};
use candle_core::{DType, Device, Result, Tensor};

/// A padded batch of token ids ready for the encoder.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// [batch, seq] u32
    pub input_ids: Tensor,
    /// [batch, seq] u32, all zeros (single-segment inputs); `None` for DistilBERT.
    pub token_type_ids: Option<Tensor>,
    /// [batch, seq] u32
    pub position_ids: Tensor,
    /// [batch, 1, 1, seq] f32: 0 on tokens, a large negative number on padding.
    pub attention_bias: Tensor,
    pub batch: usize,
    pub seq: usize,
}

impl Inputs {
    /// Pads `sequences` to the longest one with the model's pad token.
    pub fn new(sequences: &[Vec<u32>], cfg: &Config, device: &Device) -> Result<Inputs> {
        Inputs::from_host(&HostBatch::new(sequences, cfg), device)
    }

    /// The tensors of a padded batch.
    pub fn from_host(host: &HostBatch, device: &Device) -> Result<Inputs> {
        let (batch, seq) = (host.batch, host.seq);
        let tensor = |v: &[u32]| Tensor::from_slice(v, (batch, seq), device);
        let token_type_ids = match host.has_token_types {
            false => None,
            true => Some(Tensor::zeros((batch, seq), DType::U32, device)?),
        };
        Ok(Inputs {
            input_ids: tensor(&host.input_ids)?,
            token_type_ids,
            position_ids: tensor(&host.position_ids)?,
            attention_bias: Tensor::from_slice(&host.attention_bias, (batch, 1, 1, seq), device)?,
            batch,
            seq,
        })
    }
}

/// A padded batch in host memory (row-major [batch, seq]).
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    pub input_ids: Vec<u32>,
    pub position_ids: Vec<u32>,
    /// Whether the model has token-type embeddings (all inputs use type 0).
    pub has_token_types: bool,
    /// 0 on tokens, the most negative f32 on padding.
    pub attention_bias: Vec<f32>,
    pub batch: usize,
    pub seq: usize,
}

impl HostBatch {
    /// Pads `sequences` to the longest one with the model's pad token.
    pub fn new(sequences: &[Vec<u32>], cfg: &Config) -> HostBatch {
        let batch = sequences.len();
        let seq = sequences.iter().map(Vec::len).max().unwrap_or(0);
        let mut input_ids = vec![cfg.pad_token_id; batch * seq];
        let mut position_ids = vec![0u32; batch * seq];
        let mut attention_bias = vec![f32::MIN; batch * seq];
        for (row, tokens) in sequences.iter().enumerate() {
            let at = row * seq;
            input_ids[at..at + tokens.len()].copy_from_slice(tokens);
            attention_bias[at..at + tokens.len()].fill(0.0);
            fill_positions(&mut position_ids[at..at + seq], tokens.len(), cfg);
        }
        HostBatch { input_ids, position_ids, has_token_types: cfg.type_vocab_size > 0, attention_bias, batch, seq }
    }
}

/// Position ids of one padded row: 0.. for BERT, `pad + 1 + i` on tokens and `pad` on padding
/// for RoBERTa (transformers' `create_position_ids_from_input_ids`).
fn fill_positions(row: &mut [u32], len: usize, cfg: &Config) {
    for (i, p) in row.iter_mut().enumerate() {
        *p = match cfg.architecture {
            Architecture::Roberta if i < len => cfg.pad_token_id + 1 + i as u32,
            Architecture::Roberta => cfg.pad_token_id,
            _ => i as u32,
        };
    }
}

#[derive(Debug, Clone)]
struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    fn load(params: &Params, name: &str) -> Linear {
        Linear { weight: params.tensor(&format!("{name}.weight")), bias: params.tensor(&format!("{name}.bias")) }
    }

    /// xs: [n, in] -> [n, out]
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        ops::linear(xs, &self.weight, &self.bias)
    }
}

#[derive(Debug, Clone)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn load(params: &Params, name: &str, eps: f64) -> LayerNorm {
        LayerNorm {
            weight: params.tensor(&format!("{name}.weight")),
            bias: params.tensor(&format!("{name}.bias")),
            eps,
        }
    }

    /// xs: [n, hidden] -> [n, hidden]
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        ops::layer_norm(xs, &self.weight, &self.bias, self.eps)
    }
}

/// Applies dropout when training (`dropout` is `Some`), the identity otherwise.
pub fn maybe_dropout(xs: &Tensor, p: f64, dropout: &mut Option<&mut Dropout>) -> Result<Tensor> {
    match dropout {
        Some(d) => d.apply(xs, p),
        None => Ok(xs.clone()),
    }
}

#[derive(Debug, Clone)]
struct Embeddings {
    word: Tensor,
    position: Tensor,
    token_type: Option<Tensor>,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(params: &Params, cfg: &Config) -> Embeddings {
        let token_type = (cfg.type_vocab_size > 0).then(|| params.tensor("embeddings.token_type_embeddings.weight"));
        Embeddings {
            word: params.tensor("embeddings.word_embeddings.weight"),
            position: params.tensor("embeddings.position_embeddings.weight"),
            token_type,
            norm: LayerNorm::load(params, "embeddings.LayerNorm", cfg.layer_norm_eps),
        }
    }

    /// -> [batch * seq, hidden]
    fn forward(&self, inputs: &Inputs) -> Result<Tensor> {
        let flat = |t: &Tensor| t.flatten_all();
        let mut xs = self.word.embedding(&flat(&inputs.input_ids)?)?;
        xs = xs.add(&self.position.embedding(&flat(&inputs.position_ids)?)?)?;
        if let (Some(table), Some(ids)) = (&self.token_type, &inputs.token_type_ids) {
            xs = xs.add(&table.embedding(&flat(ids)?)?)?;
        }
        self.norm.forward(&xs)
    }
}

#[derive(Debug, Clone)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_output: Linear,
    attention_norm: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    output_norm: LayerNorm,
}

impl Layer {
    fn load(params: &Params, cfg: &Config, i: usize) -> Layer {
        let [q, k, v, ao, an, fi, fo, on] = layer_names(cfg.architecture, i);
        let eps = cfg.layer_norm_eps;
        Layer {
            query: Linear::load(params, &q),
            key: Linear::load(params, &k),
            value: Linear::load(params, &v),
            attention_output: Linear::load(params, &ao),
            attention_norm: LayerNorm::load(params, &an, eps),
            ffn_in: Linear::load(params, &fi),
            ffn_out: Linear::load(params, &fo),
            output_norm: LayerNorm::load(params, &on, eps),
        }
    }
}

/// The encoder: embeddings and a stack of post-norm transformer layers.
#[derive(Debug, Clone)]
pub struct Encoder {
    cfg: Config,
    embeddings: Embeddings,
    layers: Vec<Layer>,
}

impl Encoder {
    /// Binds the encoder to the variables in `params` (shared storage: updates to the
    /// variables are seen by the next forward pass).
    pub fn new(params: &Params, cfg: &Config) -> Encoder {
        Encoder {
            cfg: cfg.clone(),
            embeddings: Embeddings::load(params, cfg),
            layers: (0..cfg.num_layers).map(|i| Layer::load(params, cfg, i)).collect(),
        }
    }

    /// -> [batch * seq, hidden]; dropout only when `dropout` is `Some`.
    pub fn forward(&self, inputs: &Inputs, mut dropout: Option<&mut Dropout>) -> Result<Tensor> {
        let xs = self.embeddings.forward(inputs)?;
        let mut xs = maybe_dropout(&xs, self.cfg.hidden_dropout, &mut dropout)?;
        for layer in &self.layers {
            xs = self.layer_forward(layer, &xs, inputs, &mut dropout)?;
        }
        Ok(xs)
    }

    /// xs: [batch * seq, hidden] -> [batch * seq, hidden]
    fn layer_forward(
        &self,
        layer: &Layer,
        xs: &Tensor,
        inputs: &Inputs,
        dropout: &mut Option<&mut Dropout>,
    ) -> Result<Tensor> {
        let context = self.attention(layer, xs, inputs, dropout)?;
        let mut attended = layer.attention_output.forward(&context)?;
        // DistilBERT has no dropout on the attention output.
        if self.cfg.architecture != Architecture::DistilBert {
            attended = maybe_dropout(&attended, self.cfg.hidden_dropout, dropout)?;
        }
        let attended = layer.attention_norm.forward(&attended.add(xs)?)?;
        let hidden = ops::activation(&layer.ffn_in.forward(&attended)?, self.cfg.activation)?;
        let out = layer.ffn_out.forward(&hidden)?;
        let out = maybe_dropout(&out, self.cfg.hidden_dropout, dropout)?;
        layer.output_norm.forward(&out.add(&attended)?)
    }

    /// Multi-head self-attention before the output projection.
    /// xs: [batch * seq, hidden] -> [batch * seq, hidden]
    fn attention(
        &self,
        layer: &Layer,
        xs: &Tensor,
        inputs: &Inputs,
        dropout: &mut Option<&mut Dropout>,
    ) -> Result<Tensor> {
        let (b, s) = (inputs.batch, inputs.seq);
        let (heads, d) = (self.cfg.num_heads, self.cfg.head_size());
        // [b*s, hidden] -> [b, heads, s, d]
        let split = |t: Tensor| t.reshape((b, s, heads, d))?.transpose(1, 2)?.contiguous();
        let q = split(layer.query.forward(xs)?)?;
        let k = split(layer.key.forward(xs)?)?;
        let v = split(layer.value.forward(xs)?)?;
        let scores = q.matmul(&k.t()?)?;
        let scale = 1.0 / (d as f64).sqrt();
        let probs = ops::masked_softmax(&scores, &inputs.attention_bias, scale)?;
        let probs = maybe_dropout(&probs, self.cfg.attention_dropout, dropout)?;
        let context = probs.matmul(&v)?; // [b, heads, s, d]
        context.transpose(1, 2)?.contiguous()?.reshape((b * s, heads * d))
    }
}
