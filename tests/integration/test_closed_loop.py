"""The closed loop against a running prediction service: drift in the traffic -> monitoring DAG ->
retrain_compare_promote -> the new champion answers POST /predict, without a restart.

Real Postgres (prediction log, feedback, drift windows, alias audit), a real mlflow server and the
service as a uvicorn process; the DAGs run under ``dag.test()``. The loop itself is the package
fixture ``closed_loop`` (tests/integration/conftest.py), which test_modelops_ui reads too. The same
loop under the real scheduler is what ``make demo`` runs (and times).
"""

from __future__ import annotations

import time

from autoretrain import registry, tracking
from autoretrain.config import load_settings
from devstack.scenarios import referral_campaign


def test_drift_in_live_traffic_ends_with_a_new_champion_answering_predict(closed_loop) -> None:
    loop = closed_loop
    # 1. the training DAG registered the first champion
    assert loop.training_state == "success"

    # 2. live traffic: held-out SMS answered by v1, then a new campaign v1 calls ham (users report it)
    assert {a["model_version"] for a in loop.quiet} == {"1"}
    assert sum(a["label"] == "spam" for a in loop.before[:150]) < 15  # the champion misses the campaign

    # 3. monitoring measured the window from the prediction log and triggered the retrain
    assert loop.monitoring_states["trigger_retrain"] == "success", loop.monitoring_states
    assert loop.monitoring_states["no_action"] == "skipped", loop.monitoring_states

    # 4. the retrain (with the conf monitoring gave it) promoted a challenger
    conf = loop.retrain_conf
    assert conf["reason"] == "drift detected by monitoring" and conf["drift_reasons"]["retrain"] is True
    assert loop.retrain_state == "success" and loop.retrain_states["promote"] == "success", loop.retrain_states
    client = tracking.client_for(load_settings(environ={**loop.env,
                                                        "AUTORETRAIN_TRACKING_URI": loop.env["MLFLOW_TRACKING_URI"]}))
    assert registry.alias_version(client, loop.model_name, registry.CHAMPION).version == "2"

    # 5. the running service answers with v2 without a restart, and now catches the campaign
    deadline = time.monotonic() + 30
    fresh = referral_campaign(40, 0, seed=12)
    while True:
        answers = [loop.http.post("/predict", json={"message": t}).raise_for_status().json() for t, _ in fresh]
        if {a["model_version"] for a in answers} == {"2"} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {a["model_version"] for a in answers} == {"2"}
    assert sum(a["label"] == "spam" for a in answers) >= 36  # >= 90 % of unseen campaign messages
