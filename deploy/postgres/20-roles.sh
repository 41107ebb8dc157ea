#!/usr/bin/env bash
# Runs once, when the postgres volume is first initialised (docker-entrypoint-initdb.d), after
# 10-databases.sql: the owner and service roles of the autoretrain database (roles.sql explains them).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v database=autoretrain \
    -v owner_role="${AUTORETRAIN_DB_OWNER:-autoretrain_owner}" \
    -v owner_password="${AUTORETRAIN_DB_OWNER_PASSWORD:?set AUTORETRAIN_DB_OWNER_PASSWORD (see .env.example)}" \
    -v service_role="${AUTORETRAIN_DB_SERVICE:-autoretrain_service}" \
    -v service_password="${AUTORETRAIN_DB_SERVICE_PASSWORD:?set AUTORETRAIN_DB_SERVICE_PASSWORD (see .env.example)}" \
    -f /opt/autoretrain/postgres/roles.sql
