//! `nergrid eval`: scores a CoNLL-style file whose last two columns are the gold and the
//! predicted tag (as conlleval.pl reads it) with seqeval's numbers, as text or JSON, and with
//! `--errors` nervaluate's SemEval-2013 categories, a type confusion table and boundary errors.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};

use crate::data::tag_columns::{read_tag_columns, TagColumns};
use crate::metrics::{
    classification_report, error_analysis, error_tables, evaluate, ErrorAnalysis, MetricsError, Mode, Report,
    SeqevalJson, StrictScheme, ZeroDivision,
};

/// Decimals of the text report (seqeval's `digits` argument; its default is 2).
const DIGITS: usize = 4;

/// Arguments of `nergrid eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// CoNLL-style file: one token per line in whitespace-separated columns, the last two
    /// being the gold and the predicted tag; a blank line between sentences; `-DOCSTART-`
    /// lines are skipped.
    pub file: PathBuf,
    /// `default`: seqeval's conlleval-like chunking of any tags; `strict`: only entities the
    /// scheme given with --scheme allows.
    #[arg(long, value_enum, default_value_t = ModeArg::Default)]
    pub mode: ModeArg,
    /// Tagging scheme for --mode strict.
    #[arg(long, value_enum, ignore_case = true)]
    pub scheme: Option<SchemeArg>,
    /// `text`: seqeval's classification report with 4 decimals (digits=4); `json`:
    /// {"precision","recall","f1","accuracy","report":{..}} with NaN as null.
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    pub format: FormatArg,
    /// Value of a precision or recall whose denominator is 0 (seqeval's zero_division).
    #[arg(long, value_enum, default_value_t = ZeroDivisionArg::Zero)]
    pub zero_division: ZeroDivisionArg,
    /// Adds the error analysis on default-mode entities: nervaluate's SemEval-2013 categories
    /// (strict, exact, partial, ent_type; overall and per type), the type confusion table and
    /// boundary errors (too long, too short, shifted). JSON gains
    /// "errors": {"overall","by_type","confusion","boundaries"}.
    #[arg(long)]
    pub errors: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    Default,
    Strict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemeArg {
    #[value(name = "IOB2")]
    Iob2,
    #[value(name = "IOBES")]
    Iobes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ZeroDivisionArg {
    #[value(name = "0")]
    Zero,
    #[value(name = "1")]
    One,
}

/// Runs `nergrid eval`: 0 when scored, 2 when the arguments or the file are unusable.
pub fn run(args: EvalArgs) -> anyhow::Result<i32> {
    let output = match score_file(&args) {
        Ok(output) => output,
        Err(err) => {
            eprintln!("error: {err:#}");
            return Ok(2);
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(output.as_bytes()).and_then(|()| stdout.flush()).context("cannot write to stdout")?;
    Ok(0)
}

fn score_file(args: &EvalArgs) -> anyhow::Result<String> {
    let mode = resolve_mode(args.mode, args.scheme, args.errors)?;
    let path = &args.file;
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let tagged = read_tag_columns(text.strip_prefix('\u{feff}').unwrap_or(&text), path)?;
    let zero_division = match args.zero_division {
        ZeroDivisionArg::Zero => ZeroDivision::Zero,
        ZeroDivisionArg::One => ZeroDivision::One,
    };
    let report =
        evaluate(&tagged.gold, &tagged.predicted, mode, zero_division).map_err(|err| locate(err, &tagged, path))?;
    let errors = match args.errors {
        true => Some(error_analysis(&tagged.gold, &tagged.predicted).map_err(|err| locate(err, &tagged, path))?),
        false => None,
    };
    Ok(render(&report, errors.as_ref(), args.format))
}

fn resolve_mode(mode: ModeArg, scheme: Option<SchemeArg>, errors: bool) -> anyhow::Result<Mode> {
    match (mode, scheme) {
        (ModeArg::Default, None) => Ok(Mode::Default),
        (ModeArg::Default, Some(_)) => bail!("--scheme applies only with --mode strict"),
        (ModeArg::Strict, _) if errors => bail!("--errors reads entities as --mode default does; drop --mode strict"),
        (ModeArg::Strict, None) => bail!("--mode strict needs --scheme IOB2 or IOBES"),
        (ModeArg::Strict, Some(SchemeArg::Iob2)) => Ok(Mode::Strict(StrictScheme::Iob2)),
        (ModeArg::Strict, Some(SchemeArg::Iobes)) => Ok(Mode::Strict(StrictScheme::Iobes)),
    }
}

/// seqeval's keys, then `errors` when asked for.
#[derive(serde::Serialize)]
struct EvalJson<'a> {
    #[serde(flatten)]
    seqeval: SeqevalJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a ErrorAnalysis>,
}

fn render(report: &Report, errors: Option<&ErrorAnalysis>, format: FormatArg) -> String {
    match format {
        FormatArg::Text => {
            let seqeval = classification_report(report, DIGITS);
            match errors {
                Some(errors) => format!("{seqeval}\n{}", error_tables(errors, DIGITS)),
                None => seqeval,
            }
        }
        FormatArg::Json => {
            let json = serde_json::to_string_pretty(&EvalJson { seqeval: SeqevalJson(report), errors });
            json.expect("a report always serialises") + "\n"
        }
    }
}

/// Points a tag error at its file line.
fn locate(err: MetricsError, tagged: &TagColumns, path: &Path) -> anyhow::Error {
    match err {
        MetricsError::Tag { side, sentence, token, source } => {
            let line = tagged.line_of(sentence, token);
            anyhow!(source).context(format!("{}:{line}: {side} tag", path.display()))
        }
        other => anyhow!(other).context(path.display().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_errors_point_at_the_line() {
        let tagged = read_tag_columns("a O O\n\nb B-PER B-PER\nc O E-PER\n", Path::new("x.conll")).unwrap();
        let mode = Mode::Strict(StrictScheme::Iob2);
        let err = evaluate(&tagged.gold, &tagged.predicted, mode, ZeroDivision::Zero)
            .map_err(|e| locate(e, &tagged, Path::new("x.conll")))
            .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "x.conll:4: predicted tag: tag \"E-PER\": prefix E is not allowed by IOB2 (allowed: I, O, B)"
        );
    }

    #[test]
    fn scheme_and_strict_mode_go_together() {
        assert!(resolve_mode(ModeArg::Strict, None, false).is_err());
        assert!(resolve_mode(ModeArg::Default, Some(SchemeArg::Iobes), false).is_err());
        let iobes = resolve_mode(ModeArg::Strict, Some(SchemeArg::Iobes), false);
        assert_eq!(iobes.unwrap(), Mode::Strict(StrictScheme::Iobes));
        assert!(resolve_mode(ModeArg::Strict, Some(SchemeArg::Iobes), true).is_err(), "errors are default-mode");
        assert_eq!(resolve_mode(ModeArg::Default, None, true).unwrap(), Mode::Default);
    }
}
