-- The roles of AutoRetrain's database, for a Postgres you run yourself (compose's postgres-init runs
-- roles.sql instead, with the same split): a migration role that owns every table, and the services'
-- role that reads and writes rows but can never rewrite history (docs/deploy.md, "Database roles").
--
--   owner_role    runs `autoretrain db upgrade` and `autoretrain db grant`; owns the tables, the
--                 alias_audit trigger and its function. Only an owner (or a superuser) can
--                 ALTER TABLE ... DISABLE TRIGGER, DROP or TRUNCATE-by-ownership a table.
--   service_role  the prediction service and the Airflow tasks: SELECT/INSERT/UPDATE/DELETE on the
--                 working tables, only SELECT/INSERT on alias_audit (and UPDATE of an intent's
--                 status on alias_intents); no TRUNCATE, no TRIGGER, owns nothing.
--
-- Run as a superuser, with psql variables (20-roles.sh does it at the first start of the compose
-- stack; by hand for an existing volume, see docs/deploy.md):
--   psql -v ON_ERROR_STOP=1 -v database=autoretrain -v owner_role=autoretrain_owner \
--        -v owner_password=... -v service_role=autoretrain_service -v service_password=... -f roles.sql
-- Idempotent: existing roles get the given passwords, existing tables are handed to owner_role.
-- The table grants are made after each migration by `autoretrain db grant <service_role>` (the
-- tables do not exist yet when this runs at first start).

SELECT format('CREATE ROLE %I', :'owner_role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'owner_role') \gexec
SELECT format('CREATE ROLE %I', :'service_role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'service_role') \gexec
ALTER ROLE :"owner_role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'owner_password';
ALTER ROLE :"service_role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT
    PASSWORD :'service_password';

ALTER DATABASE :"database" OWNER TO :"owner_role";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"database" TO :"service_role";

\connect :"database"
ALTER SCHEMA public OWNER TO :"owner_role";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"service_role";

-- a database that existed before the roles: its tables, sequences and functions change hands
SELECT format('ALTER TABLE public.%I OWNER TO %I', tablename, :'owner_role')
  FROM pg_tables WHERE schemaname = 'public' AND tableowner <> :'owner_role' \gexec
SELECT format('ALTER SEQUENCE public.%I OWNER TO %I', sequencename, :'owner_role')
  FROM pg_sequences WHERE schemaname = 'public' AND sequenceowner <> :'owner_role' \gexec
SELECT format('ALTER FUNCTION public.%I() OWNER TO %I', p.proname, :'owner_role')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'public' AND p.proname = 'alias_audit_append_only' \gexec
