//! `${VAR}` and `${VAR:-default}` in path values, expanded when a run resolves its inputs
//! (never in run ids, so ids do not depend on the machine).

/// Expands environment references in `s`; `lookup` returns a variable's value.
pub fn expand_with(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("unclosed \"${{\" in \"{s}\""))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (lookup(name).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("environment variable {name} is not set (used in \"{s}\")")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands environment references from the process environment.
pub fn expand(s: &str) -> Result<String, String> {
    expand_with(s, |name| std::env::var(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        (name == "DATA").then(|| "/data".to_string())
    }

    #[test]
    fn expands_set_unset_and_default() {
        assert_eq!(expand_with("${DATA}/x.txt", lookup).unwrap(), "/data/x.txt");
        assert_eq!(expand_with("${NOPE:-d}/x", lookup).unwrap(), "d/x");
        assert!(expand_with("${NOPE}/x", lookup).unwrap_err().contains("NOPE is not set"));
        assert_eq!(expand_with("plain", lookup).unwrap(), "plain");
        assert!(expand_with("${DATA", lookup).is_err());
    }
}
