#!/usr/bin/env bash
# The owner and service roles of an autoretrain database on a Postgres you run yourself (as a
# docker-entrypoint-initdb.d script, or by hand); autoretrain-roles.sql explains them. The compose
# stack does not use it: its postgres-init service runs roles.sql on every `up`.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v database="${DB_NAME:-autoretrain}" \
    -v owner_role="${DB_OWNER_USER:-autoretrain_owner}" \
    -v owner_password="${DB_OWNER_PASSWORD:?set DB_OWNER_PASSWORD (see .env.example)}" \
    -v service_role="${DB_SERVICE_USER:-autoretrain_service}" \
    -v service_password="${DB_SERVICE_PASSWORD:?set DB_SERVICE_PASSWORD (see .env.example)}" \
    -f "${ROLES_SQL:-/etc/autoretrain/autoretrain-roles.sql}"
