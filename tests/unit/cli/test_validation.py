"""``autoretrain validate``: the report on stdout, exit 0 / 1 / 2."""

from __future__ import annotations

import json

import pytest

from autoretrain.cli.validation import main
from tests.conftest import ROOT

CORPUS = ROOT / "data" / "sms_spam_collection" / "SMSSpamCollection"


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTORETRAIN_ARTIFACT_STORE_URI", str(tmp_path / "artifacts"))
    monkeypatch.delenv("AUTORETRAIN_FEEDBACK_URI", raising=False)


def test_good_corpus_exits_0_with_the_markdown_report(capsys):
    assert main([str(CORPUS)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Dataset validation: PASSED\n")
    assert "| minimum_samples | ok | 5574 | 1000 | yes | 5574 rows, need at least 1000 |" in out
    assert "| pii | WARNING | 0.08163 | 0 | no |" in out


def test_blocking_failure_exits_1_naming_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("ham\tfine\nspam WIN no tab\n", encoding="utf-8")
    assert main([str(bad), "--json", "--report-dir", str(tmp_path / "out")]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False
    assert report["failures"] == [{
        "name": "readable", "score": 0.0, "threshold": 1.0, "blocking": True,
        "details": f"{bad}: 1 malformed line(s): line 2: expected 'label<TAB>text' (2 fields), found no tab: "
                   "'spam WIN no tab'"}]
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == report
    assert (tmp_path / "out" / "report.md").read_text().startswith("# Dataset validation: FAILED")


def test_feedback_option_and_usage_errors(tmp_path, capsys):
    feedback = tmp_path / "fb.csv"
    feedback.write_text("label,text\nspma,typo label\n", encoding="utf-8")
    assert main([str(CORPUS), "--feedback", str(feedback), "--json"]) == 1
    failures = [f["name"] for f in json.loads(capsys.readouterr().out)["failures"]]
    assert failures == ["schema", "feedback.schema"]
    assert main(["--no-such-option"]) == 2
    broken = tmp_path / "settings.json"
    broken.write_text("{not json", encoding="utf-8")
    assert main([str(CORPUS), "--config", str(broken)]) == 2
