//! Log output: logfmt (the Prometheus ecosystem's default) or JSON, on stderr.
//!
//! Only this crate logs at the chosen level; dependencies are capped at `info` so a
//! `--log.level trace` run does not print HTTP internals. Nothing in the exporter
//! logs secrets, tokens, headers or token-request bodies; the logfmt writer here adds
//! nothing of its own but the timestamp, level and target.
//!
//! Every logfmt line parses as logfmt: event fields and span fields go through one
//! writer ([`Logfmt`] as both the event and the field formatter) that quotes and
//! escapes values, and no output carries terminal colour codes, whatever stderr is.
//! Panics are logged through the same subscriber ([`install_panic_hook`]).

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
        .with_ansi(false)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Logfmt => builder.fmt_fields(Logfmt).event_format(Logfmt).try_init(),
    };
    if let Err(err) = result {
        eprintln!("partnercenter-exporter: cannot set up logging: {err}");
    }
}

/// Logs a panic as one error line (with its location) before the default hook
/// runs, so a panic in a background task is in the log however the log is read.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic payload".to_owned());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(panic = %message, location = %location, "panic; the exporter stops so that its supervisor restarts it");
        default(info);
    }));
}

/// A logfmt line: `ts=… level=… target=… msg="…" key=value …`. Also the field
/// formatter of spans, so span fields are logfmt too.
pub struct Logfmt;

impl<'writer> FormatFields<'writer> for Logfmt {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = LogfmtVisitor {
            line: String::new(),
            message: None,
        };
        fields.record(&mut visitor);
        if let Some(msg) = visitor.message {
            visitor.line.push_str(" message=");
            write_value(&mut visitor.line, &msg)?;
        }
        writer.write_str(visitor.line.trim_start())
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut visitor = LogfmtVisitor {
            line: String::new(),
            message: None,
        };
        fields.record(&mut visitor);
        if current.fields.is_empty() {
            current.fields.push_str(visitor.line.trim_start());
        } else {
            current.fields.push_str(&visitor.line);
        }
        Ok(())
    }
}

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

    /// Captures what the subscriber writes, for the tests below.
    #[derive(Clone, Default)]
    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut out) = self.0.lock() {
                out.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    #[test]
    fn span_fields_are_logfmt_without_colour() {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(true) // even when asked for colour, logfmt has none
            .with_max_level(Level::TRACE)
            .with_writer(capture.clone())
            .fmt_fields(Logfmt)
            .event_format(Logfmt)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("token", grant = ?crate::config::Grant::RefreshToken, customer_id = "ae1d5b32", note = "two words");
            let _entered = span.enter();
            tracing::error!(error = "disk \"full\"", "cannot save");
        });
        let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(
            text.contains(r#"msg="cannot save" error="disk \"full\"" grant=RefreshToken customer_id=ae1d5b32 note="two words""#),
            "{text}"
        );
    }

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
