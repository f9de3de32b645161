//! Host tags: `KEY=VALUE`, both sides matching `[A-Za-z0-9._-]+`, each key at most once.

use std::collections::BTreeMap;

/// Why a tag or tag set is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// Not `KEY=VALUE` with the allowed characters.
    #[error("invalid tag {0:?}: expected KEY=VALUE with letters, digits, '.', '_' or '-'")]
    Invalid(String),
    /// The same key given twice.
    #[error("tag key {0:?} given more than once")]
    DuplicateKey(String),
}

fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Parses one `KEY=VALUE` tag.
pub fn parse(tag: &str) -> Result<(String, String), TagError> {
    match tag.split_once('=') {
        Some((k, v)) if valid_part(k) && valid_part(v) => Ok((k.to_string(), v.to_string())),
        _ => Err(TagError::Invalid(tag.to_string())),
    }
}

/// Parses tags (e.g. repeated `--tag` flags) into a map; a repeated key is an error.
pub fn parse_all<I, S>(tags: I) -> Result<BTreeMap<String, String>, TagError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut map = BTreeMap::new();
    for tag in tags {
        let (k, v) = parse(tag.as_ref())?;
        if map.contains_key(&k) {
            return Err(TagError::DuplicateKey(k));
        }
        map.insert(k, v);
    }
    Ok(map)
}

/// Parses a comma-separated list (`HOSTCERT_TAGS`); blanks around items and empty items are
/// ignored.
pub fn parse_list(list: &str) -> Result<BTreeMap<String, String>, TagError> {
    parse_all(list.split(',').map(str::trim).filter(|s| !s.is_empty()))
}

/// Checks a map received over the wire.
pub fn validate_map(tags: &BTreeMap<String, String>) -> Result<(), TagError> {
    match tags.iter().find(|(k, v)| !valid_part(k) || !valid_part(v)) {
        Some((k, v)) => Err(TagError::Invalid(format!("{k}={v}"))),
        None => Ok(()),
    }
}

/// Formats a map as `k=v,k2=v2`.
pub fn format_list(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_tags() {
        assert_eq!(parse("env=prod").unwrap(), ("env".into(), "prod".into()));
        assert_eq!(parse("a.b_c-1=X.y_z-2").unwrap().1, "X.y_z-2");
        for bad in [
            "",
            "env",
            "=prod",
            "env=",
            "env=a=b",
            "e nv=x",
            "env=pröd",
            "k=v,w",
        ] {
            assert_eq!(parse(bad), Err(TagError::Invalid(bad.into())), "{bad}");
        }
    }

    #[test]
    fn duplicate_keys_are_refused() {
        assert_eq!(
            parse_all(["env=prod", "role=web", "env=dev"]),
            Err(TagError::DuplicateKey("env".into()))
        );
        let m = parse_list(" env=prod, role=web ,").unwrap();
        assert_eq!(format_list(&m), "env=prod,role=web");
        assert!(validate_map(&m).is_ok());
        let mut bad = m.clone();
        bad.insert("x y".into(), "z".into());
        assert!(validate_map(&bad).is_err());
    }
}
