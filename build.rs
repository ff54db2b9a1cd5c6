//! Records the git revision and the compiler version for
//! `partnercenter_exporter_build_info`. Both fall back to "unknown" (for example in
//! a container build without the `.git` directory).

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    let revision = std::env::var("PARTNERCENTER_EXPORTER_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=PARTNERCENTER_EXPORTER_REVISION={revision}");
    println!("cargo:rustc-env=PARTNERCENTER_EXPORTER_RUSTC_VERSION={rustc_version}");
    println!("cargo:rerun-if-env-changed=PARTNERCENTER_EXPORTER_REVISION");
    if std::path::Path::new(".git/HEAD").exists() {
        println!("cargo:rerun-if-changed=.git/HEAD");
    }
}
