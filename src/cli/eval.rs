//! `nergrid eval`: scores a CoNLL-style file whose last two columns are the gold and the
//! predicted tag (as conlleval.pl reads it) with seqeval's numbers, as text or JSON.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};

use crate::metrics::{
    classification_report, evaluate, MetricsError, Mode, Report, SeqevalJson, StrictScheme, ZeroDivision,
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
    let mode = resolve_mode(args.mode, args.scheme)?;
    let path = &args.file;
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let tagged = parse_tagged(&text, path)?;
    let zero_division = match args.zero_division {
        ZeroDivisionArg::Zero => ZeroDivision::Zero,
        ZeroDivisionArg::One => ZeroDivision::One,
    };
    let report =
        evaluate(&tagged.gold, &tagged.predicted, mode, zero_division).map_err(|err| locate(err, &tagged, path))?;
    Ok(render(&report, args.format))
}

fn resolve_mode(mode: ModeArg, scheme: Option<SchemeArg>) -> anyhow::Result<Mode> {
    match (mode, scheme) {
        (ModeArg::Default, None) => Ok(Mode::Default),
        (ModeArg::Default, Some(_)) => bail!("--scheme applies only with --mode strict"),
        (ModeArg::Strict, None) => bail!("--mode strict needs --scheme IOB2 or IOBES"),
        (ModeArg::Strict, Some(SchemeArg::Iob2)) => Ok(Mode::Strict(StrictScheme::Iob2)),
        (ModeArg::Strict, Some(SchemeArg::Iobes)) => Ok(Mode::Strict(StrictScheme::Iobes)),
    }
}

fn render(report: &Report, format: FormatArg) -> String {
    match format {
        FormatArg::Text => classification_report(report, DIGITS),
        FormatArg::Json => {
            let json = serde_json::to_string_pretty(&SeqevalJson(report));
            json.expect("a report always serialises") + "\n"
        }
    }
}

/// The tag columns of a CoNLL-style file, sentence by sentence.
#[derive(Debug, Default, PartialEq)]
struct TaggedFile {
    gold: Vec<Vec<String>>,
    predicted: Vec<Vec<String>>,
    /// Line number (from 1) of each sentence's first token.
    first_lines: Vec<usize>,
    in_sentence: bool,
}

impl TaggedFile {
    fn push(&mut self, line: usize, gold: &str, predicted: &str) {
        if !self.in_sentence {
            self.gold.push(Vec::new());
            self.predicted.push(Vec::new());
            self.first_lines.push(line);
            self.in_sentence = true;
        }
        let last = self.gold.len() - 1;
        self.gold[last].push(gold.to_owned());
        self.predicted[last].push(predicted.to_owned());
    }

    fn end_sentence(&mut self) {
        self.in_sentence = false;
    }
}

/// Reads the last two columns of every non-blank line. All token lines must have the same
/// number of columns (at least 2), as conlleval.pl requires.
fn parse_tagged(text: &str, path: &Path) -> anyhow::Result<TaggedFile> {
    let mut tagged = TaggedFile::default();
    let mut columns: Option<(usize, usize)> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let fields: Vec<&str> = crate::store::conll_fields(line);
        if fields.is_empty() || fields[0] == "-DOCSTART-" {
            tagged.end_sentence();
            continue;
        }
        let at = || format!("{}:{number}", path.display());
        match columns {
            _ if fields.len() < 2 => {
                bail!("{}: expected at least 2 columns (.. gold tag, predicted tag), found 1", at())
            }
            Some((expected, first)) if fields.len() != expected => {
                bail!("{}: expected {expected} columns like line {first}, found {}", at(), fields.len())
            }
            None => columns = Some((fields.len(), number)),
            Some(_) => {}
        }
        let n = fields.len();
        tagged.push(number, fields[n - 2], fields[n - 1]);
    }
    if tagged.gold.is_empty() {
        bail!("{}: no token lines", path.display());
    }
    Ok(tagged)
}

/// Points a tag error at its file line.
fn locate(err: MetricsError, tagged: &TaggedFile, path: &Path) -> anyhow::Error {
    match err {
        MetricsError::Tag { side, sentence, token, source } => {
            let line = tagged.first_lines[sentence] + token;
            anyhow!(source).context(format!("{}:{line}: {side} tag", path.display()))
        }
        other => anyhow!(other).context(path.display().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<TaggedFile> {
        parse_tagged(text, Path::new("x.conll"))
    }

    #[test]
    fn blank_lines_and_docstart_separate_sentences() {
        let text = "-DOCSTART- -X- O O\n\nEU B-ORG B-ORG\nrejects O O\n\n\n\nPeter B-PER I-PER\r\n";
        let tagged = parse(text).unwrap();
        assert_eq!(tagged.gold, vec![vec!["B-ORG", "O"], vec!["B-PER"]]);
        assert_eq!(tagged.predicted[1], vec!["I-PER"]);
        assert_eq!(tagged.first_lines, vec![3, 8]);
    }

    #[test]
    fn a_line_with_one_column_is_located() {
        let err = parse("a O O\nb\n").unwrap_err();
        assert_eq!(err.to_string(), "x.conll:2: expected at least 2 columns (.. gold tag, predicted tag), found 1");
    }

    #[test]
    fn column_counts_must_agree() {
        let err = parse("a NN O O\n\nb O O\n").unwrap_err();
        assert_eq!(err.to_string(), "x.conll:3: expected 4 columns like line 1, found 3");
    }

    #[test]
    fn a_file_without_tokens_is_an_error() {
        let err = parse("\n-DOCSTART- O O\n\n").unwrap_err();
        assert_eq!(err.to_string(), "x.conll: no token lines");
    }

    #[test]
    fn tag_errors_point_at_the_line() {
        let tagged = parse("a O O\n\nb B-PER B-PER\nc O E-PER\n").unwrap();
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
        assert!(resolve_mode(ModeArg::Strict, None).is_err());
        assert!(resolve_mode(ModeArg::Default, Some(SchemeArg::Iobes)).is_err());
        assert_eq!(resolve_mode(ModeArg::Strict, Some(SchemeArg::Iobes)).unwrap(), Mode::Strict(StrictScheme::Iobes));
    }
}
