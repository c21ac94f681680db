"""The cascade, the scan, the reports, triage and retraining, on a real (small) cascade trained in the session.

The label data are a learnable stand-in with the real files' shapes (tests/vuln_data.py); the split and label
rules are the real ones, so leakage or a mislabelled source would show here.
"""

import csv
import json
import shutil
from datetime import datetime, timezone

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import SHARED_DATA
from vuln_data import write_osv
from transferlab.cli import app
from transferlab.errors import ConfigError, DataError, ModelFileError
from transferlab.vuln import labels as L
from transferlab.vuln import report as R
from transferlab.vuln.advisories import AdvisoryIndex
from transferlab.vuln.cascade import Cascade, split_sentences, train_cascade
from transferlab.vuln.mapping import RepositoryMapper
from transferlab.vuln.records import Record
from transferlab.vuln.scan import scan
from transferlab.vuln.sources.base import Batch
from transferlab.vuln.store import Store, StoreError

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
VULN_TEXT = ("Heap buffer overflow in the parser. A crafted file causes a heap buffer overflow and out of bounds "
             "write, leading to remote code execution. The logo colour is fine.")


# security_data and cascade_dir (a glove-dan cascade trained once per session) are in conftest.py


@pytest.fixture(scope="session")
def cascade(cascade_dir):
    return Cascade.load(cascade_dir)


# ------------------------------------------------------------------------------------------------ label sources
def test_stage1_split_is_by_time_and_never_reads_the_label_column(security_data):
    parts = L.stage1(security_data)
    import pandas as pd

    matomo = pd.read_csv(security_data / "matomo_issues.csv.gz")
    created = dict(zip(matomo["number"], pd.to_datetime(matomo["created_at"], utc=True)))

    def dates(ex):
        return [created[int(o.split("#")[1])] for o, src in zip(ex.origins, ex.columns["origin"]) if src == "matomo"]

    assert max(dates(parts.train)) < pd.Timestamp("2018-01-01", tz="UTC") <= min(dates(parts.validation))
    assert max(dates(parts.validation)) < pd.Timestamp("2020-01-01", tz="UTC") <= min(dates(parts.test))
    assert {"farsec"} <= set(parts.train.columns["origin"]) and "farsec" not in parts.test.columns["origin"]
    assert not any("c: Security" in t for t in parts.train.texts + parts.test.texts)


def test_stage2_sources_labels_and_groups(security_data):
    frame = L.stage2_frame(security_data)
    assert set(frame[frame.label == L.NOT_VULNERABILITY].origin) == {"matomo-security"}
    assert not frame.text.str.contains("PiperOrigin-RevId|Change-Id|Open Source Machine Learning").any()
    assert not (frame.text == "Internal change").any()  # stubs say nothing and are dropped
    parts = L.stage2(security_data)
    groups = [set(frame.loc[frame["where"].isin(ex.origins), "group"]) for ex in (parts.train, parts.validation,
                                                                                  parts.test)]
    assert not (groups[0] & groups[2]) and not (groups[0] & groups[1])  # a CVE and its fix stay together


def test_missing_label_source_is_named(tmp_path, security_data):
    partial = tmp_path / "sec"
    shutil.copytree(security_data, partial)
    (partial / "sap_project_kb" / "statements.jsonl").unlink()
    with pytest.raises(DataError, match="statements.jsonl"):
        L.stage2(partial)


# ------------------------------------------------------------------------------------------------ the cascade
def test_cascade_records_versions_thresholds_and_held_out_figures(cascade_dir, cascade):
    info = json.loads((cascade_dir / "cascade.json").read_text())
    assert info["version"] == cascade.version and cascade.version.startswith("cascade-")
    for stage, rule in (("stage1", "recall:0.8"), ("stage2", "recall:0.8")):
        model = info["models"][stage]
        assert model["rule"] == rule and 0 < model["threshold"] <= 1 and len(model["weights_sha256"]) == 64
        test = info[stage]["test"]
        assert test["n"] > 0 and 0 <= test["pr_auc"] <= 1 and test["recall"] is not None
    assert info["stage1"]["test"]["pr_auc"] > 0.8 and info["stage2"]["test"]["pr_auc"] > 0.8  # learnable data
    # this small data set has under 20 validation examples of a class in each stage: thresholds come from
    # cross-validation, and the record says so instead of giving in-sample validation figures
    for stage in ("stage1", "stage2"):
        counts = info[stage]["counts"]["validation"]
        few = min(v for k, v in counts.items() if k != "n") < 20
        assert info[stage]["decision"].startswith("5-fold" if few else "validation")
        if few:
            assert info[stage]["validation"]["cross_validation"]["folds"] == 5
        assert info[stage]["refit"] is few  # glove-dan is refitted by default only where validation is thin
    assert info["refit"] is None  # as asked (the default, by recipe): `vuln retrain` fits the same way


def test_a_stage_is_refitted_on_training_and_validation_with_out_of_fold_thresholds(security_data):
    """With enough validation positives a stage's threshold comes from the validation part; with refit the model
    trains on training + validation (the most recent labelled period) and its threshold comes from out-of-fold
    scores, so no figure is in-sample; the default refits the frozen-encoder recipes only."""
    from transferlab.vuln.cascade import refits, train_stage

    parts = L.stage1(security_data, validation_from="2016-01-01", test_from="2020-01-01", farsec=False)
    assert parts.validation.labels.count(L.SECURITY) >= 20  # not the few-positives path
    n_train, n_val = len(parts.train), len(parts.validation)
    plain, plain_info = train_stage(parts, 1, "glove-dan", 0.8, refit=False)
    assert plain_info["decision"] == "validation part" and not plain_info["refit"]
    assert plain.fit_info_["n_train"] == n_train and plain_info["validation"]["recall"] >= 0.8 - 1e-9
    refitted, info = train_stage(parts, 1, "glove-dan", 0.8, refit=True)
    assert info["refit"] and "training + validation" in info["decision"]
    assert refitted.fit_info_["n_train"] == n_train + n_val  # the validation period is trained on
    assert info["validation"]["cross_validation"]["folds"] == 5 and "pr_auc" not in info["validation"]
    assert "out-of-fold" in refitted.decision_["fitted_on"]
    assert 0 <= info["test"]["pr_auc"] <= 1 and info["test"]["n"] == len(parts.test)  # test untouched
    assert refits("minilm-frozen-tfidf-stack", None) and refits("minilm-frozen", None)
    assert not refits("glove-dan", None) and not refits("minilm-finetune", None) and refits("glove-dan", True)
    with pytest.raises(ConfigError, match="not refitted"):
        train_cascade("unused", data=security_data, stage1_recipe="minilm-finetune", shared=True, refit=True,
                      log=lambda m: None)


def test_scores_follow_the_cascade_rule(cascade):
    texts = [VULN_TEXT, "add a dark theme to the settings page", "sql injection in the search parameter lets "
             "attackers read the database", "add a content security policy header for hardening"]
    s = cascade.score(texts)
    assert np.array_equal(s["passed1"], s["stage1"] >= cascade.threshold(1))
    assert np.isnan(s["stage2"][~s["passed1"]]).all() and not np.isnan(s["stage2"][s["passed1"]]).any()
    expected = s["passed1"] & (np.nan_to_num(s["stage2"], nan=-1) >= cascade.threshold(2))
    assert np.array_equal(s["flagged"], expected)
    assert s["stage1"][1] < s["stage1"][2]  # security beats the dark theme


def test_explanation_points_at_the_sentence_that_carries_the_score(cascade):
    text = ("The settings page has a new layout. Thanks for the translation work. A crafted cookie allows "
            "authentication bypass and gives admin access.")
    top = cascade.explain(text, stage=2)
    assert top and "bypass" in top[0]["sentence"] and top[0]["weight"] > 0
    assert split_sentences("One. Two!\n\nThree") == ["One.", "Two!", "Three"]


def test_a_tampered_stage_is_refused(cascade_dir, tmp_path):
    copy = tmp_path / "c"
    shutil.copytree(cascade_dir, copy)
    info = json.loads((copy / "cascade.json").read_text())
    info["models"]["stage2"]["threshold"] = 0.01  # someone lowered a threshold by hand
    (copy / "cascade.json").write_text(json.dumps(info))
    with pytest.raises(ModelFileError, match="not the ones"):
        Cascade.load(copy)
    with pytest.raises(ModelFileError, match="cascade.json is missing"):
        Cascade.load(tmp_path)


# ------------------------------------------------------------------------------------------------ scan + reports
def _record(n, project, title, body="", kind="issue", updated=T0, url=None):
    return Record(source="github" if "/" in project else "mail", connector="test", project=project, kind=kind,
                  native_id=f"{project}#{n}", url=url or f"https://github.com/{project}/issues/{n}", title=title,
                  body=body, author="alice", created_at=updated, updated_at=updated)


@pytest.fixture
def world(tmp_path, cascade):
    store = Store.open(f"sqlite:///{tmp_path / 'v.db'}")
    store.write_batch("t", Batch(records=[
        _record(1, "acme/parser", "Heap buffer overflow when parsing a crafted file allows remote code execution",
                "A crafted file causes a heap buffer overflow. <script>alert(1)</script>"),
        _record(2, "acme/parser", "Add a dark theme to the settings page"),
        _record(3, "acme/parser", "SQL injection in the search parameter lets attackers read the database",
                "Fixed upstream, see CVE-2024-1111."),
        _record(4, "oss-security", "Integer overflow leads to out of bounds write in acme-parser",
                "integer overflow leads to out of bounds write and memory corruption", kind="mail"),
        _record(5, "oss-security", "Integer overflow leads to out of bounds write in otherlib",
                "integer overflow leads to out of bounds write and memory corruption", kind="mail"),
    ]))
    (tmp_path / "requirements.txt").write_text("# app\nacme-parser==1.2.0\nunmapped-thing==0.1\n")
    (tmp_path / "map.toml").write_text('[PyPI."acme-parser"]\nprojects = ["acme/parser", "oss-security"]\n'
                                       'mentions = ["acme-parser"]\n')
    write_osv(tmp_path / "osv")
    mapper = RepositoryMapper(tmp_path / "map.toml", cache_file=tmp_path / "cache.json", online=False)
    return store, mapper, AdvisoryIndex.from_directory(tmp_path / "osv"), tmp_path


def test_scan_links_scores_once_and_tells_known_from_new(world, cascade):
    store, mapper, advisories, tmp = world
    result = scan([tmp / "requirements.txt"], store, cascade, mapper, advisories, progress=False)
    assert result.scored_now == 5
    dep = next(d for d in result.dependencies if d.dependency.name == "acme-parser")
    assert dep.records == 4  # its repository's 3 + the list post naming it; not the post about otherlib
    titles = {i.record["title"]: i for i in dep.items}
    assert any("Heap buffer overflow" in t for t in titles) and not any("dark theme" in t for t in titles)
    sql = next(i for t, i in titles.items() if t.startswith("SQL injection"))
    assert sql.advisory == "GHSA-aaaa-bbbb-cccc" and sql.status == "already disclosed (GHSA-aaaa-bbbb-cccc)"
    heap = next(i for t, i in titles.items() if t.startswith("Heap"))
    assert heap.advisory is None and heap.status == "early warning"
    assert heap.evidence["models"]["stage1"]["id"].startswith("glove-dan@") and heap.evidence["sentences"]
    assert [k["id"] for k in dep.known] == ["GHSA-aaaa-bbbb-cccc"]  # 1.2.0 < 1.3.0
    unmapped = next(d for d in result.dependencies if d.dependency.name == "unmapped-thing")
    assert not unmapped.mapping.found and "offline" in unmapped.mapping.reason
    assert [i.rank_score for i in dep.items] == sorted((i.rank_score for i in dep.items), reverse=True)

    again = scan([tmp / "requirements.txt"], store, cascade, mapper, advisories, progress=False)
    assert again.scored_now == 0  # a second scan only reads scores
    later = T0.replace(month=4)
    store.write_batch("t", Batch(records=[_record(2, "acme/parser", "Add a dark theme", "now with more contrast",
                                                  updated=later)]))
    third = scan([tmp / "requirements.txt"], store, cascade, mapper, advisories, since=later, progress=False)
    assert third.scored_now == 1 and next(d for d in third.dependencies
                                          if d.dependency.name == "acme-parser").records == 1


def test_reports_in_every_format(world, cascade, tmp_path):
    store, mapper, advisories, tmp = world
    result = scan([tmp / "requirements.txt"], store, cascade, mapper, advisories, progress=False)
    paths = {fmt: R.write(result, tmp_path / f"out/report.{fmt}") for fmt in ("md", "html", "csv", "json", "sarif")}
    md = paths["md"].read_text()
    assert "## PyPI acme-parser 1.2.0" in md and "early warning" in md and "GHSA-aaaa-bbbb-cccc" in md
    html = paths["html"].read_text()
    assert "<script>alert" not in html and "Heap buffer overflow" in html
    with open(paths["csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[:len(R.REFERENCE_COLUMNS)] == R.REFERENCE_COLUMNS
    assert len(rows) == result.flagged and {r["disclosure"] for r in rows} == {"early warning", "already disclosed"}
    assert all(r["stage1_model"].startswith("glove-dan@") and r["event_type"] in ("IssuesEvent", "Mail")
               for r in rows)
    data = json.loads(paths["json"].read_text())
    assert data["cascade"]["version"] == cascade.version and data["dependencies"][0]["flagged"]
    sarif = json.loads(paths["sarif"].read_text())
    results = sarif["runs"][0]["results"]
    assert sarif["version"] == "2.1.0" and len(results) == result.flagged
    assert {r["ruleId"] for r in results} == {"TL001", "TL002"}
    loc = results[0]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"].endswith("requirements.txt") and loc["region"]["startLine"] == 2
    with pytest.raises(ConfigError, match="format"):
        R.write(result, tmp_path / "report.txt")


# ------------------------------------------------------------------------------------------------ triage, retrain
def test_verdicts_are_checked_and_kept_with_who_and_when(world, cascade):
    store, mapper, advisories, tmp = world
    scan([tmp / "requirements.txt"], store, cascade, mapper, advisories, progress=False)
    with pytest.raises(StoreError, match="unknown verdict"):
        store.add_verdict(1, "maybe", "bob")
    with pytest.raises(StoreError, match="no record"):
        store.add_verdict(999, "vulnerability", "bob")
    with pytest.raises(StoreError, match="reviewer"):
        store.add_verdict(1, "vulnerability", " ")
    store.add_verdict(1, "security-not-vuln", "bob", "first look")
    store.add_verdict(1, "vulnerability", "carol", "reproduced")
    latest = store.verdicts()
    assert len(latest) == 1 and latest[0]["verdict"] == "vulnerability" and latest[0]["reviewer"] == "carol"
    assert len(store.verdicts(latest_only=False)) == 2 and latest[0]["created_at"].tzinfo is not None


def test_triage_command_lists_the_queue_and_stores_a_verdict(world, cascade, cascade_dir):
    store, mapper, advisories, tmp = world
    scan([tmp / "requirements.txt"], store, cascade, mapper, advisories, progress=False)
    db = f"sqlite:///{tmp / 'v.db'}"
    runner = CliRunner()
    listed = runner.invoke(app, ["vuln", "triage", "--db", db])
    assert listed.exit_code == 0, listed.output
    flagged = store.scored(cascade.version, flagged_only=True)
    assert flagged and str(flagged[0]["id"]) in listed.output
    judged = runner.invoke(app, ["vuln", "triage", "--db", db, "--record", str(flagged[0]["id"]), "--verdict",
                                 "not-security", "--comment", "a test", "--reviewer", "dana"])
    assert judged.exit_code == 0, judged.output
    assert store.verdicts()[0]["reviewer"] == "dana"
    bad = runner.invoke(app, ["vuln", "triage", "--db", db, "--record", "1", "--verdict", "perhaps",
                              "--reviewer", "dana"])
    assert bad.exit_code != 0 and "unknown verdict" in bad.output


def test_retrain_learns_from_verdicts_and_reports_before_after(world, cascade, cascade_dir, security_data, tmp_path):
    from transferlab.vuln.retrain import STAGE2, retrain, verdict_examples

    store, mapper, advisories, tmp = world
    scan([tmp / "requirements.txt"], store, cascade, mapper, advisories, progress=False)
    for rid, verdict in ((1, "vulnerability"), (2, "not-security"), (3, "security-not-vuln"), (4, "vulnerability")):
        store.add_verdict(rid, verdict, "erin")
    extra, held = verdict_examples(store.verdicts(), holdout=0.0, weight=2)
    assert len(extra[1]) == 8 and len(extra[2]) == 6  # not-security says nothing about stage 2
    assert set(extra[2].labels) == set(STAGE2.values()) and len(held[1]) == 0
    assert verdict_examples(store.verdicts(), 0.5)[1][1].origins == verdict_examples(store.verdicts(), 0.5)[1][1].origins
    report = retrain(cascade, store, tmp_path / "new", data=security_data, holdout=0.5, log=lambda m: None)
    assert report["before_version"] == cascade.version and report["after_version"] != cascade.version
    sets = {(r["stage"], r["set"]) for r in report["rows"]}
    assert {(1, "original test"), (2, "original test")} <= sets
    assert all(r["after"] is not None for r in report["rows"])
    assert Cascade.load(tmp_path / "new").version == report["after_version"]
    assert json.loads((tmp_path / "new" / "retrain.json").read_text())["counts"]["verdicts"] == 4


# ------------------------------------------------------------------------------------------------ the demo
def test_demo_runs_offline_end_to_end(cascade_dir, tmp_path):
    if not (SHARED_DATA / "fixtures").is_dir():
        pytest.skip("../shared/data/fixtures is not beside the repository")
    runner = CliRunner()
    result = runner.invoke(app, ["vuln", "demo", "--out", str(tmp_path / "demo"), "--cascade", str(cascade_dir),
                                 "--fixtures", str(SHARED_DATA / "fixtures")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "demo" / "report.json").read_text())
    deps = {d["name"]: d for d in data["dependencies"]}
    assert set(deps) == {"openpmd-api", "qemu-qmp", "requests"}  # PEP 503 names
    assert deps["openpmd-api"]["records"] == 2  # the issue and its comment in the GH Archive hour
    assert deps["qemu-qmp"]["records"] == 1  # the oss-security post naming QEMU, not the kernel one
    assert [k["id"] for k in deps["requests"]["known_advisories"]] == ["GHSA-x84v-xcm2-53pg"]
    for name in ("report.md", "report.html", "report.csv", "report.sarif"):
        assert (tmp_path / "demo" / name).stat().st_size > 0


def test_benchmark_measures_both_stages_and_throughput(cascade_dir, security_data, tmp_path):
    from transferlab.vuln.benchmark import run

    result = run(cascade_dir, tmp_path / "bench", data=security_data, max_throughput=20, log=lambda m: None)
    recorded = json.loads((cascade_dir / "cascade.json").read_text())
    assert result["stage1"]["pr_auc"] == pytest.approx(recorded["stage1"]["test"]["pr_auc"])
    assert "warnings" not in result
    t = result["throughput"]
    assert t["events"] == 20 and t["records_ingested"] == 20 and t["records_scored"] == 20
    assert t["ingest_records_per_s"] > 0 and t["score_records_per_s"] > 0
    c = result["cascade_on_matomo_test"]
    assert c["flagged"] <= c["passed_stage1"] <= c["items"]
    s1, s2 = ({x["name"]: x for x in result["slices"][k]} for k in ("stage1", "stage2"))
    assert s1["github"]["n"] == s1["all"]["n"] and s1["mail"]["n"] == 0  # stage 1's test items are Matomo issues
    assert sum(s2[k]["n"] for k in ("github", "farsec", "advisories", "mail")) == s2["all"]["n"]
    assert s2["all"]["positives"] == result["stage2"]["positives"]
    md = (tmp_path / "bench" / "results.md").read_text()
    assert "Stage 2 per source" in md
    # this small cascade's thresholds came from out-of-fold scores of models refitted on training + validation
    assert result["decisions"]["stage1"].startswith("5-fold") and "refitted on training + validation" in md
    assert "recall:0.8 on validation" not in md
    assert not (tmp_path / "bench" / "throughput").exists()  # no scratch left (its store's lock file was, once)
    assert "Stage 1" in md and "records/s" in md and (tmp_path / "bench" / "pr_curves.png").stat().st_size > 0


def test_scan_command_writes_reports_and_can_fail_a_ci_job(world, cascade_dir, tmp_path):
    store, mapper, advisories, tmp = world
    db = f"sqlite:///{tmp / 'v.db'}"
    args = ["vuln", "scan", "--manifest", str(tmp / "requirements.txt"), "--db", db, "--cascade", str(cascade_dir),
            "--mapping", str(tmp / "map.toml"), "--osv", str(tmp / "osv"), "--offline"]
    runner = CliRunner()
    bad = runner.invoke(app, args + ["--report", str(tmp_path / "r.txt")])
    assert bad.exit_code != 0 and "report format" in bad.output and not (tmp_path / "r.txt").exists()
    ok = runner.invoke(app, args + ["--report", str(tmp_path / "r.md"), "--report", str(tmp_path / "r.sarif")])
    assert ok.exit_code == 0, ok.output
    assert "acme-parser" in (tmp_path / "r.md").read_text() and (tmp_path / "r.sarif").exists()
    strict = runner.invoke(app, args + ["--fail-on-warning"])
    assert strict.exit_code == 4  # the heap overflow is an early warning (3 is a tampered cascade)
    since = runner.invoke(app, args + ["--since", "not a date"])
    assert since.exit_code != 0 and "not a date" in since.output


def test_interactive_triage_goes_through_the_queue(world, cascade):
    store, mapper, advisories, tmp = world
    scan([tmp / "requirements.txt"], store, cascade, mapper, advisories, progress=False)
    queue = sorted(store.scored(cascade.version, flagged_only=True), key=lambda r: -(r["stage1"] * r["stage2"]))
    assert len(queue) >= 2
    result = CliRunner().invoke(app, ["vuln", "triage", "--db", f"sqlite:///{tmp / 'v.db'}", "-i",
                                      "--reviewer", "fay"], input="v\nreproduced locally\nk\nq\n")
    assert result.exit_code == 0, result.output
    judged = store.verdicts()
    assert [(v["record_id"], v["verdict"], v["comment"]) for v in judged] == [
        (queue[0]["id"], "vulnerability", "reproduced locally")]  # the skipped one stays in the queue


def test_scan_calls_a_record_that_repeats_an_advisory_probably_disclosed(world, cascade, tmp_path):
    from transferlab.vuln.disclosure import DisclosureCheck

    store, mapper, _, tmp = world
    (tmp / "osv" / "B.json").write_text(json.dumps({  # no alias, no reference: only its text can link it
        "id": "GHSA-heap-heap-heap", "summary": "Heap buffer overflow in acme-parser",
        "details": "A heap buffer overflow when parsing a crafted file allows remote code execution.",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "acme-parser"}}]}))
    advisories = AdvisoryIndex.from_directory(tmp / "osv")
    result = scan([tmp / "requirements.txt"], store, cascade, mapper, advisories, progress=False,
                  disclosure=DisclosureCheck.default())
    dep = next(d for d in result.dependencies if d.dependency.name == "acme-parser")
    heap = next(i for i in dep.items if i.record["title"].startswith("Heap"))
    sql = next(i for i in dep.items if i.record["title"].startswith("SQL"))
    assert heap.probable and heap.probable[0] == "GHSA-heap-heap-heap" and heap.advisory is None
    assert heap.status.startswith("probably already disclosed (GHSA-heap-heap-heap, score")
    assert heap not in dep.early_warnings and sql.probable is None  # an id match is not compared again
    assert "probably" in result.summary() and result.disclosure_check.startswith("minilm cosine")
    rows = {r["title"]: r for r in R.rows(result)}
    assert rows[heap.record["title"]]["disclosure"] == "probably already disclosed"
    assert rows[heap.record["title"]]["advisory_id"] == "GHSA-heap-heap-heap"
    md = R.write(result, tmp_path / "r.md").read_text()
    assert "probably already disclosed (GHSA-heap-heap-heap" in md and "Probably disclosed" in md
    sarif = json.loads(R.write(result, tmp_path / "r.sarif").read_text())
    heap_result = next(r for r in sarif["runs"][0]["results"] if "Heap" in r["message"]["text"])
    assert heap_result["ruleId"] == "TL003" and heap_result["level"] == "warning"  # a text match still needs a human
    probable = [i for d in result.dependencies for i in d.items if i.probable and not i.advisory]
    assert heap in probable and result.needs_attention == result.early_warnings + len(probable)
    # an advisory fixed before the installed version (1.2.0) cannot be what the record reports
    (tmp / "osv" / "B.json").write_text(json.dumps({
        "id": "GHSA-heap-heap-heap", "summary": "Heap buffer overflow in acme-parser",
        "details": "A heap buffer overflow when parsing a crafted file allows remote code execution.",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "acme-parser"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.0.0"}]}]}]}))
    fixed = scan([tmp / "requirements.txt"], store, cascade, mapper, AdvisoryIndex.from_directory(tmp / "osv"),
                 progress=False, disclosure=DisclosureCheck.default())
    dep = next(d for d in fixed.dependencies if d.dependency.name == "acme-parser")
    assert next(i for i in dep.items if i.record["title"].startswith("Heap")).status == "early warning"


@pytest.mark.slow
def test_a_shared_two_head_cascade_scores_saves_and_loads_like_two_models(security_data, tmp_path, monkeypatch):
    from transferlab.vuln import cascade as C

    monkeypatch.setitem(C.RECIPES, "tiny-shared", {"encoder": "minilm", "strategy": "finetune", "max_length": 32,
                                                   "epochs": 1, "batch_size": 16, "class_weight": "auto"})
    trained = train_cascade(tmp_path / "c", data=security_data, stage1_recipe="tiny-shared", shared=True,
                            log=lambda m: None)
    assert trained.stage1.module_.backbone is trained.stage2.module_.backbone  # one encoder, two heads
    assert trained.info["shared_encoder"] and trained.info["recipes"] == {"stage1": "tiny-shared",
                                                                          "stage2": "tiny-shared"}
    for n, model in ((1, trained.stage1), (2, trained.stage2)):
        report = trained.info[f"stage{n}"]
        assert model.decision_["threshold"]["rule"] == "recall:0.8" and "calibration" in model.decision_
        assert report["validation"]["recall"] >= 0.8 - 1e-9  # its own threshold, on its own validation part
        assert 0 <= report["test"]["pr_auc"] <= 1 and report["shared"].startswith("one encoder")
    texts = [VULN_TEXT, "The logo colour is slightly off on the settings page.", ""]
    loaded = Cascade.load(tmp_path / "c")
    want, got = trained.score(texts), loaded.score(texts)
    np.testing.assert_allclose(got["stage1"], want["stage1"], atol=1e-5)
    np.testing.assert_array_equal(got["flagged"], want["flagged"])
    with pytest.raises(ConfigError, match="fine-tunes one transformer"):
        train_cascade(tmp_path / "d", data=security_data, stage1_recipe="glove-dan", shared=True, log=lambda m: None)


@pytest.mark.slow
def test_stage1_can_start_from_an_intermediate_model(security_data, tmp_path):
    from transferlab.models.classifier import TextClassifier

    farsec = L.read_farsec(security_data)
    first = TextClassifier("glove-50d", "dan", epochs=2, max_length=32, seed=0, validation_fraction=0.0)
    first.fit(list(farsec["text"]), [L.SECURITY if s else L.NOT_SECURITY for s in farsec["security"]],
              out_dir=tmp_path / "farsec")
    runner = CliRunner()
    res = runner.invoke(app, ["vuln", "train", "--data-dir", str(security_data), "--stage1", "glove-dan",
                              "--stage2", "glove-dan", "--no-farsec", "--stage1-init-from", str(tmp_path / "farsec"),
                              "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "c" / "cascade.json").read_text())
    assert info["stage1"]["init_from"] == str(tmp_path / "farsec") and "init_from" not in info["stage2"]
    stage1 = json.loads((tmp_path / "c" / "stage1" / "config.json").read_text())
    assert stage1["fit"]["init_from"]["words_carried"] > 10  # the FARSEC model's word rows carried over
    res = runner.invoke(app, ["vuln", "train", "--data-dir", str(security_data), "--stage1", "minilm-frozen",
                              "--stage1-init-from", str(tmp_path / "farsec"), "--out", str(tmp_path / "d")])
    assert res.exit_code != 0 and "init" in res.output.lower()


@pytest.mark.slow
def test_stage1_can_use_another_encoder_in_its_recipes_place(security_data, tmp_path):
    from transferlab.encoders.zoo import resolve

    folder = resolve("minilm").location  # a local transformer folder, as `adapt mlm` writes one
    res = CliRunner().invoke(app, ["vuln", "train", "--data-dir", str(security_data), "--stage1", "minilm-frozen",
                                   "--stage2", "glove-dan", "--stage1-encoder", folder, "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "c" / "cascade.json").read_text())
    assert info["stage1"]["encoder"] == folder
    assert json.loads((tmp_path / "c" / "stage1" / "config.json").read_text())["model"]["encoder"] == folder


def test_vuln_export_writes_checked_graphs_for_both_stages_and_scores_like_eager(cascade_dir, security_data,
                                                                                tmp_path):
    pytest.importorskip("onnxruntime")
    from transferlab.runtime.onnx import OnnxNet

    out = tmp_path / "exported"
    res = CliRunner().invoke(app, ["vuln", "export", "--cascade", str(cascade_dir), "--out", str(out),
                                   "--data-dir", str(security_data)])
    assert res.exit_code == 0, res.output
    for n in (1, 2):
        record = json.loads((out / f"stage{n}" / "onnx" / "export.json").read_text())
        assert record["default"] == "fp32" and record["check"]["fp32"]["ok"]
        assert "validation" in record["check"]["data"]
    assert not (cascade_dir / "stage1" / "onnx").exists()  # the source cascade was not written to
    onnx, eager = Cascade.load(out), Cascade.load(cascade_dir)
    assert isinstance(onnx.stage1.runtime_, OnnxNet) and isinstance(onnx.stage2.runtime_, OnnxNet)
    assert onnx.version == eager.version  # the same models: graphs are a runtime, not new weights
    texts = ["heap overflow in the parser lets a crafted file run code", "the docs have a typo",
             "xss in the login page", "add a dark theme"]
    np.testing.assert_allclose(onnx.stage1.predict_proba(texts), eager.stage1.predict_proba(texts), atol=1e-5)
    np.testing.assert_allclose(onnx.stage2.predict_proba(texts), eager.stage2.predict_proba(texts), atol=1e-5)
    res = CliRunner().invoke(app, ["vuln", "export", "--cascade", str(cascade_dir), "--out", str(out),
                                   "--data-dir", str(security_data)])
    assert res.exit_code == 2 and "not empty" in res.output


def test_scan_speed_scores_the_same_hour_with_each_runtime_and_compares_flags(cascade_dir, security_data, tmp_path):
    from transferlab.vuln.benchmark import scan_speed

    r = scan_speed(cascade_dir, tmp_path / "speed", data=security_data, runtimes=["torch", "torch"], max_items=20,
                   log=lambda m: None)
    assert r["events"] == 20 and [x["records_scored"] for x in r["runs"]] == [20, 20]
    for x in r["runs"]:
        a = x["agreement"]
        assert a["records_compared"] == 20 and a["same_flags_within_tolerance"] and x["ran"] == "stage 1 torch, stage 2 torch"
        assert a["largest_stage1_difference"] == 0.0 and x["end_to_end_records_per_s"] > 0
    assert "records/s end to end" in (tmp_path / "speed" / "results.md").read_text()
    assert not list((tmp_path / "speed" / "throughput").glob("*.db"))  # the stores are removed
    with pytest.raises(ConfigError, match="fast"):
        scan_speed(cascade_dir, tmp_path / "bad", data=security_data, runtimes=["torch", "fast"])


def test_scan_speed_reports_a_runtime_whose_flags_differ(cascade_dir, security_data, tmp_path, monkeypatch):
    from transferlab.vuln import benchmark

    def fake(cascade, hour, work, runtime):
        flag = runtime == "bf16"  # bf16 flags the one record the reference does not
        rows = {("github", "1"): {"flagged": flag, "stage1": 0.9 if flag else 0.2, "stage2": 0.5}}
        return {"runtime": runtime, "ran": runtime, "records_scored": 1, "end_to_end_records_per_s": 10.0,
                "ingest_seconds": 0.1, "load_seconds": 0.1, "score_seconds": 0.1, "score_records_per_s": 10.0,
                "_rows": rows}

    monkeypatch.setattr(benchmark, "_scan_once", fake)
    r = benchmark.scan_speed(cascade_dir, tmp_path / "speed", data=security_data, runtimes=["torch", "bf16"],
                             max_items=5, log=lambda m: None)
    a = r["runs"][1]["agreement"]
    assert not a["same_flags_within_tolerance"] and a["flagged_only_here"] == 1
    assert a["largest_stage1_difference"] == pytest.approx(0.7)
