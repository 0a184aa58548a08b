//! nergrid: declarative experiment grids for NER fine-tuning.
