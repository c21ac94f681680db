"""`predict --engine ray`: many JSONL files scored by a pool of Ray workers give what the one-process predict gives,
file by file; a bad file is counted and named, the others kept; a rerun skips files already scored."""

import gzip
import json

import pytest

ray = pytest.importorskip("ray")

from typer.testing import CliRunner  # noqa: E402

from transferlab.cli import app  # noqa: E402

from conftest import sentiment_data, write_csv  # noqa: E402


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_predict_matches_local_predict_per_file_and_resumes(tmp_path, ray_local):
    texts, labels = sentiment_data(60)
    data = write_csv(tmp_path / "data.csv", list(zip(texts, labels)))
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--data", str(data), "--encoder", "glove-50d", "--head", "dan", "--epochs", "2",
                              "--max-length", "32", "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    inbox = tmp_path / "in"
    inbox.mkdir()
    probes = ["a wonderful film", "dull and awful", "i loved it", "a horrible waste", "<script>alert(1)</script>"]
    for i in range(3):
        lines = [json.dumps({"id": f"{i}-{j}", "text": t}) for j, t in enumerate(probes)]
        (inbox / f"part{i}.jsonl").write_text("\n".join(lines) + "\n")
    with gzip.open(inbox / "part3.jsonl.gz", "wt") as f:
        f.write(json.dumps({"id": "3-0", "text": "great acting"}) + "\n")
    (inbox / "bad.jsonl").write_text('{"id": "b-0", "text": "fine"}\n{"id": "b-1", "body": "no text field"}\n')

    res = runner.invoke(app, ["predict", str(tmp_path / "m"), "--engine", "ray", "--input", str(inbox), "--out",
                              str(tmp_path / "out"), "--workers", "2"])
    assert res.exit_code == 1, res.output  # one file failed: counted, named, and the status says so
    assert "bad.jsonl:line 2" in res.output and "1 failed" in res.output
    outputs = sorted((tmp_path / "out").glob("*.predictions.jsonl"))
    assert len(outputs) == 4 and not any(p.name.startswith("bad") for p in outputs)  # nothing half-written
    assert not list((tmp_path / "out").glob("*.tmp"))
    ray_rows = {}
    for p in outputs:
        for line in p.read_text().splitlines():
            row = json.loads(line)
            ray_rows[row["id"]] = row
    assert len(ray_rows) == 16
    local = runner.invoke(app, ["predict", str(tmp_path / "m"), "--input", str(inbox / "part1.jsonl")])
    for line in local.stdout.splitlines():
        row = json.loads(line)
        assert ray_rows[row["id"]] == row  # the same record back: label, scores, other fields
    # a rerun scores only what is missing (the bad file, still bad); --restart scores everything again
    before = {p: p.stat().st_mtime_ns for p in outputs}
    res = runner.invoke(app, ["predict", str(tmp_path / "m"), "--engine", "ray", "--input", str(inbox / "*.jsonl"),
                              "--out", str(tmp_path / "out")])
    assert "3 of 4 file(s) already scored" in " ".join(res.output.split())
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    (inbox / "bad.jsonl").unlink()
    res = runner.invoke(app, ["predict", str(tmp_path / "m"), "--engine", "ray", "--input", str(inbox), "--out",
                              str(tmp_path / "out"), "--restart"])
    assert res.exit_code == 0, res.output
    assert any(p.stat().st_mtime_ns != t for p, t in before.items())


def test_ray_engine_refuses_what_it_cannot_do(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["predict", str(tmp_path), "--engine", "ray", "--input", str(tmp_path)])
    assert res.exit_code == 2 and "--out" in res.output
    res = runner.invoke(app, ["predict", str(tmp_path), "--engine", "spark"])
    assert res.exit_code == 2 and "unknown engine" in res.output
    from transferlab.scale.ray_predict import input_files, output_for

    with pytest.raises(Exception, match="no JSONL files"):
        input_files(tmp_path)
    a, b = tmp_path / "x" / "h.jsonl", tmp_path / "y" / "h.jsonl"
    assert output_for(a, tmp_path) != output_for(b, tmp_path)  # same name, other folders: other outputs
    res = runner.invoke(app, ["vuln", "backfill", "--path", str(tmp_path / "nowhere"), "--db",
                              f"sqlite:///{tmp_path / 'x.db'}"])
    assert res.exit_code == 2 and "no such file or folder" in res.output
    res = runner.invoke(app, ["vuln", "backfill", "--path", str(tmp_path), "--db", f"sqlite:///{tmp_path / 'x.db'}"])
    assert res.exit_code == 2 and "no GH Archive hour files" in res.output


def _hour(path, repo_items, start=0):
    """A GH Archive-format hour: one IssuesEvent per (repo, title, body)."""
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for n, (repo, title, body) in enumerate(repo_items, start):
            when = "2024-03-01T10:00:00Z"
            issue = {"number": n, "title": title, "body": body, "state": "open", "user": {"login": "someone"},
                     "html_url": f"https://github.com/{repo}/issues/{n}", "labels": [], "created_at": when,
                     "updated_at": when}
            fh.write(json.dumps({"id": str(n), "type": "IssuesEvent", "created_at": when, "repo": {"name": repo},
                                 "payload": {"action": "opened", "issue": issue}}) + "\n")


@pytest.mark.slow
def test_backfill_on_ray_stores_and_scores_what_the_local_engine_does_and_resumes(tmp_path, ray_local):
    from vuln_data import write_security_data

    from transferlab.scale.ray_backfill import backfill
    from transferlab.vuln.cascade import train_cascade
    from transferlab.vuln.store import Store

    cascade = tmp_path / "cascade"
    train_cascade(cascade, data=write_security_data(tmp_path / "sec"), stage1_recipe="glove-dan",
                  stage2_recipe="glove-dan", log=lambda m: None)
    hours = tmp_path / "hours"
    hours.mkdir()
    texts = [("heap overflow in parser", "a crafted file overflows the heap buffer and runs code"),
             ("add dark theme", "please add a dark theme"), ("xss in login", "script injection in the login form"),
             ("typo in docs", "the readme has a typo")]
    for h in range(3):
        _hour(hours / f"2024-03-01-{h}.json.gz",
              [("acme/lib" if i % 2 == 0 else "other/app", f"{t} {h}", b) for i, (t, b) in enumerate(texts)],
              start=10 * h)
    (hours / "2024-03-01-9.json.gz").write_bytes(b"not gzip at all")
    runs = {}
    for engine in ("local", "ray"):
        db = f"sqlite:///{tmp_path / engine}.db"
        result = backfill(hours, db, cascade, repos=["acme/lib"], engine=engine, workers=2, announce=lambda m: None)
        # the broken hour is a counted skip of its file (kept in the store's skips table, retried by a rerun);
        # the three others are stored
        assert result["failed"] == 0 and result["skipped"] == 1
        assert [f["path"] for f in result["files"] if f["skipped"]] == [str(hours / "2024-03-01-9.json.gz")]
        assert result["read"] == 6 and result["scored"] == 6  # acme/lib only: 2 items per hour
        store = Store.open(db)
        runs[engine] = sorted((r["title"], round(r["stage1"], 5), r["flagged"])
                              for r in store.scored(result["cascade_version"]))
    assert runs["ray"] == runs["local"] and len(runs["ray"]) == 6
    # a rerun reads no hour again (each has its checkpoint) and scores nothing twice
    again = backfill(hours, f"sqlite:///{tmp_path / 'ray'}.db", cascade, repos=["acme/lib"], engine="ray",
                     workers=2, announce=lambda m: None)
    assert again["new"] == 0 and again["scored"] == 0


def test_a_worker_share_of_the_cores_reaches_onnx_runtime(monkeypatch):
    from transferlab.runtime.onnx import cpu_threads

    monkeypatch.setenv("TRANSFERLAB_THREADS", "1")
    assert cpu_threads() == 1
    monkeypatch.setenv("TRANSFERLAB_THREADS", "zero")
    assert cpu_threads() >= 1
