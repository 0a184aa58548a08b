//! `nergrid predict`: entities in raw text with a fine-tuned model, merged from sub-words as
//! transformers' pipeline does with `aggregation_strategy="first"`.

use crate::model::predict::{Predictor, TextEntity};
use anyhow::Context;
use candle_core::Device;
use std::io::{BufRead, Write};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One entity per line: type, start, end, text (tab-separated); a blank line after
    /// each input.
    Text,
    /// One JSON object per input: {"text": ..., "entities": [{type, text, start, end, score}]}.
    Json,
}

/// Arguments of `nergrid predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// A model directory saved by a run with `save_model = true`, or a hub id.
    #[arg(long)]
    pub model: String,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Read one text per line from this file (`-` for standard input).
    #[arg(long, conflicts_with = "texts")]
    pub file: Option<PathBuf>,
    /// `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Texts to tag.
    pub texts: Vec<String>,
}

/// Runs `nergrid predict`; exit code 2 for bad input (no text, an unreadable `--file`, a bad
/// `--device`, a missing or unusable model), 1 when prediction itself fails.
pub fn run(args: PredictArgs) -> anyhow::Result<i32> {
    let texts = match read_texts(&args) {
        Ok(texts) if texts.is_empty() => return Ok(input_error("nothing to tag: give TEXT arguments or --file")),
        Ok(texts) => texts,
        Err(e) => return Ok(input_error(&format!("{e:#}"))),
    };
    let loaded = parse_device(&args.device).and_then(|device| {
        Predictor::load(&args.model, &device).with_context(|| format!("loading model {}", args.model))
    });
    let predictor = match loaded {
        Ok(predictor) => predictor,
        Err(e) => return Ok(input_error(&format!("{e:#}"))),
    };
    let mut out = std::io::stdout().lock();
    for (i, text) in texts.iter().enumerate() {
        let entities = predictor.predict(text, i)?;
        write_entities(&mut out, text, &entities, args.format)?;
    }
    Ok(0)
}

fn input_error(message: &str) -> i32 {
    eprintln!("error: {message}");
    super::EXIT_USAGE
}

fn read_texts(args: &PredictArgs) -> anyhow::Result<Vec<String>> {
    let Some(path) = &args.file else {
        return Ok(args.texts.clone());
    };
    let lines: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let lines = lines.lines().collect::<Result<Vec<_>, _>>();
    let lines = lines.with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(lines.into_iter().filter(|l| !l.trim().is_empty()).collect())
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

fn write_entities(out: &mut impl Write, text: &str, entities: &[TextEntity], format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            let line = serde_json::json!({ "text": text, "entities": entities });
            writeln!(out, "{line}")?;
        }
        Format::Text => {
            for e in entities {
                writeln!(out, "{}\t{}\t{}\t{}", e.kind, e.start, e.end, e.text)?;
            }
            writeln!(out)?;
        }
    }
    Ok(())
}
