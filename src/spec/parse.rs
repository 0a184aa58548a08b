//! TOML text -> validated `Spec`, collecting every error of the file with its location.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::{closest, Locator, SpecError, SpecErrors, SpecLoadError};
use super::keys::{self, canonical_scheme, quoted, Kind};
use super::model::*;

type Node<'i> = Spanned<DeValue<'i>>;

/// Reads and validates a spec file.
pub fn load(path: &Path) -> Result<Spec, SpecLoadError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| SpecLoadError::Read { path: path.to_path_buf(), source })?;
    parse(path, &text).map_err(SpecLoadError::Invalid)
}

/// Validates spec text; `file` is used in error locations only.
pub fn parse(file: &Path, text: &str) -> Result<Spec, SpecErrors> {
    let loc = Locator::new(file, text);
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            return Err(SpecErrors(vec![loc.error(at, "", format!("invalid TOML: {}", e.message()))]));
        }
    };
    let mut v = Validator { loc, errors: Vec::new() };
    let spec = v.spec(file, text, root.get_ref(), root.span());
    v.errors.sort_by_key(|e| (e.line, e.col));
    match spec {
        Some(spec) if v.errors.is_empty() => Ok(spec),
        _ => Err(SpecErrors(v.errors)),
    }
}

struct Validator<'a> {
    loc: Locator<'a>,
    errors: Vec<SpecError>,
}

impl<'a> Validator<'a> {
    fn err(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        self.errors.push(self.loc.error(span.start, key, message));
    }

    fn spec(&mut self, file: &Path, text: &str, root: &DeTable<'_>, span: Range<usize>) -> Option<Spec> {
        self.unknown_keys(root, "", keys::TOP_LEVEL);
        let models = self.models(root.get("models"));
        let datasets = self.datasets(root.get("datasets"));
        let experiment = self.experiment(root.get("experiment"), span.clone());
        let train = self.train(root.get("train"));
        let declared = [root.get("models"), root.get("datasets")];
        let grid = self.grid(root.get("grid"), span, declared, (&models, &datasets));
        if let Some(grid) = &grid {
            self.early_stopping_needs_validation(root, grid, &train, &datasets);
        }
        let schedule = self.schedule(root.get("schedule"));
        if let Some(grid) = &grid {
            self.precision_needs_an_engine(root, grid, &train, &schedule.devices);
        }
        let slurm = self.slurm(root.get("slurm"));
        Some(Spec {
            file: file.to_path_buf(),
            source: text.to_string(),
            experiment: experiment?,
            grid: grid?,
            models,
            datasets,
            train,
            schedule,
            slurm,
        })
    }

    /// Early stopping watches the validation split: refuse it for a dataset whose split rule
    /// leaves none (a test or k-fold rule without `validation`), at the key that asks for it.
    fn early_stopping_needs_validation(
        &mut self,
        root: &DeTable<'_>,
        grid: &Grid,
        train: &BTreeMap<String, ParamValue>,
        datasets: &BTreeMap<String, DatasetEntry>,
    ) {
        const KEY: &str = "early_stopping_patience";
        let on = |v: &ParamValue| v.as_i64().is_some_and(|p| p > 0);
        let in_grid = grid.axes.iter().find(|(k, _)| k == KEY).is_some_and(|(_, vs)| vs.iter().any(on));
        let in_train = train.get(KEY).is_some_and(on);
        let used = grid.axes.iter().find(|(k, _)| k == "dataset").map(|(_, vs)| vs.clone()).unwrap_or_default();
        let without = used.iter().filter_map(|d| d.as_str()).find(|d| datasets.get(*d).is_some_and(lacks_validation));
        let (Some(dataset), true) = (without, in_grid || in_train) else { return };
        let table = if in_grid { "grid" } else { "train" };
        let node = match root.get(table).map(|t| t.get_ref()) {
            Some(DeValue::Table(t)) => t.get(KEY),
            _ => None,
        };
        let message = format!(
            "early stopping needs a validation split, and datasets.{dataset}'s split rule leaves none \
             (add validation = 0.1 to its split)"
        );
        self.err(node.map_or(0..0, |n| n.span()), &format!("{table}.{KEY}"), message);
    }

    /// Every (engine, precision) pair the grid can make must be computable on the sweep's
    /// devices (`train::precisions_of`); `auto` counts as fused where the devices are the CPU.
    fn precision_needs_an_engine(
        &mut self,
        root: &DeTable<'_>,
        grid: &Grid,
        train: &BTreeMap<String, ParamValue>,
        devices: &str,
    ) {
        use crate::train::{precisions_of, Engine};
        let values = |key: &str| -> (Vec<String>, &'static str) {
            match grid.axes.iter().find(|(k, _)| k == key) {
                Some((_, vs)) => (vs.iter().filter_map(|v| v.as_str().map(String::from)).collect(), "grid"),
                None => (train.get(key).and_then(|v| v.as_str()).map(String::from).into_iter().collect(), "train"),
            }
        };
        let ((engines, _), (precisions, table)) = (values("engine"), values("precision"));
        let cpu_only = matches!(super::devices::parse_devices(devices), Ok(super::devices::DeviceSelection::Cpu));
        let cuda_only = matches!(super::devices::parse_devices(devices), Ok(super::devices::DeviceSelection::Cuda(_)));
        // An `exclude` filter on engine and precision alone removes the pair from the grid.
        let excluded = |engine: &str, precision: &str| {
            grid.exclude.iter().any(|f| {
                f.keys().all(|k| k == "engine" || k == "precision")
                    && f.get("engine").is_none_or(|v| v.as_str() == Some(engine))
                    && f.get("precision").is_none_or(|v| v.as_str() == Some(precision))
            })
        };
        let refusal = engines.iter().filter_map(|e| Some((e, Engine::parse(e)?))).find_map(|(name, engine)| {
            if engine == Engine::Fused && cuda_only {
                return Some((
                    "engine",
                    "the fused engine runs on the CPU only; use engine = \"graph\" or \"auto\"".into(),
                ));
            }
            let resolved = if cpu_only { engine.resolve(true) } else { engine };
            let supported = precisions_of(resolved);
            let bad = precisions.iter().find(|p| !supported.contains(&p.as_str()) && !excluded(name, p))?;
            let via = if engine == Engine::Auto {
                "engine \"auto\" (the fused engine on the CPU)"
            } else {
                "the fused engine"
            };
            let message = format!(
                "precision \"{bad}\" is not computed by {via}, which supports {}; the graph engine \
                 (engine = \"graph\") supports {}",
                quoted(supported),
                quoted(precisions_of(Engine::Graph))
            );
            Some(("precision", message))
        });
        let Some((key, message)) = refusal else { return };
        let table = if key == "engine" {
            if grid.axes.iter().any(|(k, _)| k == "engine") {
                "grid"
            } else {
                "train"
            }
        } else {
            table
        };
        let node = match root.get(table).map(|t| t.get_ref()) {
            Some(DeValue::Table(t)) => t.get(key),
            _ => None,
        };
        self.err(node.map_or(0..0, |n| n.span()), &format!("{table}.{key}"), message);
    }

    fn unknown_keys(&mut self, table: &DeTable<'_>, path: &str, allowed: &[&str]) {
        for (key, _) in table.iter() {
            let name = key.get_ref().as_ref();
            if allowed.contains(&name) {
                continue;
            }
            let hint = match closest(name, allowed) {
                Some(c) => format!("did you mean \"{c}\"? allowed: {}", quoted(allowed)),
                None => format!("allowed: {}", quoted(allowed)),
            };
            self.err(key.span(), &join(path, name), format!("unknown key ({hint})"));
        }
    }

    /// The table under `key`, or an error when it is something else.
    fn table<'n, 'i>(&mut self, node: &'n Node<'i>, key: &str) -> Option<&'n DeTable<'i>> {
        match node.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.err(node.span(), key, format!("expected a table, got {}", type_name(other)));
                None
            }
        }
    }

    fn experiment(&mut self, node: Option<&Node<'_>>, doc: Range<usize>) -> Option<Experiment> {
        let Some(node) = node else {
            self.err(doc, "experiment", "missing table (add [experiment] with name = \"...\")");
            return None;
        };
        let t = self.table(node, "experiment")?;
        self.unknown_keys(t, "experiment", keys::EXPERIMENT_KEYS);
        let name = match t.get("name") {
            Some(n) => self.name_value(n, "experiment.name"),
            None => {
                self.err(node.span(), "experiment.name", "missing (a name of letters, digits, '-', '_' or '.')");
                None
            }
        };
        let description = t.get("description").and_then(|d| self.string(d, "experiment.description"));
        let output_dir = t.get("output_dir").and_then(|d| self.string(d, "experiment.output_dir")).map(PathBuf::from);
        let (name, description) = (name?, description.unwrap_or_default());
        let output_dir = output_dir.unwrap_or_else(|| Path::new("results").join(&name));
        Some(Experiment { name, description, output_dir })
    }

    fn name_value(&mut self, node: &Node<'_>, key: &str) -> Option<String> {
        let s = self.string(node, key)?;
        let ok = s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) && !s.starts_with('.');
        if !ok {
            self.err(node.span(), key, format!("invalid name \"{s}\" (letters, digits, '-', '_' or '.')"));
            return None;
        }
        Some(s)
    }

    fn string(&mut self, node: &Node<'_>, key: &str) -> Option<String> {
        match node.get_ref() {
            DeValue::String(s) if !s.is_empty() => Some(s.to_string()),
            DeValue::String(_) => {
                self.err(node.span(), key, "must not be empty (a non-empty string)");
                None
            }
            other => {
                self.err(node.span(), key, format!("expected a string, got {}", type_name(other)));
                None
            }
        }
    }

    fn models(&mut self, node: Option<&Node<'_>>) -> BTreeMap<String, ModelSource> {
        let mut out = BTreeMap::new();
        let Some(t) = node.and_then(|n| self.table(n, "models")) else {
            return out;
        };
        for (alias, value) in t.iter() {
            let path = format!("models.{}", alias.get_ref());
            if let Some(source) = self.model(value, &path) {
                out.insert(alias.get_ref().to_string(), source);
            }
        }
        out
    }

    fn model(&mut self, node: &Node<'_>, path: &str) -> Option<ModelSource> {
        let t = self.table(node, path)?;
        self.unknown_keys(t, path, keys::MODEL_KEYS);
        let hub = t.get("hub").and_then(|v| self.string(v, &join(path, "hub")));
        let revision = t.get("revision").and_then(|v| self.string(v, &join(path, "revision")));
        let local = t.get("path").and_then(|v| self.string(v, &join(path, "path")));
        match (hub, local) {
            (Some(id), None) => {
                if !id.contains('/') && !id.is_empty() {
                    // Hub ids without an owner exist (bert-base-cased), so this is allowed.
                }
                Some(ModelSource::Hub { id, revision })
            }
            (None, Some(path_value)) => {
                if revision.is_some() {
                    self.err(
                        node.span(),
                        &join(path, "revision"),
                        "only allowed with hub (a local path has no revision)",
                    );
                }
                Some(ModelSource::Path { path: path_value })
            }
            (Some(_), Some(_)) => {
                self.err(
                    node.span(),
                    path,
                    "both hub and path given (exactly one of hub = \"owner/name\" or path = \"dir\")",
                );
                None
            }
            (None, None) => {
                if t.get("hub").is_none() && t.get("path").is_none() {
                    self.err(node.span(), path, "no source (exactly one of hub = \"owner/name\" or path = \"dir\")");
                }
                None
            }
        }
    }

    fn datasets(&mut self, node: Option<&Node<'_>>) -> BTreeMap<String, DatasetEntry> {
        let mut out = BTreeMap::new();
        let Some(t) = node.and_then(|n| self.table(n, "datasets")) else {
            return out;
        };
        for (alias, value) in t.iter() {
            let path = format!("datasets.{}", alias.get_ref());
            if let Some(toml::Value::Table(table)) =
                self.plain(value, &path).filter(|_| self.table(value, &path).is_some())
            {
                self.dataset_config(value, &path, &table);
                out.insert(alias.get_ref().to_string(), DatasetEntry { table });
            }
        }
        out
    }

    /// Checks a dataset table against the data module's config (keys, types, split rule),
    /// locating each problem at its key when it names one.
    fn dataset_config(&mut self, node: &Node<'_>, path: &str, table: &toml::Table) {
        let DeValue::Table(t) = node.get_ref() else { return };
        let span_of = |field: &str| {
            let head = field.split(['.', '[']).next().unwrap_or(field);
            t.get(head).map(|v| v.span()).unwrap_or(node.span())
        };
        match crate::data::DatasetConfig::deserialize(toml::Value::Table(table.clone())) {
            Err(e) => {
                let message = e.message().trim().replace('`', "\"");
                let field = message.split('"').nth(1).filter(|f| table.contains_key(*f)).map(str::to_string);
                let key = field.as_deref().map_or(path.to_string(), |f| join(path, f));
                let message = match (message.strip_prefix("unknown field "), field.as_deref()) {
                    (Some(rest), Some(f)) => {
                        let expected: Vec<&str> = rest.split('"').skip(3).step_by(2).collect();
                        match closest(f, &expected) {
                            Some(c) => format!("unknown key (did you mean \"{c}\"? allowed: {})", quoted(&expected)),
                            None => format!("unknown key (allowed: {})", quoted(&expected)),
                        }
                    }
                    _ => message,
                };
                self.err(field.as_deref().map_or(node.span(), span_of), &key, message);
            }
            Ok(config) => {
                for (field, message) in config.check() {
                    self.err(span_of(&field), &join(path, &field), message);
                }
            }
        }
    }

    /// Converts a spanned node to a plain `toml::Value` (datetimes are rejected).
    fn plain(&mut self, node: &Node<'_>, path: &str) -> Option<toml::Value> {
        Some(match node.get_ref() {
            DeValue::String(s) => toml::Value::String(s.to_string()),
            DeValue::Integer(i) => match int_of(i) {
                Some(i) => toml::Value::Integer(i),
                None => {
                    self.err(node.span(), path, "integer out of range (a 64-bit signed integer)");
                    return None;
                }
            },
            DeValue::Float(f) => toml::Value::Float(parse_float(f.as_str())),
            DeValue::Boolean(b) => toml::Value::Boolean(*b),
            DeValue::Datetime(_) => {
                self.err(node.span(), path, "dates are not allowed here");
                return None;
            }
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    out.push(self.plain(item, &format!("{path}[{i}]"))?);
                }
                toml::Value::Array(out)
            }
            DeValue::Table(t) => {
                let mut out = toml::Table::new();
                for (k, v) in t.iter() {
                    out.insert(k.get_ref().to_string(), self.plain(v, &join(path, k.get_ref()))?);
                }
                toml::Value::Table(out)
            }
        })
    }

    fn train(&mut self, node: Option<&Node<'_>>) -> BTreeMap<String, ParamValue> {
        let mut out: BTreeMap<String, ParamValue> =
            keys::TRAIN_KEYS.iter().map(|k| (k.name.to_string(), (k.default)())).collect();
        let Some(t) = node.and_then(|n| self.table(n, "train")) else {
            return out;
        };
        let names: Vec<&str> = keys::TRAIN_KEYS.iter().map(|k| k.name).collect();
        self.unknown_keys(t, "train", &names);
        for (key, value) in t.iter() {
            let Some(spec) = keys::train_key(key.get_ref()) else {
                continue;
            };
            let path = format!("train.{}", spec.name);
            if let DeValue::Array(_) = value.get_ref() {
                self.err(
                    value.span(),
                    &path,
                    format!("expected a single value ({}); to vary it, list the values in [grid]", spec.kind.allowed()),
                );
                continue;
            }
            if let Some(v) = self.value(value, &path, spec.kind, &Aliases::none()) {
                out.insert(spec.name.to_string(), v);
            }
        }
        out
    }

    /// One scalar value of the given kind, normalised.
    fn value(&mut self, node: &Node<'_>, path: &str, kind: Kind, aliases: &Aliases<'_>) -> Option<ParamValue> {
        let raw = node.get_ref();
        let bad = |v: &mut Self, got: String| {
            v.err(node.span(), path, format!("{got} ({})", kind.allowed()));
            None
        };
        match (kind, raw) {
            (Kind::Int { min }, DeValue::Integer(i)) => match int_of(i) {
                Some(x) if x >= min => Some(ParamValue::Int(x)),
                Some(x) => bad(self, format!("must be >= {min}, got {x}")),
                None => bad(self, "integer out of range".into()),
            },
            (Kind::Float { min, max, positive }, DeValue::Integer(_) | DeValue::Float(_)) => {
                let x = match raw {
                    DeValue::Integer(i) => int_of(i).map_or(f64::NAN, |i| i as f64),
                    DeValue::Float(f) => parse_float(f.as_str()),
                    _ => unreachable!(),
                };
                let ok = x.is_finite() && x < max && if positive { x > 0.0 } else { x >= min };
                if ok {
                    Some(ParamValue::Float(x))
                } else {
                    bad(self, format!("out of range, got {}", format_float(x)))
                }
            }
            (Kind::Fraction, DeValue::Integer(_) | DeValue::Float(_)) => {
                let x = match raw {
                    DeValue::Integer(i) => int_of(i).map_or(f64::NAN, |i| i as f64),
                    DeValue::Float(f) => parse_float(f.as_str()),
                    _ => unreachable!(),
                };
                match x > 0.0 && x <= 1.0 {
                    true => Some(ParamValue::Float(x)),
                    false => bad(self, format!("out of range, got {}", format_float(x))),
                }
            }
            (Kind::Bool, DeValue::Boolean(b)) => Some(ParamValue::Bool(*b)),
            (Kind::Text, DeValue::String(s)) if !s.is_empty() => Some(ParamValue::Str(s.to_string())),
            (Kind::Choice(choices), DeValue::String(s)) => {
                if choices.contains(&s.as_ref()) {
                    Some(ParamValue::Str(s.to_string()))
                } else {
                    let hint = closest(s, choices).map(|c| format!("did you mean \"{c}\"? ")).unwrap_or_default();
                    self.err(node.span(), path, format!("unknown value \"{s}\" ({hint}{})", kind.allowed()));
                    None
                }
            }
            (Kind::Scheme, DeValue::String(s)) => match canonical_scheme(s) {
                Some(c) => Some(ParamValue::Str(c.to_string())),
                None => bad(self, format!("unknown scheme \"{s}\"")),
            },
            (Kind::ModelAlias | Kind::DatasetAlias, DeValue::String(s)) => {
                let known = if kind == Kind::ModelAlias { aliases.models } else { aliases.datasets };
                if known.iter().any(|k| k == s.as_ref()) {
                    return Some(ParamValue::Str(s.to_string()));
                }
                let table = if kind == Kind::ModelAlias { "models" } else { "datasets" };
                let names: Vec<&str> = known.iter().map(String::as_str).collect();
                let hint = match closest(s, &names) {
                    Some(c) => format!("did you mean \"{c}\"? "),
                    None => String::new(),
                };
                let defined =
                    if names.is_empty() { "none defined".to_string() } else { format!("defined: {}", quoted(&names)) };
                self.err(
                    node.span(),
                    path,
                    format!("unknown {} alias \"{s}\" ({hint}{defined} in [{table}])", &table[..table.len() - 1]),
                );
                None
            }
            (_, other) => bad(self, format!("expected {}, got {}", kind_noun(kind), type_name(other))),
        }
    }

    fn grid(
        &mut self,
        node: Option<&Node<'_>>,
        doc: Range<usize>,
        declared: [Option<&Node<'_>>; 2],
        parsed: (&BTreeMap<String, ModelSource>, &BTreeMap<String, DatasetEntry>),
    ) -> Option<Grid> {
        let [models_node, datasets_node] = declared;
        let (models, datasets) = parsed;
        let Some(node) = node else {
            self.err(doc, "grid", "missing table (add [grid] with models, schemes, learning_rates, datasets)");
            return None;
        };
        let t = self.table(node, "grid")?;
        self.unknown_keys(t, "grid", &keys::grid_keys());
        // Aliases count as defined even when their table has errors (reported there), so one
        // mistake does not cascade into "unknown alias" errors.
        let model_names = defined(table_keys(models_node), models.keys());
        let dataset_names = defined(table_keys(datasets_node), datasets.keys());
        let aliases = Aliases { models: &model_names, datasets: &dataset_names };
        let mut grid = Grid::default();
        let mut complete = true;
        for (key, param, kind) in keys::MAIN_AXES {
            match t.get(*key) {
                Some(values) => match self.axis(values, &format!("grid.{key}"), *kind, &aliases) {
                    Some(vals) => grid.axes.push((param.to_string(), vals)),
                    None => complete = false,
                },
                None if *key == "seeds" => grid.axes.push(("seed".into(), vec![ParamValue::Int(keys::DEFAULT_SEED)])),
                None => {
                    self.err(
                        node.span(),
                        &format!("grid.{key}"),
                        format!("missing axis (a non-empty list; each value {})", kind.allowed()),
                    );
                    complete = false;
                }
            }
        }
        for spec in keys::TRAIN_KEYS {
            if let Some(values) = t.get(spec.name) {
                match self.axis(values, &format!("grid.{}", spec.name), spec.kind, &aliases) {
                    Some(vals) => grid.axes.insert(grid.axes.len() - 1, (spec.name.to_string(), vals)),
                    None => complete = false,
                }
            }
        }
        grid.exclude = self.filters(t.get("exclude"), "grid.exclude", &aliases);
        grid.include = self.filters(t.get("include"), "grid.include", &aliases);
        complete.then_some(grid)
    }

    /// A non-empty list of distinct values of one kind.
    fn axis(&mut self, node: &Node<'_>, path: &str, kind: Kind, aliases: &Aliases<'_>) -> Option<Vec<ParamValue>> {
        let DeValue::Array(items) = node.get_ref() else {
            let got = type_name(node.get_ref());
            self.err(
                node.span(),
                path,
                format!("expected a list, got {got} (a non-empty list; each value {}; e.g. [a, b])", kind.allowed()),
            );
            return None;
        };
        if items.is_empty() {
            self.err(node.span(), path, format!("empty axis (at least one value: {})", kind.allowed()));
            return None;
        }
        let mut out: Vec<ParamValue> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            match self.value(item, &item_path, kind, aliases) {
                Some(v) if out.iter().any(|o| o.canonical() == v.canonical()) => {
                    self.err(item.span(), &item_path, format!("duplicate value {} (each value once)", v.canonical()));
                    ok = false;
                }
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `exclude`/`include`: a list of inline tables of run parameters.
    fn filters(
        &mut self,
        node: Option<&Node<'_>>,
        path: &str,
        aliases: &Aliases<'_>,
    ) -> Vec<BTreeMap<String, ParamValue>> {
        let Some(node) = node else { return Vec::new() };
        let DeValue::Array(items) = node.get_ref() else {
            self.err(node.span(), path, format!("expected a list of tables, got {}", type_name(node.get_ref())));
            return Vec::new();
        };
        let names = keys::param_names();
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            let Some(t) = self.table(item, &item_path) else {
                continue;
            };
            if t.is_empty() {
                self.err(item.span(), &item_path, format!("empty filter (name run parameters: {})", quoted(&names)));
                continue;
            }
            self.unknown_keys(t, &item_path, &names);
            let mut filter = BTreeMap::new();
            for (k, v) in t.iter() {
                let Some(kind) = keys::param_kind(k.get_ref()) else {
                    continue;
                };
                if let Some(value) = self.value(v, &join(&item_path, k.get_ref()), kind, aliases) {
                    filter.insert(k.get_ref().to_string(), value);
                }
            }
            out.push(filter);
        }
        out
    }

    fn schedule(&mut self, node: Option<&Node<'_>>) -> ScheduleSpec {
        let mut s = ScheduleSpec::default();
        let Some(t) = node.and_then(|n| self.table(n, "schedule")) else {
            return s;
        };
        self.unknown_keys(t, "schedule", keys::SCHEDULE_KEYS);
        if let Some(v) = t.get("devices") {
            if let Some(d) = self.string(v, "schedule.devices") {
                match super::devices::check_devices(&d) {
                    Ok(()) => s.devices = d,
                    Err(msg) => self.err(v.span(), "schedule.devices", msg),
                }
            }
        }
        let int = |me: &mut Self, key: &str, min: i64| {
            t.get(key)
                .and_then(|v| me.value(v, &format!("schedule.{key}"), Kind::Int { min }, &Aliases::none()))
                .and_then(|v| v.as_i64())
                .map(|i| i as usize)
        };
        if let Some(n) = int(self, "runs_per_device", 1) {
            s.runs_per_device = n;
        }
        s.threads_per_run = int(self, "threads_per_run", 1);
        if let Some(n) = int(self, "retries", 0) {
            s.retries = n;
        }
        if let Some(v) = t.get("timeout") {
            s.timeout_secs = self.duration(v, "schedule.timeout");
        }
        s
    }

    /// Seconds from an integer or a string like "90s", "30m", "2h", "1h30m".
    fn duration(&mut self, node: &Node<'_>, path: &str) -> Option<u64> {
        let allowed = "seconds as an integer > 0, or a string like \"90s\", \"30m\", \"2h\", \"1h30m\"";
        let parsed = match node.get_ref() {
            DeValue::Integer(i) => int_of(i).filter(|&x| x > 0).map(|x| x as u64),
            DeValue::String(s) => parse_duration(s),
            _ => None,
        };
        if parsed.is_none() {
            self.err(node.span(), path, format!("invalid duration ({allowed})"));
        }
        parsed
    }

    fn slurm(&mut self, node: Option<&Node<'_>>) -> SlurmSpec {
        let mut s = SlurmSpec::default();
        let Some(t) = node.and_then(|n| self.table(n, "slurm")) else {
            return s;
        };
        let names: Vec<&str> = keys::SLURM_KEYS.iter().map(|(k, _)| *k).collect();
        self.unknown_keys(t, "slurm", &names);
        for (key, kind) in keys::SLURM_KEYS {
            if let Some(v) = t.get(*key).and_then(|v| self.value(v, &format!("slurm.{key}"), *kind, &Aliases::none())) {
                s.values.insert(key.to_string(), v);
            }
        }
        s
    }
}

struct Aliases<'a> {
    models: &'a [String],
    datasets: &'a [String],
}

impl Aliases<'_> {
    fn none() -> Aliases<'static> {
        Aliases { models: &[], datasets: &[] }
    }
}

/// Whether a dataset's split rule splits without a validation part.
fn lacks_validation(entry: &DatasetEntry) -> bool {
    let Some(split) = entry.table.get("split").and_then(|s| s.as_table()) else { return false };
    !split.contains_key("validation") && (split.contains_key("test") || split.contains_key("folds"))
}

/// Keys of a table node (empty when it is not a table).
fn table_keys(node: Option<&Node<'_>>) -> Vec<String> {
    match node.map(|n| n.get_ref()) {
        Some(DeValue::Table(t)) => t.iter().map(|(k, _)| k.get_ref().to_string()).collect(),
        _ => Vec::new(),
    }
}

fn defined<'k>(declared: Vec<String>, parsed: impl Iterator<Item = &'k String>) -> Vec<String> {
    let mut all = declared;
    all.extend(parsed.cloned());
    all.sort();
    all.dedup();
    all
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn int_of(i: &toml::de::DeInteger<'_>) -> Option<i64> {
    i64::from_str_radix(i.as_str(), i.radix()).ok()
}

fn parse_float(raw: &str) -> f64 {
    raw.replace('_', "").parse().unwrap_or(f64::NAN)
}

/// Parses "90s", "30m", "2h", "1h30m", "1d" or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u64>() {
        return (n > 0).then_some(n);
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return None,
        };
        total += digits.parse::<u64>().ok()? * unit;
        digits.clear();
    }
    (digits.is_empty() && total > 0).then_some(total)
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

fn kind_noun(kind: Kind) -> &'static str {
    match kind {
        Kind::Int { .. } => "an integer",
        Kind::Float { .. } | Kind::Fraction => "a number",
        Kind::Bool => "a boolean",
        _ => "a string",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("120"), Some(120));
        assert_eq!(parse_duration("2x"), None);
        assert_eq!(parse_duration("5"), Some(5));
        assert_eq!(parse_duration("m"), None);
    }
}
