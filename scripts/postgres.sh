#!/usr/bin/env bash
# Install (Debian), start and prepare a local PostgreSQL for the tests and benchmarks.
# Idempotent. Prints the SQLAlchemy URL of the prepared database on its last line.
set -euo pipefail
DB_USER="${PG_USER:-cxthemes}"
DB_PASS="${PG_PASSWORD:-cxthemes}"
DB_NAME="${PG_DB:-cxthemes_test}"

if ! command -v pg_ctlcluster >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
read -r VERSION CLUSTER PORT STATUS _ < <(pg_lsclusters --no-header | head -n1)
if [ "$STATUS" != "online" ]; then
  # pg_ctlcluster exits 2 when the cluster already runs: not an error here.
  pg_ctlcluster "$VERSION" "$CLUSTER" start >&2 || [ $? -eq 2 ]
fi
for _ in $(seq 1 30); do
  su postgres -c "pg_isready -q -p $PORT" && break
  sleep 1
done
psql_admin() { su postgres -c "psql -p $PORT -v ON_ERROR_STOP=1 -qtAc \"$1\""; }
if [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname='$DB_USER'")" != "1" ]; then
  psql_admin "CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASS'" >&2
fi
# CREATEDB: parallel test workers (pytest -n) each create a database of their own beside it.
if [ "$(psql_admin "SELECT rolcreatedb FROM pg_roles WHERE rolname='$DB_USER'")" != "t" ]; then
  psql_admin "ALTER ROLE $DB_USER CREATEDB" >&2
fi
if [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'")" != "1" ]; then
  psql_admin "CREATE DATABASE $DB_NAME OWNER $DB_USER" >&2
fi
echo "postgresql+psycopg://$DB_USER:$DB_PASS@127.0.0.1:$PORT/$DB_NAME"
