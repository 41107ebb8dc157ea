"""Development tooling, not the product: the native stack's processes, Airflow's REST client, demo traffic."""
