"""Airflow operators, sensors, callbacks and defaults shared by the DAGs in ``dags/``.

The only part of AutoRetrain that imports Airflow. Each operator is a thin shell over a plain
function in ``autoretrain`` (importable and testable without Airflow); heavy libraries are
imported inside ``execute`` so that parsing a DAG stays fast.
"""
