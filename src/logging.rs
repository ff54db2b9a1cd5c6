//! Log output: logfmt (the Prometheus ecosystem's default) or JSON, on stderr.
//!
//! Only this crate logs at the chosen level; dependencies are capped at `info` so a
//! `--log.level trace` run does not print HTTP internals. Nothing in the exporter
//! logs secrets, tokens, headers or token-request bodies; the logfmt writer here adds
//! nothing of its own but the timestamp, level and target.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Call once, from `main`.
pub fn init(level: Level, format: LogFormat) {
    let own = level.to_string().to_lowercase();
    let deps = if level <= Level::INFO {
        own.clone()
    } else {
        "info".to_owned()
    };
    let filter = EnvFilter::new(format!("{deps},partnercenter_exporter={own}"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Logfmt => builder.event_format(Logfmt).try_init(),
    };
    if let Err(err) = result {
        eprintln!("partnercenter-exporter: cannot set up logging: {err}");
    }
}

/// A logfmt line: `ts=… level=… target=… msg="…" key=value …`.
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        write!(
            writer,
            "ts={now} level={} target={}",
            meta.level().as_str().to_lowercase(),
            meta.target()
        )?;
        let mut visitor = LogfmtVisitor {
            line: String::new(),
            message: None,
        };
        event.record(&mut visitor);
        if let Some(msg) = visitor.message {
            write!(writer, " msg=")?;
            write_value(&mut writer, &msg)?;
        }
        writer.write_str(&visitor.line)?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>() {
                    if !fields.is_empty() {
                        write!(writer, " {}", fields.fields)?;
                    }
                }
            }
        }
        writeln!(writer)
    }
}

struct LogfmtVisitor {
    line: String,
    message: Option<String>,
}

impl Visit for LogfmtVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }
}

impl LogfmtVisitor {
    fn record(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = Some(value);
            return;
        }
        self.line.push(' ');
        self.line.push_str(field.name());
        self.line.push('=');
        let _ = write_value(&mut self.line, &value);
    }
}

/// Writes a logfmt value, quoted and escaped when it needs to be.
fn write_value(out: &mut impl fmt::Write, value: &str) -> fmt::Result {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| !c.is_whitespace() && c != '"' && c != '=' && c != '\\' && !c.is_control());
    if plain {
        return out.write_str(value);
    }
    out.write_char('"')?;
    for c in value.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c.is_control() => write!(out, "\\u{{{:x}}}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_when_needed() {
        let mut s = String::new();
        write_value(&mut s, "plain").unwrap();
        s.push(' ');
        write_value(&mut s, "two words").unwrap();
        s.push(' ');
        write_value(&mut s, "a\"b\nc").unwrap();
        s.push(' ');
        write_value(&mut s, "").unwrap();
        assert_eq!(s, r#"plain "two words" "a\"b\nc" """#);
    }
}
