"""Alerts: message builders (pure) and the alert log; delivery through Airflow lives in ``autoretrain.airflow``."""
