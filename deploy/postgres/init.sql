-- Runs once, when the postgres volume is first initialised (docker-entrypoint-initdb.d).
-- One database per consumer, all owned by POSTGRES_USER:
--   airflow      Airflow metadata and the Celery result backend
--   mlflow       the MLflow tracking store and model registry
--   autoretrain  AutoRetrain's own tables: prediction log, feedback, routing, drift windows, alias audit
CREATE DATABASE airflow;
CREATE DATABASE mlflow;
CREATE DATABASE autoretrain;
