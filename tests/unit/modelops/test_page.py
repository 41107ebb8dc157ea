"""Registry metadata parsing and caching, and the rendered page: what a person reads, escaped."""

from __future__ import annotations

from types import SimpleNamespace

from autoretrain.modelops import versions
from autoretrain.modelops.overview import mlflow_ui_base
from autoretrain.modelops.sections import Links, overview_page, run_tab


def ref(version: str, **tags: str) -> SimpleNamespace:
    return SimpleNamespace(version=version, aliases=("champion",) if version == "2" else (), run_id=f"run{version}",
                           tags=tags)


def test_describe_parses_numbers_and_intervals_and_drops_bad_ones() -> None:
    got = versions.describe(ref("2", holdout_f1="0.912345", holdout_mcc="nan", interval_f1="0.88 0.94",
                                interval_mcc="0.1", **{"autoretrain.family": "logreg"}))
    assert got["metrics"]["f1"] == 0.912345 and got["metrics"]["mcc"] is None and got["metrics"]["ece"] is None
    assert got["intervals"]["f1"] == [0.88, 0.94] and got["intervals"]["mcc"] is None
    assert got["family"] == "logreg" and got["aliases"] == ["champion"]


def test_the_cache_reads_the_registry_once_per_ttl() -> None:
    clock = [0.0]
    reads = []
    cache = versions.VersionCache(ttl=30, clock=lambda: clock[0])

    def read():
        reads.append(1)
        return [ref("1")]

    for t in (0.0, 10.0, 29.9, 30.0, 31.0):
        clock[0] = t
        assert [v["version"] for v in cache.get(("uri", "m"), read)] == ["1"]
    assert len(reads) == 2


def test_merge_keeps_vetted_versions_and_marks_unvetted_ones() -> None:
    registered = [{"version": "1", "registered_at": "t1", "registered_by": "training/a", "run_id": "run1"},
                  {"version": "10", "registered_at": "t2", "registered_by": "training/b", "run_id": "run10"}]
    merged = versions.merge(registered, [versions.describe(ref("10", holdout_f1="0.9")),
                                         versions.describe(ref("3"))])
    assert [(v["version"], v["vetted"]) for v in merged] == [("1", True), ("3", False), ("10", True)]
    assert merged[2]["metrics"]["f1"] == 0.9 and merged[2]["registered_by"] == "training/b"


def test_mlflow_links_never_carry_credentials() -> None:
    assert mlflow_ui_base("http://user:secret@mlflow:5000/base") == "http://mlflow:5000/base"
    assert mlflow_ui_base("sqlite:///x.db") is None


def empty_data(**over):
    data = {"model_name": "sms", "now": "2026-03-02T12:00:00+00:00",
            "aliases": {"roles": {r: {"version": None, "moved": None} for r in ("champion", "challenger", "previous")},
                        "history": [], "moves_total": 0},
            "versions": [], "drift": {"windows": [], "checks": [], "totals": {
                "windows": 0, "breached": 0, "retrain": 0, "insufficient": 0, "first": None, "last": None}},
            "quality": {"windows": [], "live": {"since": None, "bucket_hours": 1.0, "buckets": []}}, "timeline": [],
            "alerts": {"days": 30.0, "counts": [], "rows": []},
            "serving": {"routing": None, "routing_updated_at": None, "minutes": 60.0, "served": 0, "variants": []}}
    return {**data, **over}


def test_the_page_escapes_untrusted_text_and_shows_the_figures() -> None:
    move = {"id": 1, "at": "2026-03-02T11:00:00+00:00", "alias": "champion", "action": "promote", "from_version": "1",
            "to_version": "2", "actor": "airflow:r.promote", "run_id": "retrain_compare_promote/r1",
            "reason": "<script>alert(1)</script>", "reasons": ["ok"],
            "metrics": {"mcnemar": {"p_value": 0.0021}, "bootstrap": {"p_value": 0.004},
                        "champion": {"f1": 0.7}, "challenger": {"f1": 0.95}}}
    aliases = {"roles": {"champion": {"version": "2", "moved": move}, "challenger": {"version": None, "moved": None},
                         "previous": {"version": "1", "moved": None}}, "history": [move], "moves_total": 1}
    v2 = {**versions.describe(ref("2", holdout_f1="0.95", interval_f1="0.9 0.97",
                                  **{"autoretrain.family": "<b>x</b>"})), "registered_at": None}
    timeline = [{"run_id": "r1", "moves": [move], "alerts": [], "outcome": "promoted", "state": "success",
                 "start": None, "trigger": {"source": "drift", "reason": "drift detected", "drift": ["vocab > 0.2"]}}]
    html = overview_page(empty_data(aliases=aliases, versions=[v2], timeline=timeline),
                         Links("http://mlflow:5000", "sms"))
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>x</b>" not in html
    assert "data-role='champion'>v2<" in html and "[0.900, 0.970]" in html
    assert "McNemar p=0.0021" in html and "bootstrap p=0.004<" in html
    assert 'href="http://mlflow:5000/#/models/sms/versions/2"' in html
    assert 'href="/dags/retrain_compare_promote/runs/r1" target="_top"' in html


def test_run_tab_of_a_dag_model_ops_knows_nothing_about() -> None:
    html = run_tab({"kind": None, "dag_id": "other", "run_id": "x"}, Links(None, "sms"))
    assert "Model Ops shows nothing for this DAG" in html
