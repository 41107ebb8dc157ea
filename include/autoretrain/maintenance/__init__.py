"""Retention: what AutoRetrain stops keeping, on a schedule (the ``maintenance`` DAG) or by hand.

:mod:`autoretrain.maintenance.retention` purges prediction-log and feedback rows older than
``retention_days`` and redacts old texts, never a row a running canary or retrain still reads;
:mod:`autoretrain.maintenance.artifacts` deletes old dataset snapshots and validation reports.
"""
