-- Per-service roles, run by the one-shot postgres-init service on every `docker compose up` (idempotent).
-- The superuser (POSTGRES_USER) is used here only; every other service logs in with its own role:
--   airflow              owns database airflow (metadata, Celery results)
--   mlflow               owns database mlflow (tracking store, registry)
--   autoretrain_app      owns AutoRetrain's tables: runs the migrations and `autoretrain db grant` (airflow-init) only
--   autoretrain_tasks    the Airflow tasks: rows of AutoRetrain's tables, owns nothing
--   autoretrain_serving  the prediction service: the same rights as the tasks
-- The table rights of the last two come from `autoretrain db grant ROLE` after every upgrade
-- (include/autoretrain/db/roles.py): alias_audit SELECT/INSERT only, no TRUNCATE, no TRIGGER, no DDL.
-- Passwords come from the environment (.env, read with \getenv: psql 15+); none of them is a superuser.
\set ON_ERROR_STOP on
\getenv airflow_password AIRFLOW_DB_PASSWORD
\getenv mlflow_password MLFLOW_DB_PASSWORD
\getenv autoretrain_password APP_DB_PASSWORD
\getenv tasks_password TASKS_DB_PASSWORD
\getenv serving_password SERVING_DB_PASSWORD

SELECT format('CREATE ROLE %I LOGIN', name) FROM unnest(ARRAY['airflow', 'mlflow', 'autoretrain_app',
  'autoretrain_tasks', 'autoretrain_serving']) AS name WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) \gexec
ALTER ROLE airflow WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'airflow_password';
ALTER ROLE mlflow WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'mlflow_password';
ALTER ROLE autoretrain_app WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'autoretrain_password';
ALTER ROLE autoretrain_tasks WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'tasks_password';
ALTER ROLE autoretrain_serving WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'serving_password';

SELECT format('CREATE DATABASE %I', name) FROM unnest(ARRAY['airflow', 'mlflow', 'autoretrain']) AS name
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = name) \gexec
ALTER DATABASE airflow OWNER TO airflow;
ALTER DATABASE mlflow OWNER TO mlflow;
ALTER DATABASE autoretrain OWNER TO autoretrain_app;
REVOKE ALL ON DATABASE airflow, mlflow FROM PUBLIC;
REVOKE ALL ON DATABASE autoretrain FROM PUBLIC;
GRANT CONNECT ON DATABASE autoretrain TO autoretrain_tasks, autoretrain_serving;

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

-- the tasks and the prediction service: the schema; their table rights come from `autoretrain db grant`
GRANT USAGE ON SCHEMA public TO autoretrain_tasks, autoretrain_serving;
