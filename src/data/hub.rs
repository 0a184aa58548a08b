//! Hub datasets by id (`hub = "community-datasets/swedish_medical_ner"`, `config = "1177"`):
//! find the parquet files of a config, download them into the standard Hugging Face cache, or
//! read them from it offline.
//!
//! Environment, as `huggingface_hub` reads it: the cache is `HF_HUB_CACHE`, else
//! `HF_HOME/hub`, else `~/.cache/huggingface/hub`; the token is `HF_TOKEN`, else the
//! `token` file beside the cache; `HF_HUB_OFFLINE=1` (or true/yes/on) never touches the
//! network; `HF_ENDPOINT` replaces `https://huggingface.co`.
//!
//! Offline, the revision (default `main`) is read from
//! `<cache>/datasets--owner--name/refs/<revision>` (a 40-hex revision is used as the commit
//! itself) and the files are those under `snapshots/<commit>/`. Online, the file list comes
//! from the Hub API and each file is fetched with `hf_hub::api::sync`, which fills the same
//! layout.
//!
//! Which files belong to a config (see [`split_of`]): the parquet files under `<config>/`,
//! either `<config>/<split>-00000-of-00001.parquet` (the layout of repositories converted to
//! parquet, such as `community-datasets/swedish_medical_ner` on `main`) or
//! `<config>/<split>/0000.parquet` (the `refs/convert/parquet` revision). Without a config,
//! the files under `data/` or `default/`, or at the top level. Split names `train`,
//! `validation` (also `valid`, `dev`, `devel`) and `test` are read; others are ignored.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use super::error::DataError;

/// Where the Hub cache is and how to reach the Hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubEnv {
    pub cache_dir: PathBuf,
    pub token: Option<String>,
    pub offline: bool,
    pub endpoint: Option<String>,
}

impl HubEnv {
    /// The environment of this process.
    pub fn from_env() -> Self {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        HubEnv::from_vars(|name| std::env::var(name).ok(), home)
    }

    /// The environment from a variable lookup and a home directory.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>, home: Option<PathBuf>) -> Self {
        let hf_home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let cache = var("XDG_CACHE_HOME").map(PathBuf::from);
            let cache = cache.unwrap_or_else(|| home.unwrap_or_default().join(".cache"));
            cache.join("huggingface")
        });
        let cache_dir = var("HF_HUB_CACHE").map(PathBuf::from).unwrap_or_else(|| hf_home.join("hub"));
        let token = var("HF_TOKEN").filter(|t| !t.trim().is_empty());
        let token = token.or_else(|| Cache::new(cache_dir.clone()).token());
        let offline = var("HF_HUB_OFFLINE")
            .is_some_and(|v| ["1", "true", "yes", "on"].contains(&v.to_ascii_lowercase().as_str()));
        HubEnv { cache_dir, token, offline, endpoint: var("HF_ENDPOINT") }
    }
}

/// A dataset repository on the Hub and the config to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSource {
    pub repo: String,
    pub config: Option<String>,
    pub revision: Option<String>,
}

impl HubSource {
    fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or("main")
    }

    fn error(&self, message: impl Into<String>) -> DataError {
        DataError::Hub { repo: self.repo.clone(), message: message.into() }
    }
}

/// A split of a Hub config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SplitName {
    Train,
    Validation,
    Test,
}

/// Local parquet files of a config per split, shards in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SplitFiles {
    pub train: Vec<PathBuf>,
    pub validation: Vec<PathBuf>,
    pub test: Vec<PathBuf>,
}

impl SplitFiles {
    fn from_matches(mut matches: Vec<(SplitName, String, PathBuf)>) -> Self {
        matches.sort();
        let mut files = SplitFiles::default();
        for (split, _, path) in matches {
            match split {
                SplitName::Train => files.train.push(path),
                SplitName::Validation => files.validation.push(path),
                SplitName::Test => files.test.push(path),
            }
        }
        files
    }

    pub fn is_empty(&self) -> bool {
        self.train.is_empty() && self.validation.is_empty() && self.test.is_empty()
    }
}

/// The split a repository file belongs to, if it is a parquet file of `config`.
pub fn split_of(repo_path: &str, config: Option<&str>) -> Option<SplitName> {
    let rest = repo_path.strip_suffix(".parquet")?;
    let rest = match config {
        Some(config) => rest.strip_prefix(config)?.strip_prefix('/')?,
        None => ["data/", "default/"].iter().find_map(|prefix| rest.strip_prefix(prefix)).unwrap_or(rest),
    };
    let name = match rest.split_once('/') {
        Some((dir, file)) if !file.contains('/') => dir.strip_prefix("partial-").unwrap_or(dir),
        Some(_) => return None,
        None => rest.split('-').next().unwrap_or(rest),
    };
    match name {
        "train" => Some(SplitName::Train),
        "validation" | "valid" | "dev" | "devel" => Some(SplitName::Validation),
        "test" => Some(SplitName::Test),
        _ => None,
    }
}

/// Local paths of the config's parquet files, downloaded unless offline.
pub fn resolve(source: &HubSource, env: &HubEnv) -> Result<SplitFiles, DataError> {
    let files = if env.offline { resolve_offline(source, env)? } else { resolve_online(source, env)? };
    if files.is_empty() {
        let config = source.config.as_deref().unwrap_or("(none)");
        return Err(source.error(format!("no parquet files of config {config} at revision {}", source.revision())));
    }
    Ok(files)
}

/// `<cache>/datasets--owner--name`.
pub fn repo_cache_dir(cache_dir: &Path, repo: &str) -> PathBuf {
    cache_dir.join(format!("datasets--{}", repo.replace('/', "--")))
}

fn resolve_offline(source: &HubSource, env: &HubEnv) -> Result<SplitFiles, DataError> {
    let repo_dir = repo_cache_dir(&env.cache_dir, &source.repo);
    let commit = cached_commit(source, &repo_dir)?;
    let snapshot = repo_dir.join("snapshots").join(&commit);
    let mut matches = Vec::new();
    for relative in snapshot_files(&snapshot)? {
        if let Some(split) = split_of(&relative, source.config.as_deref()) {
            matches.push((split, relative.clone(), snapshot.join(&relative)));
        }
    }
    Ok(SplitFiles::from_matches(matches))
}

fn cached_commit(source: &HubSource, repo_dir: &Path) -> Result<String, DataError> {
    let revision = source.revision();
    if revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(revision.to_string());
    }
    let ref_path = repo_dir.join("refs").join(revision);
    std::fs::read_to_string(&ref_path).map(|commit| commit.trim().to_string()).map_err(|_| {
        source.error(format!(
            "revision {revision} is not in the cache ({} is missing) and HF_HUB_OFFLINE \
                 forbids downloading",
            ref_path.display()
        ))
    })
}

/// Paths of all files under a snapshot, relative and `/`-separated.
fn snapshot_files(snapshot: &Path) -> Result<Vec<String>, DataError> {
    let mut files = Vec::new();
    let mut stack = vec![snapshot.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| DataError::io(&dir, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(relative) = path.strip_prefix(snapshot) {
                let parts: Vec<_> = relative.iter().map(|p| p.to_string_lossy()).collect();
                files.push(parts.join("/"));
            }
        }
    }
    Ok(files)
}

fn resolve_online(source: &HubSource, env: &HubEnv) -> Result<SplitFiles, DataError> {
    let api_error =
        |action: String| move |e| DataError::HubApi { repo: source.repo.clone(), action, source: Box::new(e) };
    let mut builder =
        ApiBuilder::from_cache(Cache::new(env.cache_dir.clone())).with_token(env.token.clone()).with_progress(false);
    if let Some(endpoint) = &env.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let api = builder.build().map_err(api_error("cannot start the Hub client".into()))?;
    let repo = Repo::with_revision(source.repo.clone(), RepoType::Dataset, source.revision().into());
    let api_repo = api.repo(repo);
    let info =
        api_repo.info().map_err(api_error(format!("cannot list the files of revision {}", source.revision())))?;
    let mut matches = Vec::new();
    for sibling in info.siblings {
        if let Some(split) = split_of(&sibling.rfilename, source.config.as_deref()) {
            let local = api_repo
                .get(&sibling.rfilename)
                .map_err(api_error(format!("cannot download {}", sibling.rfilename)))?;
            matches.push((split, sibling.rfilename, local));
        }
    }
    Ok(SplitFiles::from_matches(matches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    #[test]
    fn files_of_a_config_are_found_in_both_layouts() {
        let config = Some("1177");
        assert_eq!(split_of("1177/train-00000-of-00001.parquet", config), Some(SplitName::Train));
        assert_eq!(split_of("1177/test/0000.parquet", config), Some(SplitName::Test));
        assert_eq!(split_of("1177/partial-train/0000.parquet", config), Some(SplitName::Train));
        assert_eq!(split_of("1177/validation.parquet", config), Some(SplitName::Validation));
        assert_eq!(split_of("lt/train-00000-of-00001.parquet", config), None);
        assert_eq!(split_of("1177/train-00000-of-00001.arrow", config), None);
        assert_eq!(split_of("11770/train.parquet", config), None);
    }

    #[test]
    fn files_without_a_config_come_from_data_or_the_top_level() {
        assert_eq!(split_of("data/dev-00000-of-00001.parquet", None), Some(SplitName::Validation));
        assert_eq!(split_of("test.parquet", None), Some(SplitName::Test));
        assert_eq!(split_of("other/train.parquet", None), None);
        assert_eq!(split_of("data/unsupervised-0.parquet", None), None);
    }

    #[test]
    fn environment_follows_huggingface_hub() {
        let vars: HashMap<&str, &str> = [("HF_HOME", "/h"), ("HF_TOKEN", "t"), ("HF_HUB_OFFLINE", "True")].into();
        let env = HubEnv::from_vars(|k| vars.get(k).map(|v| v.to_string()), None);
        assert_eq!(env.cache_dir, PathBuf::from("/h/hub"));
        assert_eq!(env.token.as_deref(), Some("t"));
        assert!(env.offline);
        let env = HubEnv::from_vars(|_| None, Some(PathBuf::from("/home/u")));
        assert_eq!(env.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert!(!env.offline);
    }

    /// A tiny stand-in for the Hub: the API listing and `resolve/` downloads of one file.
    /// Returns its address and the requests it saw (request line and authorization).
    fn fake_hub(file: &'static str, body: Vec<u8>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let request = read_request(&mut stream);
                log.lock().unwrap().push(request.clone());
                stream.write_all(&fake_response(&request, file, &body)).unwrap();
            }
        });
        (address, seen)
    }

    fn read_request(stream: &mut std::net::TcpStream) -> String {
        let mut reader = BufReader::new(stream);
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                return lines.join("\n");
            }
            lines.push(line.trim().to_string());
        }
    }

    fn fake_response(request: &str, file: &str, body: &[u8]) -> Vec<u8> {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let (status, headers, content) = if request.starts_with("GET /api/datasets/o/n/revision/main ") {
            let listing = format!(
                r#"{{"sha": "{commit}", "siblings": [{{"rfilename": "README.md"}}, {{"rfilename": "{file}"}}]}}"#
            );
            ("200 OK", String::new(), listing.into_bytes())
        } else if request.starts_with(&format!("GET /datasets/o/n/resolve/main/{file} ")) {
            let partial = request.to_ascii_lowercase().contains("range: bytes=0-0");
            let content = if partial { body[..1].to_vec() } else { body.to_vec() };
            let headers = format!(
                "x-repo-commit: {commit}\r\netag: \"blob1\"\r\ncontent-range: bytes 0-{}/{}\r\n",
                content.len() - 1,
                body.len()
            );
            ("206 Partial Content", headers, content)
        } else {
            ("404 Not Found", String::new(), Vec::new())
        };
        let head =
            format!("HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n", content.len());
        [head.into_bytes(), content].concat()
    }

    #[test]
    fn online_download_fills_the_cache_that_offline_reads() {
        let file = "cfg/train-00000-of-00001.parquet";
        let body = b"not really parquet".to_vec();
        let (endpoint, seen) = fake_hub(file, body.clone());
        let dir = tempfile::tempdir().unwrap();
        let mut env = HubEnv {
            cache_dir: dir.path().join("hub"),
            token: Some("secret".into()),
            offline: false,
            endpoint: Some(endpoint),
        };
        let source = HubSource { repo: "o/n".into(), config: Some("cfg".into()), revision: None };
        let online = resolve(&source, &env).unwrap();
        assert_eq!(online.train.len(), 1);
        assert_eq!(std::fs::read(&online.train[0]).unwrap(), body);
        let requests = seen.lock().unwrap().clone();
        assert!(
            requests.iter().all(|r| r.to_ascii_lowercase().contains("authorization: bearer secret")),
            "{requests:?}"
        );
        env.offline = true;
        env.endpoint = Some("http://127.0.0.1:9".into());
        let offline = resolve(&source, &env).unwrap();
        assert_eq!(offline, online);
    }

    #[test]
    fn offline_without_the_revision_in_the_cache_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let env = HubEnv {
            cache_dir: dir.path().to_path_buf(),
            token: None,
            offline: true,
            endpoint: Some("http://127.0.0.1:9".into()),
        };
        let source = HubSource { repo: "o/n".into(), config: None, revision: None };
        let message = resolve(&source, &env).unwrap_err().to_string();
        assert!(message.starts_with("hub: o/n: revision main is not in the cache"), "{message}");
    }
}
