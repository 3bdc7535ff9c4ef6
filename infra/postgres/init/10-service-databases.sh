#!/usr/bin/env bash
# Creates one database and one owner role per service. Passwords come from the environment
# (docker compose passes them from .env); nothing secret is written in this file.
set -euo pipefail

create() {
  local name="$1" password="$2"
  if [ -z "$password" ]; then
    echo "missing password for the $name database" >&2
    exit 1
  fi
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    --set=name="$name" --set=password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'name', :'password')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'name') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'name') \gexec
SQL
}

create catalog "${CATALOG_DB_PASSWORD:-}"
create registration "${REGISTRATION_DB_PASSWORD:-}"
create notifications "${NOTIFICATIONS_DB_PASSWORD:-}"
