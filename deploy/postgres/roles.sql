-- Per-service roles, run by the one-shot postgres-init service on every `docker compose up` (idempotent).
-- The superuser (POSTGRES_USER) is used here only; every other service logs in with its own role:
--   airflow              owns database airflow (metadata, Celery results)
--   mlflow               owns database mlflow (tracking store, registry)
--   autoretrain_app      owns AutoRetrain's tables (runs the migrations; the Airflow tasks)
--   autoretrain_serving  the prediction service: reads and writes rows, no DDL, no TRUNCATE, no triggers
-- Passwords come from the environment (.env, read with \getenv: psql 15+); none of them is a superuser.
\set ON_ERROR_STOP on
\getenv airflow_password AIRFLOW_DB_PASSWORD
\getenv mlflow_password MLFLOW_DB_PASSWORD
\getenv autoretrain_password APP_DB_PASSWORD
\getenv serving_password SERVING_DB_PASSWORD

SELECT format('CREATE ROLE %I LOGIN', name) FROM unnest(ARRAY['airflow', 'mlflow', 'autoretrain_app',
  'autoretrain_serving']) AS name WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) \gexec
ALTER ROLE airflow WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'airflow_password';
ALTER ROLE mlflow WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'mlflow_password';
ALTER ROLE autoretrain_app WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'autoretrain_password';
ALTER ROLE autoretrain_serving WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'serving_password';

SELECT format('CREATE DATABASE %I', name) FROM unnest(ARRAY['airflow', 'mlflow', 'autoretrain']) AS name
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = name) \gexec
ALTER DATABASE airflow OWNER TO airflow;
ALTER DATABASE mlflow OWNER TO mlflow;
ALTER DATABASE autoretrain OWNER TO autoretrain_app;
REVOKE ALL ON DATABASE airflow, mlflow FROM PUBLIC;
REVOKE ALL ON DATABASE autoretrain FROM PUBLIC;
GRANT CONNECT ON DATABASE autoretrain TO autoretrain_serving;

-- a stack created before these roles: hand the existing objects to their owners
\connect airflow
SELECT format('ALTER TABLE public.%I OWNER TO airflow', tablename) FROM pg_tables WHERE schemaname = 'public' \gexec
SELECT format('ALTER SEQUENCE public.%I OWNER TO airflow', sequencename) FROM pg_sequences WHERE schemaname = 'public' \gexec
\connect mlflow
SELECT format('ALTER TABLE public.%I OWNER TO mlflow', tablename) FROM pg_tables WHERE schemaname = 'public' \gexec
SELECT format('ALTER SEQUENCE public.%I OWNER TO mlflow', sequencename) FROM pg_sequences WHERE schemaname = 'public' \gexec
\connect autoretrain
SELECT format('ALTER TABLE public.%I OWNER TO autoretrain_app', tablename) FROM pg_tables WHERE schemaname = 'public' \gexec
SELECT format('ALTER SEQUENCE public.%I OWNER TO autoretrain_app', sequencename) FROM pg_sequences WHERE schemaname = 'public' \gexec

-- the prediction service: rows of the tables that exist and of every table the migrations add later
GRANT USAGE ON SCHEMA public TO autoretrain_serving;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO autoretrain_serving;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO autoretrain_serving;
ALTER DEFAULT PRIVILEGES FOR ROLE autoretrain_app IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO autoretrain_serving;
ALTER DEFAULT PRIVILEGES FOR ROLE autoretrain_app IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO autoretrain_serving;
