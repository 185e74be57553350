#!/bin/sh
# First start of the compose PostgreSQL: the pipeline's login role and Dagster's own database.
# Passwords come from the container's environment (deploy/equity.env), never from this file.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v app_password="$EQUITY_APP_PASSWORD" -v dagster_password="$DAGSTER_PG_PASSWORD" <<'SQL'
CREATE ROLE equity_app LOGIN PASSWORD :'app_password';
CREATE ROLE dagster LOGIN PASSWORD :'dagster_password';
CREATE DATABASE dagster OWNER dagster;
SQL
