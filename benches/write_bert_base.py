#!/usr/bin/env python3
"""Writes a BERT-base-sized encoder with random weights (hidden 768, 12 layers, 12 heads,
intermediate 3072, vocab 30522) in Hugging Face layout, with the tokenizer files of an
uncased BERT vocabulary (all-MiniLM-L6-v2's, the same 30522 word pieces), for the speed
comparison of benches/bf16_vs_trainer.py. Random weights: the bench measures time and memory,
not scores.

  python benches/write_bert_base.py OUT_DIR TOKENIZER_DIR

Needs torch and transformers (the peer venv of the Trainer comparison).
"""
import shutil
import sys
from pathlib import Path

import torch
from transformers import BertConfig, BertModel

TOKENIZER_FILES = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def main():
    out, tokenizer = Path(sys.argv[1]), Path(sys.argv[2])
    if (out / "model.safetensors").exists():
        print(f"{out}: already written")
        return
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                                 num_attention_heads=12, intermediate_size=3072))
    part = out.with_name(out.name + ".part")
    model.save_pretrained(part, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (tokenizer / name).exists():
            shutil.copy(tokenizer / name, part / name)
    part.rename(out)
    print(f"{out}: BERT-base-sized encoder, {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
