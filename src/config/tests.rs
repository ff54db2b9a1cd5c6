//! Unit tests of the configuration: defaults, the file, flags winning, and every
//! error naming its flag or key.

use super::values::secret_value;
use super::*;
use secrecy::ExposeSecret;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn flags(args: &[&str]) -> Flags {
    let mut all = vec!["partnercenter-exporter"];
    all.extend_from_slice(args);
    Flags::parse_args(all).unwrap()
}

fn secret_file(dir: &Path, name: &str, value: &str) -> String {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "{value}").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

#[test]
fn defaults_with_demo() {
    let c = Config::from_flags(flags(&["--demo"]), SecretEnv::default()).unwrap();
    assert_eq!(c.listen_address, "0.0.0.0:10026");
    assert_eq!(c.telemetry_path, "/metrics");
    assert_eq!(c.poll.interval, Duration::from_secs(3600));
    assert_eq!(c.poll.timeout, Duration::from_secs(30));
    assert_eq!(c.poll.concurrency, 4);
    assert_eq!(c.poll.rate_limit, 300);
    assert!(c.customers.discover);
    assert_eq!(c.auth.grant, Grant::RefreshToken);
    assert_eq!(c.auth.endpoint, AadEndpoint::V1);
}

#[test]
fn file_is_read_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let token = secret_file(dir.path(), "rt", "refresh-token-value");
    let secret = secret_file(dir.path(), "cs", "client-secret-value");
    let yaml = format!(
        "auth:\n  tenant: contoso.onmicrosoft.com\n  client_id: 11111111-2222-3333-4444-555555555555\n  grant: refresh-token\n  refresh_token_file: {token}\n  client_secret_file: {secret}\npoll:\n  interval: 30m\n  concurrency: 8\n  rate_limit: 100\ncustomers:\n  - id: ae1d5b32-f9ff-4252-b2bf-40e21937a51a\n    name: Fabrikam\n    budget: 1500\n  - id: b44bb1fb-8d9a-4ba7-9a1a-1f2a8a4e7b01\n"
    );
    let path = dir.path().join("config.yml");
    std::fs::write(&path, yaml).unwrap();
    let c = Config::from_flags(
        flags(&[
            "--config.file",
            path.to_str().unwrap(),
            "--poll.concurrency",
            "2",
        ]),
        SecretEnv::default(),
    )
    .unwrap();
    assert_eq!(c.poll.interval, Duration::from_secs(1800));
    assert_eq!(c.poll.concurrency, 2, "the flag wins over the file");
    assert_eq!(c.poll.rate_limit, 100);
    assert_eq!(c.auth.tenant, "contoso.onmicrosoft.com");
    assert_eq!(
        c.auth.refresh_token.as_ref().unwrap().expose_secret(),
        "refresh-token-value"
    );
    assert_eq!(
        c.auth.client_secret.as_ref().unwrap().expose_secret(),
        "client-secret-value"
    );
    assert!(!c.customers.discover);
    assert_eq!(c.customers.customers.len(), 2);
    assert_eq!(c.customers.customers[0].budget, Some(1500.0));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let debug = format!("{c:?}");
    assert!(!debug.contains("refresh-token-value") && !debug.contains("client-secret-value"));
    assert!(debug.contains("[REDACTED]"));

    // --customers picks the list; names and budgets still come from the file.
    let c = Config::from_flags(
        flags(&[
            "--config.file",
            path.to_str().unwrap(),
            "--customers",
            "AE1D5B32-F9FF-4252-B2BF-40E21937A51A, cafecafe-0000-4000-8000-00000000cafe,ae1d5b32-f9ff-4252-b2bf-40e21937a51a",
        ]),
        SecretEnv::default(),
    )
    .unwrap();
    // Ids are compared in lower case and given once.
    assert_eq!(c.customers.customers.len(), 2);
    assert_eq!(
        c.customers.customers[0].id,
        "ae1d5b32-f9ff-4252-b2bf-40e21937a51a"
    );
    assert_eq!(c.customers.customers[0].name.as_deref(), Some("Fabrikam"));
    assert_eq!(
        c.customers.customers[1].id,
        "cafecafe-0000-4000-8000-00000000cafe"
    );
}

#[test]
fn errors_name_the_flag_or_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--demo", "--poll.interval", "soon"], "--poll.interval"),
        (vec!["--demo", "--poll.interval", "0s"], "--poll.interval"),
        (
            vec!["--demo", "--poll.concurrency", "0"],
            "--poll.concurrency",
        ),
        (vec!["--demo", "--poll.rate-limit=-5"], "--poll.rate-limit"),
        (
            vec!["--demo", "--web.listen-address", "10026"],
            "--web.listen-address",
        ),
        (
            vec!["--demo", "--web.listen-address", ":http"],
            "--web.listen-address",
        ),
        (vec!["--demo", "--auth.grant", "magic"], "--auth.grant"),
        (vec!["--demo", "--auth.endpoint", "v3"], "--auth.endpoint"),
        (vec!["--demo", "--log.level", "loud"], "--log.level"),
        (
            vec!["--demo", "--partner-center.url", "ftp://x"],
            "--partner-center.url",
        ),
        (
            vec!["--demo", "--web.telemetry-path", "metrics"],
            "--web.telemetry-path",
        ),
        (vec![], "--auth.tenant"),
        (vec!["--auth.tenant", "t"], "--auth.client-id"),
        (
            vec!["--auth.tenant", "t", "--auth.client-id", "c"],
            "--auth.refresh-token-file",
        ),
        (
            vec![
                "--auth.tenant",
                "t",
                "--auth.client-id",
                "c",
                "--auth.refresh-token-file",
                "/nonexistent/rt",
            ],
            "--auth.refresh-token-file",
        ),
        (
            vec![
                "--auth.tenant",
                "t",
                "--auth.client-id",
                "c",
                "--auth.grant",
                "password",
            ],
            "--auth.username",
        ),
        (
            vec![
                "--auth.tenant",
                "t",
                "--auth.client-id",
                "c",
                "--auth.grant",
                "client-credentials",
            ],
            "--auth.client-secret-file",
        ),
    ];
    for (args, flag) in cases {
        let err = Config::from_flags(flags(&args), SecretEnv::default()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with(flag), "{args:?}: {msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
    let path = dir.path().join("c.yml");
    std::fs::write(&path, "poll:\n  intervall: 1h\n").unwrap();
    let msg = Config::from_flags(
        flags(&["--demo", "--config.file", path.to_str().unwrap()]),
        SecretEnv::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.starts_with("--config.file") && msg.contains("intervall"),
        "{msg}"
    );
    std::fs::write(
        &path,
        "customers:\n  - id: ae1d5b32-f9ff-4252-b2bf-40e21937a51a\n    budget: -1\n",
    )
    .unwrap();
    let msg = Config::from_flags(
        flags(&["--demo", "--config.file", path.to_str().unwrap()]),
        SecretEnv::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("customers[0].budget"), "{msg}");
}

#[test]
fn customer_ids_that_are_not_guids_are_refused() {
    for text in [
        "not-a-guid",
        "contoso.onmicrosoft.com",
        "ae1d5b32-f9ff-4252-b2bf-40e21937a51",
    ] {
        let msg = Config::from_flags(
            flags(&["--demo", "--customers", text]),
            SecretEnv::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.starts_with("--customers:") && msg.contains(text),
            "{msg}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yml");
    std::fs::write(
        &path,
        "customers:\n  - id: ae1d5b32-f9ff-4252-b2bf-40e21937a51a\n  - id: b44bb1fb-8d9a-4ba7-9a1a-1f2a8a4e7b0\n",
    )
    .unwrap();
    let msg = Config::from_flags(
        flags(&["--demo", "--config.file", path.to_str().unwrap()]),
        SecretEnv::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("customers[1].id") && msg.contains("GUID"),
        "{msg}"
    );
    std::fs::write(
        &path,
        "customers:\n  - id: ae1d5b32-f9ff-4252-b2bf-40e21937a51a\n  - id: AE1D5B32-F9FF-4252-B2BF-40E21937A51A\n",
    )
    .unwrap();
    let msg = Config::from_flags(
        flags(&["--demo", "--config.file", path.to_str().unwrap()]),
        SecretEnv::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("customers[1].id") && msg.contains("listed twice"),
        "{msg}"
    );
}

#[test]
fn group_readable_secret_file_warns() {
    let dir = tempfile::tempdir().unwrap();
    let token = secret_file(dir.path(), "rt", "x");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = Config::from_flags(
        flags(&[
            "--auth.tenant",
            "t",
            "--auth.client-id",
            "c",
            "--auth.refresh-token-file",
            &token,
        ]),
        SecretEnv::default(),
    )
    .unwrap();
    assert_eq!(c.warnings.len(), 1);
    assert!(c.warnings[0].contains("chmod 600"));
}

#[test]
fn secret_files_lose_a_byte_order_mark_and_surrounding_blanks() {
    assert_eq!(secret_value("\u{FEFF}s3cret\r\n"), "s3cret");
    assert_eq!(secret_value("\u{FEFF}  s3cret \n"), "s3cret");
    assert_eq!(secret_value("s3cret\n"), "s3cret");
    assert_eq!(secret_value("\u{FEFF}\n"), "");
    // Only a leading mark is one; inside the value it is the value's.
    assert_eq!(secret_value("s3\u{FEFF}cret"), "s3\u{FEFF}cret");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rt");
    std::fs::write(&path, b"\xEF\xBB\xBFrefresh-token-value\n").unwrap();
    let token = read_secret(&path).unwrap().unwrap();
    assert_eq!(token.expose_secret(), "refresh-token-value");
    std::fs::write(&path, b"\xEF\xBB\xBF \r\n").unwrap();
    assert!(read_secret(&path).unwrap().is_none());
    // The same reader serves the flags: a BOM-prefixed file configures the token.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&path, b"\xEF\xBB\xBFrefresh-token-value\n").unwrap();
    let c = Config::from_flags(
        flags(&[
            "--auth.tenant",
            "t",
            "--auth.client-id",
            "c",
            "--auth.refresh-token-file",
            path.to_str().unwrap(),
        ]),
        SecretEnv::default(),
    )
    .unwrap();
    assert_eq!(
        c.auth.refresh_token.unwrap().expose_secret(),
        "refresh-token-value"
    );
}

#[test]
fn listen_address_forms() {
    assert_eq!(normalize_listen_address(":0").unwrap(), "0.0.0.0:0");
    assert_eq!(
        normalize_listen_address("127.0.0.1:9").unwrap(),
        "127.0.0.1:9"
    );
    assert_eq!(normalize_listen_address("[::1]:9").unwrap(), "[::1]:9");
    assert_eq!(
        normalize_listen_address("localhost:9").unwrap(),
        "localhost:9"
    );
    assert!(normalize_listen_address("::1:9").is_err());
}

/// The settings a collector has beyond on/off and interval: flag, env, file key,
/// default, and errors naming where the bad value came from.
#[test]
fn collector_settings_come_from_flag_file_or_default() {
    let history = |c: &Config| {
        c.collectors
            .iter()
            .find(|s| s.name == "invoices")
            .and_then(|s| s.duration("history"))
    };
    let c = Config::from_flags(flags(&["--demo"]), SecretEnv::default()).unwrap();
    assert_eq!(history(&c), Some(Duration::from_secs(400 * 86_400)));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, "collectors:\n  invoices:\n    history: 30d\n").unwrap();
    let file = path.to_str().unwrap();
    let c = Config::from_flags(
        flags(&["--demo", "--config.file", file]),
        SecretEnv::default(),
    )
    .unwrap();
    assert_eq!(history(&c), Some(Duration::from_secs(30 * 86_400)));
    let c = Config::from_flags(
        flags(&[
            "--demo",
            "--config.file",
            file,
            "--collector.invoices.history",
            "2d",
        ]),
        SecretEnv::default(),
    )
    .unwrap();
    assert_eq!(
        history(&c),
        Some(Duration::from_secs(2 * 86_400)),
        "the flag wins"
    );

    let err = Config::from_flags(
        flags(&["--demo", "--collector.invoices.history", "last year"]),
        SecretEnv::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("--collector.invoices.history"),
        "{err}"
    );

    for (yaml, needle) in [
        (
            "collectors:\n  invoices:\n    history: soon\n",
            "collectors.invoices.history",
        ),
        (
            "collectors:\n  invoices:\n    histroy: 30d\n",
            "collectors.invoices.histroy: unknown setting",
        ),
        (
            "collectors:\n  usage:\n    history: 30d\n",
            "collectors.usage.history: unknown setting",
        ),
    ] {
        std::fs::write(&path, yaml).unwrap();
        let err = Config::from_flags(
            flags(&["--demo", "--config.file", file]),
            SecretEnv::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains(needle), "{yaml}: {err}");
    }
}

#[test]
fn lineitems_is_opt_in_except_in_the_demo() {
    let enabled = |args: &[&str]| {
        let c = Config::from_flags(flags(args), SecretEnv::default()).unwrap();
        let s = c.collectors.iter().find(|s| s.name == "lineitems").unwrap();
        (s.enabled, s.count("max-subscriptions"))
    };
    let dir = tempfile::tempdir().unwrap();
    let token = secret_file(dir.path(), "rt", "refresh-token-value");
    let real = [
        "--auth.tenant",
        "contoso.onmicrosoft.com",
        "--auth.client-id",
        "11111111-2222-3333-4444-555555555555",
        "--auth.refresh-token-file",
        token.as_str(),
    ];
    assert_eq!(enabled(&real), (false, Some(20)));
    let mut on = real.to_vec();
    on.extend([
        "--collector.lineitems",
        "--collector.lineitems.max-subscriptions",
        "5",
    ]);
    assert_eq!(enabled(&on), (true, Some(5)));
    assert_eq!(enabled(&["--demo"]), (true, Some(20)));
    assert!(!enabled(&["--demo", "--no-collector.lineitems"]).0);
    let err = Config::from_flags(
        flags(&["--demo", "--collector.lineitems.max-subscriptions", "0"]),
        SecretEnv::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("--collector.lineitems.max-subscriptions: 0 is out of range"),
        "{err}"
    );
}

#[test]
fn subcommands_take_the_flags_on_either_side() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir
        .path()
        .join("absent/refresh_token")
        .display()
        .to_string();
    for args in [
        vec![
            "login",
            "--auth.tenant",
            "t",
            "--auth.client-id",
            "c",
            "--auth.refresh-token-file",
            &token,
        ],
        vec![
            "--auth.tenant",
            "t",
            "login",
            "--auth.client-id",
            "c",
            "--auth.refresh-token-file",
            &token,
        ],
    ] {
        let c = Config::from_flags(flags(&args), SecretEnv::default()).unwrap();
        assert_eq!(c.subcommand, Some(Subcommand::Login));
        assert_eq!(
            (c.auth.tenant.as_str(), c.auth.client_id.as_str()),
            ("t", "c")
        );
        // login writes the token file; it need not exist.
        assert!(c.auth.refresh_token.is_none());
    }
    let c = flags(&["check", "--no-collector.usage"]);
    assert_eq!(c.subcommand, Some(Subcommand::Check));
    assert!(c.collectors.iter().any(|f| f.name == "usage" && f.disable));
    // check reads the token like the exporter.
    let err = Config::from_flags(
        flags(&[
            "check",
            "--auth.tenant",
            "t",
            "--auth.client-id",
            "c",
            "--auth.refresh-token-file",
            &token,
        ]),
        SecretEnv::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("--auth.refresh-token-file"),
        "{err}"
    );
    let err = Config::from_flags(flags(&["login", "--demo"]), SecretEnv::default()).unwrap_err();
    assert!(err.to_string().starts_with("--demo"), "{err}");
}
