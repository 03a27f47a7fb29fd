#!/usr/bin/env bash
# Installs what the tests start themselves, from Debian's packages:
# - PostgreSQL server binaries (initdb, pg_ctl, postgres) and the `postgres` system user, for the
#   real MLflow tracking server of tests/integration (tests/integration/services.py makes its own
#   throw-away cluster on a free loopback port and stops it);
# - Chromium, for the headless screenshots of the Evidently dashboards (tests/monitoring).
# Idempotent and quiet: installs only what is missing; nothing is started here.
set -euo pipefail

missing=()
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi
if ! command -v chromium >/dev/null 2>&1; then
    missing+=(chromium)
fi
if [ ${#missing[@]} -eq 0 ]; then
    echo "services: PostgreSQL and Chromium already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "services: missing ${missing[*]} and not root; install with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# Debian's postgresql package starts a cluster of its own; the tests do not use it.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "services: installed ${missing[*]}"
