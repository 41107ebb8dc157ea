#!/usr/bin/env bash
# Runs once, when the postgres volume is first initialised (docker-entrypoint-initdb.d), after
# 10-databases.sql: the owner and service roles of the autoretrain database (roles.sql explains them).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v database="${DB_NAME:-autoretrain}" \
    -v owner_role="${DB_OWNER_USER:-autoretrain_owner}" \
    -v owner_password="${DB_OWNER_PASSWORD:?set DB_OWNER_PASSWORD (see .env.example)}" \
    -v service_role="${DB_SERVICE_USER:-autoretrain_service}" \
    -v service_password="${DB_SERVICE_PASSWORD:?set DB_SERVICE_PASSWORD (see .env.example)}" \
    -f "${ROLES_SQL:-/etc/autoretrain/roles.sql}"
