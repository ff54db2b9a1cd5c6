//! Reading the exporter's log lines (logfmt, its default format).

/// The value of `key=value` or `key="value"` in a logfmt line; `None` when the
/// line has no such key. A quoted value ends at the next `"`.
pub fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split(' ').next()?,
    };
    Some(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn bare_and_quoted_values() {
        let line = r#"ts=1 level=info msg="run finished" collector=servicecosts"#;
        assert_eq!(field(line, "msg").as_deref(), Some("run finished"));
        assert_eq!(field(line, "collector").as_deref(), Some("servicecosts"));
        assert_eq!(field(line, "level").as_deref(), Some("info"));
        assert_eq!(field(line, "ts"), None, "a key must follow a space");
        assert_eq!(field(line, "missing"), None);
    }
}
