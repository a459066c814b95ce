#!/usr/bin/env bash
# Installs the real programs the test suite runs against: graphviz (`dot` renders our DOT output),
# redis-server (rate-limit-redis), curl (a real HTTP client), openssl (test certificates),
# chromium and its WebDriver (the dashboard's browser test, tests/test_dashboard_browser.py),
# prometheus (a real Prometheus server scrapes the gateway's /metrics),
# dnsmasq (a real DNS server behind the UDP and TCP entrypoints),
# etcd-server (the etcd provider watches a real etcd).
# Idempotent: does nothing when every program is already on PATH.
set -euo pipefail
need=()
command -v dot >/dev/null || need+=(graphviz)
command -v redis-server >/dev/null || need+=(redis-server)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v prometheus >/dev/null || need+=(prometheus)
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
command -v etcd >/dev/null || need+=(etcd-server)
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
