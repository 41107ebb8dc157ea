"""AutoRetrain: an Airflow 3 autopilot for text classifiers (train, serve, monitor, retrain, promote).

The core package is plain Python (no Airflow imports); ``autoretrain.airflow`` holds the operators,
sensors and callbacks that the DAGs in ``dags/`` call.
"""

__version__ = "0.1.0"
