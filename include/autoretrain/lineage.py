"""Every MLflow tag key and artifact name AutoRetrain writes or reads, once (cf. mlflow/utils/mlflow_tags.py).

A leaf module: it imports nothing of the project, so any stage can name what another stage
recorded without importing that stage. Tags are strings in MLflow; everything read back from them
is untrusted input.
"""

from __future__ import annotations

# --------------------------------------------------------------------------- run tags
#: ``<dag_id>/<run_id>[/family]``: how a retried task finds the run it created (tracking.find_or_create_run)
RUN_KEY = "autoretrain.run_key"
#: ``training`` | ``monitoring``: which part of the lifecycle made the run
STAGE = "autoretrain.stage"
#: the Airflow DAG and run (or ``cli``/``cli__<time>``) that made a training run or model version
AIRFLOW_DAG_ID = "airflow.dag_id"
AIRFLOW_RUN_ID = "airflow.run_id"
#: MLflow's own tag of a nested (child) run
MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"
#: the data source of a training run (password masked) and the SHA-256 digest of its rows
DATA_SOURCE = "autoretrain.data_source"
DATA_DIGEST = "autoretrain.data_digest"
#: challenger runs: digests of the base dataset and of the labelled feedback, and the feedback row count
BASE_DIGEST = "autoretrain.base_digest"
FEEDBACK_DIGEST = "autoretrain.feedback_digest"
FEEDBACK_ROWS = "autoretrain.feedback_rows"
#: the family a child run searched, and the family the parent run selected
FAMILY = "autoretrain.family"
SELECTED_FAMILY = "autoretrain.selected_family"
#: ``runs:/...`` URI of the model a family's child run logged
MODEL_URI = "autoretrain.model_uri"
#: monitoring runs: the champion version a window was measured with
MODEL_VERSION = "autoretrain.model_version"

# ----------------------------------------------------------------- model version tags
#: SHA-256 of the model artifact, recorded at registration
SHA256 = "autoretrain.sha256"
#: the training (parent) run of a version: where its data snapshots and hold-out scores are
PARENT_RUN_ID = "autoretrain.parent_run_id"
#: ``passed`` | ``failed``: the absolute gates
GATES = "autoretrain.gates"
#: ``promote`` | ``reject`` | ``withdrawn after canary``: the comparison's outcome
DECISION = "autoretrain.decision"
#: ``runs:/<run>/model_card.md``
MODEL_CARD = "autoretrain.model_card"
#: hold-out metrics on a version are tagged ``holdout_<metric>`` (accuracy, f1, mcc, ece, fpr)
HOLDOUT_PREFIX = "holdout_"
#: their 95 % bootstrap intervals, ``interval_<metric>`` = ``"<low> <high>"`` (written with the model card)
INTERVAL_PREFIX = "interval_"

# ------------------------------------------------------------------------ artifacts
#: data frames of a run live at ``<FRAMES_DIR>/<name>.parquet``
FRAMES_DIR = "data"
FRAME_RAW = "raw"  # the source as read
FRAME_FEEDBACK = "feedback"  # labelled traffic that joined a challenger's data
FRAME_TRAIN = "train"
FRAME_TEST = "test"  # the hold-out
FRAME_HOLDOUT_SCORES = "holdout_scores"  # hold-out labels, texts and the selected model's P(positive)
VALIDATION_REPORT = "validation/report.json"
FEEDBACK_VALIDATION_REPORT = "validation/feedback_report.json"
FEEDBACK_SUMMARY = "validation/feedback.json"
SELECTION = "selection.json"  # the ranking of the families by cross-validated score
COMPARISON = "comparison.json"  # champion vs challenger on one hold-out
MODEL_CARD_FILE = "model_card.md"
PLOTS_DIR = "plots"  # confusion_matrix.png, roc.png, pr.png, reliability.png
DRIFT_REPORT = "drift_report.json"  # a monitored window's check results
EVIDENTLY_DIR = "reports"
EVIDENTLY_REPORT = "evidently_drift_report.html"
