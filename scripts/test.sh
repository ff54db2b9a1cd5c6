#!/usr/bin/env bash
# The one command that sets up and runs every test of partnercenter-exporter.
#
# Installs what the tests need when it is missing (Debian's prometheus package for
# promtool and a real Prometheus server, prometheus-alertmanager for a real
# Alertmanager and amtool; Python tools for the deployment checks and the
# dashboards' generator), then runs formatting and lint checks, the Rust tests
# (unit, property and integration tests against the simulator, the end-to-end
# alert delivery through Alertmanager), the alert-rule tests, the check that the
# dashboards are generated from their source, the dashboard drift test against a
# real Prometheus, and the deployment checks.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
if [ "${#need_apt[@]}" -gt 0 ]; then
  # One name once each (both checks of a package may have added it).
  mapfile -t need_apt < <(printf '%s\n' "${need_apt[@]}" | sort -u)
  step "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The packages' services are not needed: tests start their own servers.
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo build --release"
cargo build --locked --release

step "cargo test"
cargo test --locked --release --workspace 2>&1 | tee target/test-output.txt

step "alert and recording rules (promtool check + promtool test), Alertmanager example (amtool check-config)"
scripts/check-rules.sh

step "dashboards are generated from dashboards/src (gen-dashboards --check)"
scripts/gen-dashboards --check

step "dashboards and rules against a real Prometheus scraping the exporter (drift test)"
python3 tests/checks/drift_test.py target/release/partnercenter-exporter

step "deployment files (hadolint, Kubernetes schemas, PrometheusRule sync, systemd-analyze)"
scripts/check-deploy.sh

step "supply chain (cargo deny)"
# `cargo install` puts the tool in $CARGO_HOME/bin, which cargo searches for
# subcommands even when it is not on PATH: ask cargo, not the shell.
if ! cargo deny --version >/dev/null 2>&1; then
  cargo install --locked --quiet cargo-deny --version 0.20.2
fi
# cargo deny reads `cargo metadata` for every platform, and a Linux build caches
# only Linux's crates: fetch the lock file's crates for all targets first, so the
# offline check below works on a fresh machine.
cargo fetch --locked --quiet
bundle=../shared/advisory-db/advisory-db.bundle
if [ -f "$bundle" ]; then
  db=target/advisory-dbs/advisory-db-3157b0e258782691
  rm -rf "$db"
  mkdir -p target/advisory-dbs
  git clone --quiet "$bundle" "$db"
  cargo deny --offline check
else
  echo "no local advisory database beside the checkout: checking licenses, bans and sources only"
  cargo deny --offline check licenses bans sources
fi

printf '\nall checks passed\n'
