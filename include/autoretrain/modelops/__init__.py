"""Model Ops views: what the Airflow UI's Model Ops page and tabs show, read from AutoRetrain's tables
(aggregated in SQL) and from the registry, and rendered as plain HTML with inline SVG charts."""
