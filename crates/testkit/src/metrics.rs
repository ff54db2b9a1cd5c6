//! Reading the exporter's `/metrics`: a parser of the Prometheus text format into
//! samples ([`Metrics`]) for the tests, and line scans that parse nothing
//! ([`sample`], [`count_series`]) for expositions of thousands of customers, where
//! the benchmark must not spend the machine's time on parsing.

use std::collections::BTreeMap;

/// The label that picks the service-costs collector's run series.
pub const SERVICECOSTS: &[(&str, &str)] = &[("collector", "servicecosts")];
/// The label that picks the usage collector's run series.
pub const USAGE: &[(&str, &str)] = &[("collector", "usage")];

/// One sample: metric name, labels, value.
pub type Sample = (String, BTreeMap<String, String>, f64);

/// A parsed exposition: every sample, and the text it came from.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub samples: Vec<Sample>,
    pub text: String,
}

impl Metrics {
    /// Parses the text format; panics on a line that is not a comment, blank or a
    /// sample.
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().expect("value"),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => (name.to_owned(), parse_labels(rest.trim_end_matches('}'))),
            };
            samples.push((name, labels, value));
        }
        Metrics {
            samples,
            text: text.to_owned(),
        }
    }

    /// The value of the one series of `name` whose labels include `labels`; panics
    /// if more than one series matches.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = self.matching(name, labels).map(|s| s.2).collect();
        assert!(
            found.len() <= 1,
            "{name} {labels:?} matches {} series",
            found.len()
        );
        found.first().copied()
    }

    /// `partnercenter_polls_total` of `collector` with `result` (success, partial,
    /// failure): how many of its runs ended so.
    pub fn polls(&self, collector: &str, result: &str) -> Option<f64> {
        self.get(
            "partnercenter_polls_total",
            &[("collector", collector), ("result", result)],
        )
    }

    /// The series of `name` whose labels include `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sum of every series of `name`.
    pub fn sum(&self, name: &str) -> f64 {
        self.matching(name, &[]).map(|s| s.2).sum()
    }

    /// The sum of the series of `name` that carry `labels`.
    pub fn sum_of(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.2).sum()
    }

    /// How many series `name` has.
    pub fn count(&self, name: &str) -> usize {
        self.matching(name, &[]).count()
    }

    /// Every cost series (pretax, tax, after_tax, the billing periods) and every
    /// customer's last-success timestamp as a sorted list, for comparisons.
    pub fn cost_series(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .samples
            .iter()
            .filter(|(n, _, _)| {
                n.starts_with("partnercenter_service_costs_")
                    || n == "partnercenter_customer_last_success_timestamp_seconds"
            })
            .map(|(n, l, v)| format!("{n}{l:?} {v}"))
            .collect();
        out.sort();
        out
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'));
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(o) => value.push(o),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(name.trim_start_matches(',').to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out
}

/// The value of the first sample whose series is written exactly `series` (the
/// name, and the labels as the exporter orders them: `name{collector="usage"}`),
/// found by a scan of the lines.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// How many lines start with `prefix` (`name{` counts the labelled series of
/// `name`).
pub fn count_series(text: &str, prefix: &str) -> usize {
    text.lines().filter(|l| l.starts_with(prefix)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x_total X.\n# TYPE x_total counter\n\
x_total{collector=\"servicecosts\",result=\"success\"} 2\n\
x_total{collector=\"usage\",result=\"success\"} 1\n\
name{label=\"a \\\"quoted\\\" \\\\ line\\nbreak\",other=\"\"} +Inf\n\
plain 0.5\n";

    #[test]
    fn parses_names_labels_escapes_and_values() {
        let m = Metrics::parse(TEXT);
        assert_eq!(m.samples.len(), 4);
        assert_eq!(m.get("x_total", SERVICECOSTS), Some(2.0));
        assert_eq!(m.sum("x_total"), 3.0);
        assert_eq!(m.count("x_total"), 2);
        assert_eq!(m.get("plain", &[]), Some(0.5));
        assert_eq!(
            m.get(
                "name",
                &[("label", "a \"quoted\" \\ line\nbreak"), ("other", "")]
            ),
            Some(f64::INFINITY)
        );
        assert_eq!(m.get("absent", &[]), None);
    }

    #[test]
    #[should_panic(expected = "matches 2 series")]
    fn get_refuses_an_ambiguous_selection() {
        Metrics::parse(TEXT).get("x_total", &[]);
    }

    #[test]
    fn line_scans_match_the_exact_series() {
        assert_eq!(
            sample(TEXT, "x_total{collector=\"usage\",result=\"success\"}"),
            Some(1.0)
        );
        assert_eq!(sample(TEXT, "plain"), Some(0.5));
        assert_eq!(
            sample(TEXT, "plai"),
            None,
            "a prefix of a name is not the name"
        );
        assert_eq!(count_series(TEXT, "x_total{"), 2);
    }
}
