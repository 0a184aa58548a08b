//! `nergrid predict`: entities in raw text with a fine-tuned model, as transformers'
//! token-classification pipeline gives them (`aggregation_strategy`, `stride`); texts longer
//! than the model's window are tagged whole, in overlapping windows.

use crate::model::predict::{Aggregation, Entity, Predictor};
use anyhow::Context;
use candle_core::Device;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Texts tagged per call of the model: their windows are batched together.
const TEXTS_PER_CHUNK: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One entity per line: type, start, end, text (tab-separated); a blank line after
    /// each input.
    Text,
    /// One JSON array of {"text": ..., "entities": [{type, text, start, end, score}]}.
    Json,
    /// One JSON object per input and line: {"text": ..., "entities": [...]}.
    Jsonl,
}

/// The pipeline's `aggregation_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// Every tagged token, its label (`B-DRUG`) as the type.
    None,
    /// Tokens of one type grouped, sub-words or not.
    Simple,
    /// Words take the label of their first token.
    First,
    /// Words take the label of their tokens' mean probabilities.
    Average,
    /// Words take the label of their most confident token.
    Max,
}

impl From<Strategy> for Aggregation {
    fn from(s: Strategy) -> Aggregation {
        match s {
            Strategy::None => Aggregation::None,
            Strategy::Simple => Aggregation::Simple,
            Strategy::First => Aggregation::First,
            Strategy::Average => Aggregation::Average,
            Strategy::Max => Aggregation::Max,
        }
    }
}

/// Arguments of `nergrid predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// A model directory saved by a run with `save_model = true`, or a hub id.
    #[arg(long)]
    pub model: String,
    /// How sub-word predictions become entities, as the pipeline's `aggregation_strategy`.
    #[arg(long, value_enum, default_value_t = Strategy::First)]
    pub aggregation: Strategy,
    /// Tokens of overlap between the windows of a long text (default: a quarter of a window).
    #[arg(long)]
    pub stride: Option<usize>,
    /// Windows tagged per batch (windows of different texts are batched together).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Read one text per line from this file (`-` for standard input); a line that is a JSON
    /// object gives its "text" field.
    #[arg(long, conflicts_with = "texts")]
    pub file: Option<PathBuf>,
    /// `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Texts to tag.
    pub texts: Vec<String>,
}

/// Runs `nergrid predict`; exit code 2 when there is no text to tag.
pub fn run(args: PredictArgs) -> anyhow::Result<i32> {
    let texts = match &args.file {
        Some(path) => read_texts(path)?,
        None => args.texts.clone(),
    };
    if texts.is_empty() {
        eprintln!("error: nothing to tag: give TEXT arguments or --file");
        return Ok(2);
    }
    let device = parse_device(&args.device)?;
    let predictor = Predictor::load(&args.model, &device).with_context(|| format!("loading model {}", args.model))?;
    let predictor = predictor.with_stride(args.stride).context("--stride")?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.format == Format::Json {
        write!(out, "[")?;
    }
    for (chunk, texts) in texts.chunks(TEXTS_PER_CHUNK).enumerate() {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let found = predictor.predict_texts(&refs, args.aggregation.into(), args.batch_size as usize)?;
        for (i, (text, entities)) in texts.iter().zip(&found).enumerate() {
            let first = chunk == 0 && i == 0;
            write_entities(&mut out, text, entities, args.format, first)?;
        }
    }
    if args.format == Format::Json {
        writeln!(out, "]")?;
    }
    out.flush()?;
    Ok(0)
}

/// The texts of `path`, one per line: plain text, or a JSON object with a string "text".
fn read_texts(path: &Path) -> anyhow::Result<Vec<String>> {
    let mut reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut texts = Vec::new();
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).with_context(|| format!("{}: cannot read", path.display()))?;
        if read == 0 {
            break;
        }
        let text = text_of_line(&line).map_err(|what| anyhow::anyhow!("{}:{number}: {what}", path.display()))?;
        texts.push(text);
    }
    Ok(texts)
}

/// The text of one line of `--file` (pure), without its line ending.
fn text_of_line(line: &[u8]) -> Result<String, String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = std::str::from_utf8(line).map_err(|e| format!("not valid UTF-8 (byte {})", e.valid_up_to() + 1))?;
    if !line.trim_start().starts_with('{') {
        return Ok(line.to_string());
    }
    let json: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    match json.get("text") {
        Some(serde_json::Value::String(text)) => Ok(text.clone()),
        Some(_) => Err("field \"text\" must be a string".into()),
        None => Err("a JSON line needs a \"text\" field".into()),
    }
}

fn parse_device(name: &str) -> anyhow::Result<Device> {
    match name.strip_prefix("cuda:") {
        None if name == "cpu" => Ok(Device::Cpu),
        None => anyhow::bail!("--device: expected cpu or cuda:N, got {name:?}"),
        Some(n) => {
            let ordinal: usize = n.parse().with_context(|| format!("--device: bad ordinal in {name:?}"))?;
            Device::new_cuda(ordinal).with_context(|| format!("opening {name} (built with --features cuda?)"))
        }
    }
}

fn write_entities(
    out: &mut impl Write,
    text: &str,
    entities: &[Entity],
    format: Format,
    first: bool,
) -> anyhow::Result<()> {
    let object = || serde_json::json!({ "text": text, "entities": entities });
    match format {
        Format::Json => write!(out, "{}{}", if first { "" } else { ",\n" }, object())?,
        Format::Jsonl => writeln!(out, "{}", object())?,
        Format::Text => {
            for e in entities {
                writeln!(out, "{}\t{}\t{}\t{}", e.kind, e.start, e.end, e.text)?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_text_or_json_with_a_text_field() {
        assert_eq!(text_of_line(b"Ta Alvedon\r\n"), Ok("Ta Alvedon".into()));
        assert_eq!(text_of_line(b"   \n"), Ok("   ".into()));
        assert_eq!(text_of_line(b"{\"text\": \"a b\", \"id\": 3}\n"), Ok("a b".into()));
        assert_eq!(text_of_line(b"{\"id\": 3}"), Err("a JSON line needs a \"text\" field".into()));
        assert_eq!(text_of_line(b"{\"text\": 3}"), Err("field \"text\" must be a string".into()));
        assert!(text_of_line(b"{oops").unwrap_err().starts_with("invalid JSON"));
        assert_eq!(text_of_line(b"ok \xff no"), Err("not valid UTF-8 (byte 4)".into()));
    }
}
