#!/usr/bin/env bash
# Install PostgreSQL server binaries when none are present (Debian: postgresql-15, as root).
set -euo pipefail
for dir in /usr/lib/postgresql/*/bin; do
  if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then exit 0; fi
done
if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing PostgreSQL 15 server binaries (apt-get install postgresql-15)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql-15 postgresql-contrib-15 >/dev/null 2>&1 || apt-get install -y -qq postgresql-15 >/dev/null
  # Debian creates and starts a default cluster; we run our own instances only.
  (pg_ctlcluster 15 main stop >/dev/null 2>&1 || true)
  exit 0
fi
echo "no PostgreSQL server binaries found; install postgresql-15 (or run as root so make can)" >&2
echo "the pgserver wheel in .venv still provides PostgreSQL 16" >&2
exit 0
