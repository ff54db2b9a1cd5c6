//! The onboarding subcommands on the real binary against the simulator: `login`
//! (the device code flow, v1 and v2: the token file, its mode, its use by the
//! exporter as a public client, the poll interval and `slow_down`, every failure,
//! no token in the output) and `check` (counts, a revoked token, bad configuration).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use partnercenter_exporter::simulator::TokenFault;
use partnercenter_exporter::simulator::{DeviceCodeKnobs, DeviceOutcome, Simulator};
use testkit::{exporter_binary, redeem_refresh_token, run_to_exit, simulator, TestApp};

/// Runs `partnercenter-exporter <subcommand>` against `sim` with `token` as the
/// refresh-token file and `extra` flags, with only `env` as its environment: the
/// exit code, and stdout followed by stderr.
async fn run(
    subcommand: &str,
    sim: &Simulator,
    token: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, String) {
    let creds = sim.credentials();
    let mut args: Vec<String> = vec![
        subcommand.into(),
        "--auth.authority".into(),
        sim.url(),
        "--partner-center.url".into(),
        sim.url(),
        "--auth.tenant".into(),
        creds.tenant,
        "--auth.client-id".into(),
        creds.client_id,
        "--auth.refresh-token-file".into(),
        token.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(exporter_binary())
            .args(&args)
            .env_clear()
            .envs(env)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    })
    .await
    .unwrap()
}

fn assert_no_secrets(sim: &Simulator, output: &str) {
    for secret in sim.issued_secrets() {
        assert!(
            !output.contains(&secret),
            "a secret in the output:\n{output}"
        );
    }
}

#[tokio::test]
async fn login_v1_and_v2_write_a_private_token_the_exporter_redeems_without_a_secret() {
    for endpoint in ["v1", "v2"] {
        let sim = Arc::new(simulator(3).await);
        sim.knobs().set_device_code(DeviceCodeKnobs {
            pending_polls: 2,
            ..Default::default()
        });
        let app = TestApp::with_simulator(sim.clone())
            .public_client()
            .flag("--auth.endpoint", endpoint);
        let token = app.path("refresh_token");
        let (code, out) = run("login", &sim, &token, &["--auth.endpoint", endpoint], &[]).await;
        assert_eq!(code, Some(0), "{endpoint}: {out}");
        assert!(out.contains("enter the code"), "Microsoft's message: {out}");
        assert!(
            out.contains("partnercenter-exporter --auth.tenant"),
            "{out}"
        );
        assert_eq!(sim.stats().devicecode, 1);
        // Three polls, `interval` (1 s) apart.
        let polls = sim.device_code_polls();
        assert_eq!(polls.len(), 3);
        for gap in polls.windows(2).map(|w| w[1] - w[0]) {
            assert!(gap >= Duration::from_millis(950), "{gap:?}");
            assert!(gap < Duration::from_millis(3000), "{gap:?}");
        }
        assert_eq!(sim.stats().customers, 1, "the proof: one customers call");
        assert_no_secrets(&sim, &out);
        let mode = std::fs::metadata(&token).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let written = std::fs::read_to_string(&token).unwrap();
        assert!(sim.issued_secrets().contains(&written.trim().to_owned()));

        // check signs in as a public client too.
        let (code, out) = run("check", &sim, &token, &["--auth.endpoint", endpoint], &[]).await;
        assert_eq!(code, Some(0), "{endpoint}: {out}");
        assert!(out.contains("public client"), "{out}");
        assert_no_secrets(&sim, &out);

        // The exporter redeems it as a public client: the simulator refuses a
        // secret with it (AADSTS700025), so a successful run proves there was none.
        let exporter = app.spawn_binary().await;
        let m = exporter.wait_for_runs("servicecosts", 1.0).await;
        assert_eq!(
            m.polls("servicecosts", "success"),
            Some(1.0),
            "{}",
            exporter.logs()
        );
    }
}

#[tokio::test]
async fn login_polls_at_the_interval_and_slows_down() {
    let sim = simulator(1).await;
    sim.knobs().set_device_code(DeviceCodeKnobs {
        pending_polls: 3,
        slow_down_polls: 1,
        interval: 1,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("new/dir/refresh_token");
    let (code, out) = run("login", &sim, &token, &["--auth.endpoint", "v2"], &[]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(token.exists(), "the directory is created");
    let polls = sim.device_code_polls();
    assert_eq!(polls.len(), 4);
    let gaps: Vec<Duration> = polls.windows(2).map(|w| w[1] - w[0]).collect();
    // 1 s to the slow_down, then 1 + 5 s between every poll.
    for gap in gaps {
        assert!(gap >= Duration::from_millis(5900), "{gap:?}");
        assert!(gap < Duration::from_millis(8000), "{gap:?}");
    }
}

#[tokio::test]
async fn every_login_failure_exits_1_with_its_fix_and_writes_nothing() {
    let sim = simulator(1).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = testkit::secret_file(
        dir.path(),
        "client_secret",
        &sim.credentials().client_secret,
    );
    let cases: [(DeviceCodeKnobs, &str); 5] = [
        (
            DeviceCodeKnobs {
                pending_polls: 0,
                outcome: DeviceOutcome::Declined,
                ..Default::default()
            },
            "declined",
        ),
        (
            DeviceCodeKnobs {
                pending_polls: 0,
                outcome: DeviceOutcome::Expired,
                ..Default::default()
            },
            "expired",
        ),
        (
            DeviceCodeKnobs {
                pending_polls: 0,
                outcome: DeviceOutcome::BadCode,
                ..Default::default()
            },
            "did not recognise the device code",
        ),
        (
            DeviceCodeKnobs {
                public_flows: false,
                ..Default::default()
            },
            "turn on \"Allow public client flows\"",
        ),
        (
            // The local clock: an answer that expires before the first poll is due.
            DeviceCodeKnobs {
                interval: 2,
                expires_in: 1,
                ..Default::default()
            },
            "expired",
        ),
    ];
    for (knobs, wanted) in cases {
        sim.knobs().set_device_code(knobs.clone());
        let token = dir.path().join("refresh_token");
        // A configured secret is never sent by login.
        let secret_flag = secret.display().to_string();
        let (code, out) = run(
            "login",
            &sim,
            &token,
            &["--auth.client-secret-file", &secret_flag],
            &[],
        )
        .await;
        assert_eq!(code, Some(1), "{knobs:?}: {out}");
        let last = out.trim_end().lines().last().unwrap();
        assert!(
            last.starts_with("partnercenter-exporter login: sign-in: "),
            "{last}"
        );
        assert!(last.contains(wanted), "{knobs:?}: {last}");
        assert!(!token.exists(), "{knobs:?}: no file");
        assert_no_secrets(&sim, &out);
    }
}

#[tokio::test]
async fn the_exporter_says_to_remove_a_secret_sent_with_a_public_token() {
    let sim = Arc::new(simulator(1).await);
    sim.knobs().set_device_code(DeviceCodeKnobs::default());
    let app = TestApp::with_simulator(sim.clone());
    let token = app.path("refresh_token");
    let (code, out) = run("login", &sim, &token, &[], &[]).await;
    assert_eq!(code, Some(0), "{out}");
    // TestApp passes a client secret file: Azure AD refuses it with this token.
    let exporter = app.spawn_binary().await;
    let m = exporter.wait_for_runs("servicecosts", 1.0).await;
    assert_eq!(m.polls("servicecosts", "failure"), Some(1.0));
    let logs = exporter.logs();
    assert!(logs.contains("AADSTS700025"), "{logs}");
    assert!(logs.contains("remove --auth.client-secret-file"), "{logs}");
}

/// The simulator's credentials as files, for the confidential client: the
/// refresh token and the client secret.
fn confidential(sim: &Simulator, dir: &Path) -> (std::path::PathBuf, String) {
    let creds = sim.credentials();
    let token = testkit::secret_file(dir, "refresh_token", &creds.refresh_token);
    let secret = testkit::secret_file(dir, "client_secret", &creds.client_secret);
    (token, secret.display().to_string())
}

#[tokio::test]
async fn check_reports_the_customers_and_their_pages_and_persists_the_rotated_token() {
    let sim = simulator(7).await;
    sim.knobs().set_page_size_cap(3);
    let dir = tempfile::tempdir().unwrap();
    let (token, secret) = confidential(&sim, dir.path());
    let (code, out) = run(
        "check",
        &sim,
        &token,
        &["--auth.client-secret-file", &secret],
        &[],
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("customers:  7 (3 pages"), "{out}");
    assert!(out.contains("servicecosts: ok"), "{out}");
    assert!(out.contains("usage:      ok"), "{out}");
    assert!(out.contains("confidential client"), "{out}");
    assert!(out.contains("currencies: "), "{out}");
    assert_no_secrets(&sim, &out);
    let stored = std::fs::read_to_string(&token).unwrap();
    assert_ne!(
        stored.trim(),
        sim.credentials().refresh_token,
        "rotated and saved"
    );
    assert!(sim.issued_secrets().contains(&stored.trim().to_owned()));
}

#[tokio::test]
async fn check_fetches_line_items_when_that_collector_is_on_and_names_it_when_refused() {
    let sim = simulator(3).await;
    let dir = tempfile::tempdir().unwrap();
    let (token, secret) = confidential(&sim, dir.path());
    let flags = [
        "--auth.client-secret-file",
        &secret,
        "--collector.lineitems",
    ];
    let (code, out) = run("check", &sim, &token, &flags, &[]).await;
    assert_eq!(code, Some(0), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("lineitems:"))
        .unwrap_or_else(|| panic!("no lineitems line in {out}"));
    assert!(
        line.contains(" ok: ") && line.contains("line items"),
        "{line}"
    );
    assert!(out.contains("invoices:   ok"), "{out}");
    let asked = sim.stats().lineitems;
    assert!(asked >= 1, "line items were fetched: {asked}");

    // Refused: exit 1, the collector named with what to do.
    sim.knobs().set_line_items_status(Some(403));
    let (code, out) = run("check", &sim, &token, &flags, &[]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("lineitems:  FAILED"), "{out}");
    let last = out.trim_end().lines().last().unwrap();
    assert!(
        last.contains("lineitems") && last.contains("--no-collector.lineitems"),
        "{last}"
    );
    assert!(
        out.contains("servicecosts: ok"),
        "the others still answer: {out}"
    );
    assert_no_secrets(&sim, &out);
}

#[tokio::test]
async fn check_names_the_sign_in_on_a_revoked_token_and_exits_2_on_bad_configuration() {
    let sim = simulator(2).await;
    let dir = tempfile::tempdir().unwrap();
    let (token, secret) = confidential(&sim, dir.path());
    // Another consent rotated the token; the one in the file is revoked.
    redeem_refresh_token(&sim, &sim.credentials().refresh_token).await;
    sim.revoke_refresh_tokens_except_latest();
    let (code, out) = run(
        "check",
        &sim,
        &token,
        &["--auth.client-secret-file", &secret],
        &[],
    )
    .await;
    assert_eq!(code, Some(1), "{out}");
    let last = out.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("partnercenter-exporter check: sign-in: "),
        "{last}"
    );
    assert!(
        last.contains("invalid_grant") && last.contains("login"),
        "{last}"
    );

    // A refused client secret is a sign-in failure too.
    sim.knobs().set_token_fault(TokenFault::InvalidClient);
    let (code, out) = run(
        "check",
        &sim,
        &token,
        &["--auth.client-secret-file", &secret],
        &[],
    )
    .await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("check: sign-in: "), "{out}");

    for (args, flag) in [
        (vec!["check", "--poll.interval", "soon"], "--poll.interval"),
        (
            vec!["check", "--auth.tenant", "t", "--auth.client-id", "c"],
            "--auth.refresh-token-file",
        ),
        (
            vec![
                "login",
                "--auth.tenant",
                "t",
                "--auth.client-id",
                "c",
                "--auth.grant",
                "password",
            ],
            "--auth.grant",
        ),
    ] {
        let (code, err) = tokio::task::spawn_blocking(move || run_to_exit(args, &[]))
            .await
            .unwrap();
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.starts_with(&format!("partnercenter-exporter: {flag}")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_hostile_device_code_answer_is_a_clear_error_not_a_panic() {
    let sim = simulator(1).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("refresh_token");
    for (answer, wanted) in [
        (serde_json::json!({"device_code": 5}), "no device_code"),
        (
            serde_json::json!({"device_code": "D", "user_code": "U", "verification_uri": "u", "interval": -5}),
            "interval is not a whole number",
        ),
        (
            serde_json::json!({"device_code": "D", "user_code": "U", "verification_uri": "u", "expires_in": "soon"}),
            "expires_in is not a whole number",
        ),
        (
            serde_json::json!({"error": "invalid_request", "error_codes": [900144]}),
            "AADSTS900144",
        ),
    ] {
        sim.knobs().set_device_code(DeviceCodeKnobs {
            answer: Some(answer.clone()),
            ..Default::default()
        });
        let (code, out) = run("login", &sim, &token, &[], &[]).await;
        assert_eq!(code, Some(1), "{answer}: {out}");
        let last = out.trim_end().lines().last().unwrap();
        assert!(
            last.starts_with("partnercenter-exporter login: device code: "),
            "{last}"
        );
        assert!(last.contains(wanted), "{answer}: {last}");
        assert!(!token.exists());
    }
}
