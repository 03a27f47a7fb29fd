#!/usr/bin/env bash
# Installs what the integration tests start themselves (tests/integration/services.py): Debian's
# PostgreSQL server binaries (initdb, pg_ctl, postgres) and the `postgres` system user it runs as.
# Idempotent and quiet: does nothing when a server is already installed. The tests make their own
# throw-away cluster on a free loopback port and stop it; nothing is started here.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null 2>&1; then
    echo "services: PostgreSQL already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "services: PostgreSQL missing and not root; install it with: sudo apt-get install -y postgresql" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# Debian's package starts a cluster of its own; the tests do not use it, so no service is enabled.
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
echo "services: installed $(ls /usr/lib/postgresql)"
