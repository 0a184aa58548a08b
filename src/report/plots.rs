//! SVG plots (plotters): validation F1 per epoch of every run, one chart per model × scheme
//! (× dataset …) with a line per run coloured by learning rate; and test F1 against learning
//! rate, one chart per dataset (× other axes) with a mean line per model × scheme, ± one sample
//! standard deviation as error bars, and every seed as a point; with a `train_fraction` axis,
//! the learning curve the same way over the fraction of the training split. Text is plain SVG
//! `<text>`, so no font files are needed.

use std::collections::BTreeMap;
use std::error::Error;

use plotters::prelude::*;

use super::frames::param_text;
use super::study::{axes_without, Cell};
use crate::store::{EpochRow, RunResult};

/// A rendered chart and where it goes, relative to the results directory.
#[derive(Debug, Clone)]
pub(crate) struct Plot {
    pub file: String,
    pub title: String,
    pub svg: String,
}

const SIZE: (u32, u32) = (960, 560);
/// Tableau 10: distinguishable, and readable in grey print.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

type PlotResult<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// Every plot of the report, in a stable order with unique file names.
pub(crate) fn plots(
    cells: &[Cell<'_>],
    cell_axes: &[String],
    epochs: &BTreeMap<String, Vec<EpochRow>>,
) -> PlotResult<Vec<Plot>> {
    let mut out = Vec::new();
    let mut taken = Vec::new();
    for chart in epoch_charts(cells, cell_axes) {
        out.push(render_epochs(&chart, epochs, &mut taken)?);
    }
    for chart in lr_charts(cells, cell_axes) {
        out.push(render_over(&chart, &LEARNING_RATE, &mut taken)?);
    }
    if cell_axes.iter().any(|a| a == TRAIN_FRACTION.param) {
        let axes = axes_without(cell_axes, &["model", "scheme", TRAIN_FRACTION.param]);
        for chart in charts_by(cells, cell_axes, axes) {
            out.push(render_over(&chart, &TRAIN_FRACTION, &mut taken)?);
        }
    }
    out.retain(|p| !p.svg.is_empty());
    Ok(out)
}

/// `plots/<prefix>_<values>.svg`, made unique among `taken`.
fn file_name(prefix: &str, values: &[String], taken: &mut Vec<String>) -> String {
    let slug: Vec<String> = values
        .iter()
        .map(|v| v.chars().map(|c| if c.is_ascii_alphanumeric() || "-._".contains(c) { c } else { '_' }).collect())
        .collect();
    let base = format!("plots/{prefix}_{}", slug.join("_"));
    let mut name = format!("{base}.svg");
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}.svg");
        n += 1;
    }
    taken.push(name.clone());
    name
}

fn describe(axes: &[String], values: &[String], dry_run: bool) -> String {
    let parts: Vec<String> = axes.iter().zip(values).map(|(a, v)| format!("{a} {v}")).collect();
    let dry = if dry_run { " (DRY RUN)" } else { "" };
    format!("{}{dry}", parts.join(", "))
}

/// Cells that share every axis in `axes`, in order of first appearance.
struct Chart<'c, 'a> {
    axes: Vec<String>,
    values: Vec<String>,
    dry_run: bool,
    cells: Vec<&'c Cell<'a>>,
}

fn charts_by<'c, 'a>(cells: &'c [Cell<'a>], cell_axes: &[String], axes: Vec<String>) -> Vec<Chart<'c, 'a>> {
    let positions: Vec<usize> = axes.iter().filter_map(|a| cell_axes.iter().position(|c| c == a)).collect();
    let mut charts: Vec<Chart<'c, 'a>> = Vec::new();
    for cell in cells {
        let values: Vec<String> = positions.iter().map(|&p| cell.group.key[p].clone()).collect();
        match charts.iter_mut().find(|c| c.values == values && c.dry_run == cell.group.dry_run) {
            Some(c) => c.cells.push(cell),
            None => charts.push(Chart { axes: axes.clone(), values, dry_run: cell.group.dry_run, cells: vec![cell] }),
        }
    }
    charts
}

fn epoch_charts<'c, 'a>(cells: &'c [Cell<'a>], cell_axes: &[String]) -> Vec<Chart<'c, 'a>> {
    charts_by(cells, cell_axes, axes_without(cell_axes, &["learning_rate"]))
}

fn lr_charts<'c, 'a>(cells: &'c [Cell<'a>], cell_axes: &[String]) -> Vec<Chart<'c, 'a>> {
    charts_by(cells, cell_axes, axes_without(cell_axes, &["model", "scheme", "learning_rate"]))
}

/// A chart of test F1 over the values of one numeric axis, a line per model × scheme.
struct Over {
    /// The run parameter on the x axis.
    param: &'static str,
    /// The file name prefix.
    prefix: &'static str,
    title: &'static str,
    desc: &'static str,
}

const LEARNING_RATE: Over =
    Over { param: "learning_rate", prefix: "test_f1_vs_lr", title: "test F1 by learning rate", desc: "learning rate" };

/// The learning curve: test F1 against the share of the training split kept.
const TRAIN_FRACTION: Over = Over {
    param: "train_fraction",
    prefix: "learning_curve",
    title: "learning curve",
    desc: "train_fraction (mean training sentences)",
};

type Area<'b> = DrawingArea<SVGBackend<'b>, plotters::coord::Shift>;

/// The title across the top, then the plot on the left and a legend column on the right, so
/// the legend never hides data.
fn layout<'b>(root: &Area<'b>, title: &str) -> PlotResult<(Area<'b>, Area<'b>)> {
    let body = root.titled(title, ("sans-serif", 20))?;
    Ok(body.split_horizontally(SIZE.0 - LEGEND_WIDTH))
}

const LEGEND_WIDTH: u32 = 220;

fn draw_legend(area: &Area<'_>, heading: &str, entries: &[(String, RGBColor)]) -> PlotResult<()> {
    area.draw(&Text::new(heading.to_string(), (8, 24), ("sans-serif", 15).into_font().color(&BLACK)))?;
    for (i, (name, c)) in entries.iter().enumerate() {
        let y = 56 + 24 * i as i32;
        area.draw(&PathElement::new(vec![(8, y), (36, y)], c.stroke_width(3)))?;
        area.draw(&Text::new(name.clone(), (44, y - 8), ("sans-serif", 15).into_font().color(&BLACK)))?;
    }
    Ok(())
}

/// A y range with a little room around the data, on a 0.05 grid.
fn y_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let lo = (((lo - 0.02) * 20.0).floor() / 20.0).max(0.0);
    let hi = (((hi + 0.02) * 20.0).ceil() / 20.0).min(1.05).max(lo + 0.1);
    lo..hi
}

/// Tick label at whole numbers only (the f64 axis may place ticks between them).
/// The x axis of a chart: its range, how many ticks, the labels of whole positions.
struct Axis<'l> {
    range: std::ops::Range<f64>,
    ticks: usize,
    label: &'l dyn Fn(usize) -> Option<String>,
    desc: &'static str,
}

/// The chart's coordinates and mesh in `plot`: `x` as given, `y` a score range.
fn chart_axes<'a, 'b>(
    plot: &'a Area<'b>,
    x: Axis<'_>,
    y: std::ops::Range<f64>,
    y_desc: &str,
) -> PlotResult<ChartCtx<'a, 'b>> {
    let mut ctx =
        ChartBuilder::on(plot).margin(16).x_label_area_size(50).y_label_area_size(64).build_cartesian_2d(x.range, y)?;
    ctx.configure_mesh()
        .disable_x_mesh()
        .x_labels(x.ticks)
        .x_label_formatter(&|v| whole_label(*v, x.label))
        .y_label_formatter(&|v| format!("{v:.2}"))
        .x_desc(x.desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 15))
        .max_light_lines(1)
        .draw()?;
    Ok(ctx)
}

fn whole_label(v: f64, labels: &dyn Fn(usize) -> Option<String>) -> String {
    let r = v.round();
    if (v - r).abs() > 1e-6 || r < 0.0 {
        return String::new();
    }
    labels(r as usize).unwrap_or_default()
}

/// One run's validation F1 per epoch.
struct RunLine {
    /// Position of the run's cell in the chart: one colour per learning rate.
    rate_index: usize,
    rate: String,
    points: Vec<(f64, f64)>,
}

fn epoch_lines(chart: &Chart<'_, '_>, epochs: &BTreeMap<String, Vec<EpochRow>>) -> Vec<RunLine> {
    let mut lines = Vec::new();
    for (rate_index, cell) in chart.cells.iter().enumerate() {
        for run in &cell.group.runs {
            let Some(rows) = epochs.get(&run.id).filter(|r| !r.is_empty()) else { continue };
            let points = rows.iter().map(|r| (r.epoch as f64, r.val_f1)).collect();
            lines.push(RunLine { rate_index, rate: param_text(run, "learning_rate"), points });
        }
    }
    lines
}

fn render_epochs(
    chart: &Chart<'_, '_>,
    epochs: &BTreeMap<String, Vec<EpochRow>>,
    taken: &mut Vec<String>,
) -> PlotResult<Plot> {
    let file = file_name("val_f1", &chart.values, taken);
    let title = format!("validation F1 per epoch: {}", describe(&chart.axes, &chart.values, chart.dry_run));
    let lines = epoch_lines(chart, epochs);
    if lines.is_empty() {
        return Ok(Plot { file, title, svg: String::new() });
    }
    let max_epoch = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)).fold(1.0, f64::max);
    let ys = y_range(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot, legend) = layout(&root, &title)?;
        let label = |e: usize| (e >= 1).then(|| e.to_string());
        let x = Axis { range: 0.5..max_epoch + 0.5, ticks: 2 * max_epoch as usize + 2, label: &label, desc: "epoch" };
        let mut ctx = chart_axes(&plot, x, ys, "validation F1 (seqeval micro)")?;
        let mut entries: Vec<(String, RGBColor)> = Vec::new();
        let mut labelled = Vec::new();
        for RunLine { rate_index: i, rate, points } in &lines {
            let c = color(*i);
            ctx.draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))?;
            ctx.draw_series(points.iter().map(|p| Circle::new(*p, 3, c.filled())))?;
            if !labelled.contains(i) {
                labelled.push(*i);
                let runs = lines.iter().filter(|l| l.rate_index == *i).count();
                entries.push((format!("lr={rate} ({runs} runs)"), c));
            }
        }
        draw_legend(&legend, "one line per run", &entries)?;
        root.present()?;
    }
    Ok(Plot { file, title, svg })
}

/// One model × scheme series of the learning-rate chart.
struct LrSeries {
    name: String,
    /// (learning-rate position, mean, std, every seed's test F1)
    points: Vec<(usize, f64, Option<f64>, Vec<f64>)>,
}

fn lr_series(chart: &Chart<'_, '_>, rates: &[String], param: &str) -> Vec<LrSeries> {
    let mut series: Vec<LrSeries> = Vec::new();
    for cell in &chart.cells {
        let run = cell.group.runs[0];
        let name = format!("{} / {}", param_text(run, "model"), param_text(run, "scheme"));
        let (Some(f1), Some(x)) = (cell.test_f1(), rates.iter().position(|r| *r == param_text(run, param))) else {
            continue;
        };
        let seeds: Vec<f64> = cell.group.runs.iter().filter_map(|r| r.test.map(|t| t.f1)).collect();
        let point = (x, f1.mean, f1.std, seeds);
        match series.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push(point),
            None => series.push(LrSeries { name, points: vec![point] }),
        }
    }
    for s in &mut series {
        s.points.sort_by_key(|p| p.0);
    }
    series
}

/// Values of `param` among a chart's runs, by value.
fn rates_of(chart: &Chart<'_, '_>, param: &str) -> Vec<String> {
    let mut rates: Vec<(f64, String)> = Vec::new();
    for run in chart.cells.iter().flat_map(|c| c.group.runs.iter()) {
        let text = param_text(run, param);
        if !rates.iter().any(|(_, t)| *t == text) {
            rates.push((param_value(run, param), text));
        }
    }
    rates.sort_by(|a, b| a.0.total_cmp(&b.0));
    rates.into_iter().map(|(_, t)| t).collect()
}

fn param_value(run: &RunResult, param: &str) -> f64 {
    run.params.get(param).and_then(|v| v.as_f64()).unwrap_or(f64::NAN)
}

/// Mean training sentences of the chart's runs at each value of `param`, from their results.
fn train_sizes(chart: &Chart<'_, '_>, param: &str, values: &[String]) -> Vec<Option<f64>> {
    let runs: Vec<&RunResult> = chart.cells.iter().flat_map(|c| c.group.runs.iter().copied()).collect();
    values
        .iter()
        .map(|v| {
            let sizes: Vec<f64> =
                runs.iter().filter(|r| param_text(r, param) == *v).filter_map(|r| train_size(r)).collect();
            (!sizes.is_empty()).then(|| sizes.iter().sum::<f64>() / sizes.len() as f64)
        })
        .collect()
}

/// The number of training sentences a run recorded (`details.split.train`).
pub(crate) fn train_size(run: &RunResult) -> Option<f64> {
    run.details.get("split")?.get("train")?.as_f64()
}

fn render_over(chart: &Chart<'_, '_>, over: &Over, taken: &mut Vec<String>) -> PlotResult<Plot> {
    let file = file_name(over.prefix, &chart.values, taken);
    let what = describe(&chart.axes, &chart.values, chart.dry_run);
    let title = if what.is_empty() { over.title.to_string() } else { format!("{}: {what}", over.title) };
    let rates = rates_of(chart, over.param);
    let series = lr_series(chart, &rates, over.param);
    let sizes = match over.param {
        "train_fraction" => train_sizes(chart, over.param, &rates),
        _ => vec![None; rates.len()],
    };
    let labels: Vec<String> =
        rates.iter().zip(&sizes).map(|(r, n)| n.map_or_else(|| r.clone(), |n| format!("{r} ({n:.0})"))).collect();
    if series.is_empty() {
        return Ok(Plot { file, title, svg: String::new() });
    }
    let ys = y_range(series.iter().flat_map(|s| {
        s.points.iter().flat_map(|(_, m, sd, seeds)| {
            let spread = sd.unwrap_or(0.0);
            seeds.iter().copied().chain([m - spread, m + spread])
        })
    }));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let (plot, legend) = layout(&root, &title)?;
        let label = |i: usize| labels.get(i).cloned();
        let x =
            Axis { range: -0.5..rates.len() as f64 - 0.5, ticks: 4 * rates.len() + 2, label: &label, desc: over.desc };
        let mut ctx = chart_axes(&plot, x, ys, "test F1 (mean ± std over replicates; dots: runs)")?;
        let width = 0.5 / series.len().max(1) as f64;
        for (k, s) in series.iter().enumerate() {
            draw_lr_series(&mut ctx, s, color(k), (k as f64 - (series.len() - 1) as f64 / 2.0) * width)?;
        }
        let entries: Vec<(String, RGBColor)> =
            series.iter().enumerate().map(|(k, s)| (s.name.clone(), color(k))).collect();
        draw_legend(&legend, "model / scheme", &entries)?;
        root.present()?;
    }
    Ok(Plot { file, title, svg })
}

type ChartCtx<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Mean line, ± std bars with caps, and the seeds as hollow circles, shifted by `dx` so
/// series at the same rate do not hide each other.
fn draw_lr_series(ctx: &mut ChartCtx<'_, '_>, s: &LrSeries, c: RGBColor, dx: f64) -> PlotResult<()> {
    let at = |x: usize| x as f64 + dx;
    let line = s.points.iter().map(|(x, m, _, _)| (at(*x), *m));
    ctx.draw_series(LineSeries::new(line, c.stroke_width(2)))?;
    for (x, m, sd, seeds) in &s.points {
        let x = at(*x);
        if let Some(sd) = sd {
            let cap = 0.03;
            let bars = [
                vec![(x, m - sd), (x, m + sd)],
                vec![(x - cap, m - sd), (x + cap, m - sd)],
                vec![(x - cap, m + sd), (x + cap, m + sd)],
            ];
            ctx.draw_series(bars.into_iter().map(|p| PathElement::new(p, c.stroke_width(2))))?;
        }
        ctx.draw_series(std::iter::once(Circle::new((x, *m), 5, c.filled())))?;
        ctx.draw_series(seeds.iter().map(|y| Circle::new((x + 0.04, *y), 3, c.stroke_width(1))))?;
    }
    Ok(())
}
