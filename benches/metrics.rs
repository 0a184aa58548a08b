//! Times `metrics::evaluate` on about 1,000,000 tokens of seeded, realistic BIO and BIOES tags
//! (gold plus a prediction with boundary, type and spurious-entity errors and 1% tag noise).
//! Target: under 0.5 s per million tokens in release. Run with `cargo bench --bench metrics`.

use std::time::{Duration, Instant};

use nergrid::metrics::{evaluate, extract_entities, Mode, StrictScheme, ZeroDivision};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TOKENS: usize = 1_000_000;
const RUNS: usize = 5;
const TYPES: [&str; 7] = ["PER", "LOC", "ORG", "MISC", "DRUG", "DISORDER", "BODY"];

#[derive(Clone, Copy, PartialEq)]
enum Scheme {
    Bio,
    Bioes,
}

/// A span `[start, start + len)` of type `kind` within a sentence.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    len: usize,
    kind: usize,
}

fn random_spans(rng: &mut ChaCha8Rng, words: usize) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut i = rng.random_range(0..3);
    while i < words {
        let len = rng.random_range(1..=4).min(words - i);
        spans.push(Span { start: i, len, kind: rng.random_range(0..TYPES.len()) });
        i += len + rng.random_range(1..8);
    }
    spans
}

/// The prediction: each entity kept, retyped, cut short, dropped, plus a few spurious ones.
fn perturb(rng: &mut ChaCha8Rng, gold: &[Span], words: usize) -> Vec<Span> {
    let mut predicted = Vec::new();
    for &span in gold {
        match rng.random_range(0..20) {
            0 => {}
            1 => predicted.push(Span { kind: rng.random_range(0..TYPES.len()), ..span }),
            2 if span.len > 1 => predicted.push(Span { len: span.len - 1, ..span }),
            _ => predicted.push(span),
        }
    }
    if rng.random_bool(0.1) {
        let start = rng.random_range(0..words);
        let free = predicted.iter().all(|s| start < s.start || start >= s.start + s.len);
        if free {
            predicted.push(Span { start, len: 1, kind: rng.random_range(0..TYPES.len()) });
        }
    }
    predicted
}

fn render(spans: &[Span], words: usize, scheme: Scheme) -> Vec<String> {
    let mut tags = vec!["O".to_owned(); words];
    for span in spans {
        let kind = TYPES[span.kind];
        for offset in 0..span.len {
            let prefix = match (scheme, offset, span.len) {
                (Scheme::Bioes, _, 1) => "S",
                (Scheme::Bioes, o, l) if o + 1 == l => "E",
                (_, 0, _) => "B",
                _ => "I",
            };
            tags[span.start + offset] = format!("{prefix}-{kind}");
        }
    }
    tags
}

/// Token-level noise as a tagger makes it: 1% of tags replaced by any tag of the scheme, so
/// ill-formed sequences (I- after O, B- then E- of another type) occur and the modes differ.
fn add_noise(rng: &mut ChaCha8Rng, tags: &mut [String], scheme: Scheme) {
    let prefixes: &[&str] = match scheme {
        Scheme::Bio => &["B", "I"],
        Scheme::Bioes => &["B", "I", "E", "S"],
    };
    for tag in tags.iter_mut() {
        if rng.random_bool(0.01) {
            *tag = match rng.random_range(0..=prefixes.len()) {
                0 => "O".to_owned(),
                k => format!("{}-{}", prefixes[k - 1], TYPES[rng.random_range(0..TYPES.len())]),
            };
        }
    }
}

type Corpus = (Vec<Vec<String>>, Vec<Vec<String>>);

fn corpus(scheme: Scheme, seed: u64) -> Corpus {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut gold, mut predicted) = (Vec::new(), Vec::new());
    let mut tokens = 0;
    while tokens < TOKENS {
        let words = rng.random_range(5..=40).min(TOKENS - tokens).max(1);
        let spans = random_spans(&mut rng, words);
        let guessed_spans = perturb(&mut rng, &spans, words);
        gold.push(render(&spans, words, scheme));
        let mut guessed = render(&guessed_spans, words, scheme);
        add_noise(&mut rng, &mut guessed, scheme);
        predicted.push(guessed);
        tokens += words;
    }
    (gold, predicted)
}

fn best_of(mut run: impl FnMut()) -> Duration {
    (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .min()
        .expect("at least one run")
}

fn report(what: &str, tokens: usize, time: Duration) {
    let seconds = time.as_secs_f64();
    let rate = tokens as f64 / seconds;
    println!("{what:<40} {tokens} tokens  {seconds:.4} s  {rate:.0} tokens/s");
}

fn main() {
    let cases = [
        ("evaluate default, BIO", Scheme::Bio, Mode::Default),
        ("evaluate strict IOB2, BIO", Scheme::Bio, Mode::Strict(StrictScheme::Iob2)),
        ("evaluate default, BIOES", Scheme::Bioes, Mode::Default),
        ("evaluate strict IOBES, BIOES", Scheme::Bioes, Mode::Strict(StrictScheme::Iobes)),
    ];
    for (what, scheme, mode) in cases {
        let (gold, predicted) = corpus(scheme, 2024);
        let tokens: usize = gold.iter().map(Vec::len).sum();
        let mut f1 = 0.0;
        let time = best_of(|| {
            let result = evaluate(&gold, &predicted, mode, ZeroDivision::Zero);
            f1 = result.expect("generated tags are valid").f1;
        });
        report(&format!("{what} (f1 {f1:.4})"), tokens, time);
    }
    let (gold, _) = corpus(Scheme::Bioes, 2024);
    let tokens: usize = gold.iter().map(Vec::len).sum();
    let time = best_of(|| {
        let entities = extract_entities(&gold, Mode::Default).expect("valid tags");
        assert!(!entities.is_empty());
    });
    report("extract_entities default, BIOES", tokens, time);
}
