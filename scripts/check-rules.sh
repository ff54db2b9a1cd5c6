#!/usr/bin/env bash
# Static checks and unit tests of the Prometheus rules in prometheus/:
#   - promtool check rules    (syntax, PromQL, templates, duplicate rules) of every rule file
#   - promtool check config   of the example Prometheus configuration
#   - promtool test rules     (each alert firing and not firing)
#   - amtool check-config     of the example Alertmanager configuration
# Needs promtool and amtool on PATH (Debian/Ubuntu: apt-get install prometheus
# prometheus-alertmanager).
set -euo pipefail

cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null 2>&1; then
    echo "check-rules: promtool not found on PATH (Debian/Ubuntu: apt-get install prometheus)" >&2
    exit 1
fi
if ! command -v amtool >/dev/null 2>&1; then
    echo "check-rules: amtool not found on PATH (Debian/Ubuntu: apt-get install prometheus-alertmanager)" >&2
    exit 1
fi

shopt -s nullglob
rule_files=(prometheus/*.rules.yml prometheus/tests/*.rules.yml)
test_files=(prometheus/tests/*.test.yml)
if [ ${#rule_files[@]} -eq 0 ] || [ ${#test_files[@]} -eq 0 ]; then
    echo "check-rules: no rule files or no rule tests found under prometheus/" >&2
    exit 1
fi

echo "== promtool check rules"
promtool check rules --lint-fatal "${rule_files[@]}"

echo "== promtool check config"
promtool check config --lint-fatal prometheus/prometheus.example.yml

echo "== promtool test rules"
promtool test rules "${test_files[@]}"

echo "== amtool check-config"
amtool check-config prometheus/alertmanager.example.yml

echo "check-rules: all passed"
