"""Every Airflow Asset of AutoRetrain, in one place: who updates it and who it schedules."""

from __future__ import annotations

from airflow.sdk import Asset

#: updated by every successful ``dataset_validation`` run; extra: digest, rows, snapshot uri
VALIDATED_DATASET = Asset(name="autoretrain_validated_dataset", uri="x-autoretrain://datasets/validated",
                          group="dataset")

#: new labelled traffic worth a retrain; emitted by whatever ingests labels (e.g. through Airflow's
#: REST API: POST /api/v2/assets/events), it schedules ``retrain_compare_promote``
LABELLED_FEEDBACK = Asset(name="autoretrain_labelled_feedback", uri="x-autoretrain://feedback/labelled",
                          group="feedback")

#: updated by every ``monitoring`` run that measured its window (name and URI as deployed since issue 4)
MONITORING_WINDOW = Asset("autoretrain_monitoring")
