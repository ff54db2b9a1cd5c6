//! The files under `testdata/`, named as exporter-toolkit names its own:
//! `*.good.yml` must load, `*.bad.yml` must be refused with the error listed here.
//! Both lists must match the directory, so that a new file needs an entry.
//! Relative file names in them (`server.crt`, `server.key`, `ca.crt`, `other.key`)
//! are taken relative to `testdata/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use web_config::{WebConfig, WebConfigError};

/// A good file and what it turns on.
struct Good {
    file: &'static str,
    tls: bool,
    basic_auth: bool,
    headers: usize,
}

const fn good(file: &'static str, tls: bool, basic_auth: bool, headers: usize) -> Good {
    Good {
        file,
        tls,
        basic_auth,
        headers,
    }
}

const GOOD: &[Good] = &[
    good("web_config_empty.good.yml", false, false, 0),
    good("web_config_comment_only.good.yml", false, false, 0),
    good("web_config_empty_map.good.yml", false, false, 0),
    good("web_config_empty_document.good.yml", false, false, 0),
    good("tls_config_null.good.yml", false, false, 0),
    good("tls_config_empty.good.yml", false, false, 0),
    good("tls_config_empty_paths.good.yml", false, false, 0),
    good("web_config_users_empty.good.yml", false, false, 0),
    good("web_config_noHTTP2.good.yml", false, false, 0),
    good("web_config_rate_limit_disabled.good.yml", false, false, 0),
    good("tls_config_noAuth.good.yml", true, false, 0),
    good("tls_config_inline.good.yml", true, false, 0),
    good(
        "tls_config_requireandverifyclientcert.good.yml",
        true,
        false,
        0,
    ),
    good("tls_config_requireanyclientcert.good.yml", true, false, 0),
    good(
        "tls_config_requireclientcert_old_name.good.yml",
        true,
        false,
        0,
    ),
    good(
        "tls_config_verifyclientcertifgiven.good.yml",
        true,
        false,
        0,
    ),
    good("tls_config_someCiphers.good.yml", true, false, 0),
    good("tls_config_someCurves.good.yml", true, false, 0),
    good("tls_config_tls13_only.good.yml", true, false, 0),
    good("web_config_headers.good.yml", false, false, 5),
    good("web_config_users.good.yml", false, true, 0),
    good("web_config_full.good.yml", true, true, 3),
];

/// A bad file, the key its error must name (`None`: a syntax error, which names
/// none) and what the message must contain.
const BAD: &[(&str, Option<&str>, &str)] = &[
    (
        "web_config_unknown_key.bad.yml",
        None,
        "unknown field `foo`",
    ),
    (
        "tls_config_unknown_key.bad.yml",
        None,
        "unknown field `bogus`",
    ),
    ("web_config_http3.bad.yml", None, "unknown field `http3`"),
    ("tls_config_not_a_map.bad.yml", None, "line 1"),
    (
        "web_config_users_duplicate.bad.yml",
        None,
        "duplicate mapping key",
    ),
    (
        "tls_config_client_auth_type_invented.bad.yml",
        Some("tls_server_config.client_auth_type"),
        "unknown value \"Foo\" (expected one of NoClientCert, RequestClientCert, \
         RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)",
    ),
    (
        "tls_config_min_version_tls11.bad.yml",
        Some("tls_server_config.min_version"),
        "TLS11 is not supported by rustls",
    ),
    (
        "tls_config_max_version_tls10.bad.yml",
        Some("tls_server_config.max_version"),
        "TLS10 is not supported by rustls",
    ),
    (
        "tls_config_wrongTLSVersion.bad.yml",
        Some("tls_server_config.max_version"),
        "unknown value \"SSL3\"",
    ),
    (
        "tls_config_min_above_max.bad.yml",
        Some("tls_server_config.min_version"),
        "TLS13 is above max_version TLS12",
    ),
    (
        "tls_config_goOnlyCiphers.bad.yml",
        Some("tls_server_config.cipher_suites"),
        "\"TLS_RSA_WITH_AES_128_GCM_SHA256\" is not supported by rustls",
    ),
    (
        "tls_config_inventedCiphers.bad.yml",
        Some("tls_server_config.cipher_suites"),
        "unknown cipher suite \"TLS_NOPE\"",
    ),
    (
        "tls_config_tls12_with_tls13_ciphers.bad.yml",
        Some("tls_server_config.cipher_suites"),
        "no listed suite can be used with TLS versions TLS12 to TLS12",
    ),
    (
        "tls_config_curveP521.bad.yml",
        Some("tls_server_config.curve_preferences"),
        "\"CurveP521\" is not supported by rustls",
    ),
    (
        "tls_config_inventedCurves.bad.yml",
        Some("tls_server_config.curve_preferences"),
        "unknown curve \"Curve25519\"",
    ),
    (
        "tls_config_certPath_missing.bad.yml",
        Some("tls_server_config.cert_file"),
        "required when tls_server_config is set",
    ),
    (
        "tls_config_certPath_empty.bad.yml",
        Some("tls_server_config.cert_file"),
        "required when tls_server_config is set",
    ),
    (
        "tls_config_keyPath_missing.bad.yml",
        Some("tls_server_config.key_file"),
        "required when tls_server_config is set",
    ),
    (
        "tls_config_only_min_version.bad.yml",
        Some("tls_server_config.cert_file"),
        "required when tls_server_config is set",
    ),
    (
        "tls_config_certPath_invalid.bad.yml",
        Some("tls_server_config.cert_file"),
        "cannot read ",
    ),
    (
        "tls_config_cert_file_and_inline.bad.yml",
        Some("tls_server_config.cert_file"),
        "cannot be combined with tls_server_config.cert",
    ),
    (
        "tls_config_cert_is_a_key.bad.yml",
        Some("tls_server_config.cert_file"),
        "no CERTIFICATE found in the PEM data",
    ),
    (
        "tls_config_key_is_a_cert.bad.yml",
        Some("tls_server_config.key_file"),
        "no PRIVATE KEY found in the PEM data",
    ),
    (
        "tls_config_key_mismatch.bad.yml",
        Some("tls_server_config.key_file"),
        "cannot use this key with the certificate",
    ),
    (
        "tls_config_requireandverify_noCA.bad.yml",
        Some("tls_server_config.client_ca_file"),
        "required when client_auth_type is RequireAndVerifyClientCert",
    ),
    (
        "tls_config_verifyifgiven_noCA.bad.yml",
        Some("tls_server_config.client_ca_file"),
        "required when client_auth_type is VerifyClientCertIfGiven",
    ),
    (
        "tls_config_clientCA_noClientAuth.bad.yml",
        Some("tls_server_config.client_ca_file"),
        "set, but client_auth_type is NoClientCert",
    ),
    (
        "tls_config_clientCA_nocerts.bad.yml",
        Some("tls_server_config.client_ca_file"),
        "no CERTIFICATE found in the PEM data",
    ),
    (
        "tls_config_allowed_sans_optional_cert.bad.yml",
        Some("tls_server_config.client_allowed_sans"),
        "requires client_auth_type to be RequireAnyClientCert or RequireAndVerifyClientCert",
    ),
    (
        "tls_config_allowed_sans_empty.bad.yml",
        Some("tls_server_config.client_allowed_sans"),
        "empty: no client could connect",
    ),
    (
        "web_config_headers_twice.bad.yml",
        Some("http_server_config.headers.x-frame-options"),
        "set more than once",
    ),
    (
        "web_config_headers_extra_header.bad.yml",
        Some("http_server_config.headers.Authorization"),
        "this header cannot be configured",
    ),
    (
        "web_config_headers_frame_options.bad.yml",
        Some("http_server_config.headers.X-Frame-Options"),
        "invalid value \"allow\" (expected one of deny, sameorigin)",
    ),
    (
        "web_config_headers_content_type_options.bad.yml",
        Some("http_server_config.headers.X-Content-Type-Options"),
        "invalid value \"sniff\" (expected one of nosniff)",
    ),
    (
        "web_config_headers_invalid_value.bad.yml",
        Some("http_server_config.headers.Content-Security-Policy"),
        "not a valid HTTP header value",
    ),
    (
        "web_config_users_plaintext.bad.yml",
        Some("basic_auth_users.alice"),
        "not a bcrypt hash",
    ),
    (
        "web_config_users_low_cost.bad.yml",
        Some("basic_auth_users.bob"),
        "bcrypt cost 3 is outside 4..=31",
    ),
    (
        "web_config_rate_limit.bad.yml",
        Some("rate_limit.interval"),
        "rate limiting is not supported",
    ),
];

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// The names of the files in `testdata/` that end in `suffix`.
fn files_ending_in(suffix: &str) -> BTreeSet<String> {
    std::fs::read_dir(testdata())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(suffix))
        .collect()
}

#[test]
fn every_testdata_file_is_listed() {
    let good: BTreeSet<String> = GOOD.iter().map(|g| g.file.to_owned()).collect();
    assert_eq!(good.len(), GOOD.len(), "a good file is listed twice");
    assert_eq!(files_ending_in(".good.yml"), good);
    let bad: BTreeSet<String> = BAD.iter().map(|(file, ..)| (*file).to_owned()).collect();
    assert_eq!(bad.len(), BAD.len(), "a bad file is listed twice");
    assert_eq!(files_ending_in(".bad.yml"), bad);
}

#[test]
fn good_files_load() {
    for expected in GOOD {
        let config = WebConfig::load(&testdata().join(expected.file))
            .unwrap_or_else(|err| panic!("{}: {err}", expected.file));
        assert_eq!(config.tls().is_some(), expected.tls, "{}", expected.file);
        assert_eq!(
            config.basic_auth().is_some(),
            expected.basic_auth,
            "{}",
            expected.file
        );
        assert_eq!(
            config.headers().len(),
            expected.headers,
            "{}",
            expected.file
        );
    }
}

#[test]
fn bad_files_are_refused_naming_file_and_key() {
    for &(file, expected_key, expected_message) in BAD {
        let path = testdata().join(file);
        let err = WebConfig::load(&path)
            .err()
            .unwrap_or_else(|| panic!("{file}: accepted"));
        match (&err, expected_key) {
            (WebConfigError::Syntax { .. }, None) => {}
            (WebConfigError::Invalid { key, .. }, Some(expected)) => {
                assert_eq!(key, expected, "{file}: {err}");
            }
            _ => panic!("{file}: wrong kind of error: {err:?}"),
        }
        let message = err.to_string();
        let prefix = format!("web config {}: ", path.display());
        assert!(message.starts_with(&prefix), "{file}: {message}");
        assert!(
            message.contains(expected_message),
            "{file}\n=> {message}\n!= {expected_message}"
        );
        assert!(!message.contains('\n'), "{file}: {message}");
    }
}

#[test]
fn the_client_auth_type_message_is_exact() {
    let path = testdata().join("tls_config_client_auth_type_invented.bad.yml");
    let err = WebConfig::load(&path).err().unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "web config {}: tls_server_config.client_auth_type: unknown value \"Foo\" \
             (expected one of NoClientCert, RequestClientCert, RequireAnyClientCert, \
             VerifyClientCertIfGiven, RequireAndVerifyClientCert)",
            path.display()
        )
    );
}

#[test]
fn a_missing_file_is_a_read_error() {
    let path = testdata().join("missing.yml");
    let err = WebConfig::load(&path).err().unwrap();
    assert!(matches!(err, WebConfigError::Read { .. }), "{err:?}");
    let prefix = format!("web config {}: cannot read", path.display());
    assert!(err.to_string().starts_with(&prefix), "{err}");
}

#[test]
fn headers_keep_the_configured_values_and_drop_blank_ones() {
    let config = WebConfig::load(&testdata().join("web_config_full.good.yml")).unwrap();
    let headers: Vec<(&str, &str)> = config
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
        .collect();
    assert_eq!(
        headers,
        [
            ("strict-transport-security", "max-age=31536000"),
            ("x-frame-options", "deny"),
            ("x-content-type-options", "nosniff"),
        ]
    );
}

#[test]
fn debug_output_redacts_hashes_and_keys() {
    let config = WebConfig::load(&testdata().join("web_config_full.good.yml")).unwrap();
    let debug = format!("{config:?}");
    assert!(debug.contains("alice"), "{debug}");
    assert!(debug.contains("[REDACTED]"), "{debug}");
    assert!(!debug.contains("$2y$"), "{debug}");
    assert!(!debug.contains("It2ZcKOQ"), "{debug}");

    let inline = WebConfig::load(&testdata().join("tls_config_inline.good.yml")).unwrap();
    let debug = format!("{inline:?}");
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
    assert!(debug.contains("[inline tls_server_config.key]"), "{debug}");
}
