"""The benchmark: recipe loading and checking, the results writer and its schema, and `transferlab bench` end to
end on cheap rows (the shipped IMDB suite on its quick setting, and a user's recipe folder on their own file)."""

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from transferlab.bench.recipes import builtin_suites, load_suite
from transferlab.bench.report import markdown, target_lines, validate, write_outputs
from transferlab.bench.runner import RunOptions
from transferlab.cli import app
from transferlab.errors import ConfigError

from conftest import sentiment_data, write_csv

runner = CliRunner()


# ---------------------------------------------------------------------------------------------- recipes
def test_shipped_suite_has_every_row_of_the_issue():
    suite = load_suite("imdb-seed")
    names = [r.name for r in suite.rows]
    assert len(names) == len(set(names)) == 14
    by_family = {}
    for r in suite.rows:
        by_family.setdefault(r.family, []).append(r)
    # rows 1, 2 and 4 twice (GloVe and in-domain), plus the frozen rows of row 3
    encoders = sorted(r.model["encoder"] for r in by_family["word-vectors"])
    assert encoders == ["fasttext-indomain"] * 3 + ["glove-50d"] * 3
    assert sorted(r.model["head"] for r in by_family["word-vectors"]) == ["bilstm", "bilstm", "cnn", "cnn", "dan", "dan"]
    assert sorted(r.model["encoder"] for r in by_family["frozen-features"]) == ["minilm", "mpnet"]
    assert sorted(r.model["encoder"] for r in by_family["transformer"]) == ["minilm", "mpnet"]
    assert sorted(r.kind for r in by_family["peer"]) == ["hf-trainer", "hf-trainer", "setfit", "tfidf"]
    refs = {r.name: r.seed_reference["accuracy"] for r in suite.rows if r.seed_reference}
    assert refs["mpnet-finetune"] == 91.83 and refs["minilm-finetune"] == 90.71 and refs["glove-cnn"] == 86.40
    assert suite.data["split"] == "seed" and suite.targets["rows"]["mpnet-finetune"] == 94.5


def test_settings_precedence_row_config_then_quick_then_command_line():
    suite = load_suite("imdb-seed")
    cnn = suite.select(["glove-cnn"])[0]
    assert cnn.settings(None) == {"max_length": 400, "epochs": 10}
    quick = cnn.settings(suite.quick)
    assert quick["max_length"] == suite.quick["max_length"] and quick["epochs"] == cnn.quick["epochs"]
    assert quick["max_train"] == suite.quick["max_train"]
    assert cnn.settings(suite.quick, {"epochs": 1, "max_test": None})["epochs"] == 1
    assert cnn.settings(None, {"max_test": 50}) == {"max_length": 400, "epochs": 10, "max_test": 50}
    frozen = suite.select(["minilm-frozen"])[0]
    assert frozen.settings(None, {"epochs": 1, "max_train": 9}) == {"max_train": 9}  # its head keeps its epochs


def test_unknown_row_is_named_with_the_choices():
    with pytest.raises(ConfigError, match="nope") as info:
        load_suite("imdb-seed").select(["glove-cnn", "nope"])
    assert "tfidf-logreg" in info.value.hint


def _copy_suite(tmp_path) -> Path:
    folder = tmp_path / "suite"
    shutil.copytree(builtin_suites()["imdb-seed"], folder)
    return folder


@pytest.mark.parametrize("content, fragment", [
    ('name = "x"\nkind = "transferlab"\n[model]\nencoder = "glove-50d"\nheed = "cnn"\n', "heed"),
    ('name = "x"\nkind = "magic"\n', "magic"),
    ('name = "x"\nkind = "transferlab"\n[model]\nencoder = "glove-50d"\nhead = "logreg"\n', "logreg"),
    ('name = "x"\nkind = "tfidf"\n[model]\nencoder = "minilm"\n', "encoder"),
    ('name = "x"\nkind = "tfidf"\nseed_reference = { accuracy = "high" }\n', "seed_reference"),
    ('name = "x"\nkind = "tfidf"\n[quick]\nepochs = 0\n', "positive integer"),
    ('name = "x"\nkind = "tfidf"\ncolour = "red"\n', "colour"),
    ('name = "x"\nkind = "tfidf\n', "not valid TOML"),
    ('kind = "tfidf"\n', "'name'"),
    ('name = "tfidf-logreg"\nkind = "tfidf"\n', "used twice"),
])
def test_bad_recipe_names_the_file_and_the_problem(tmp_path, content, fragment):
    folder = _copy_suite(tmp_path)
    (folder / "99-bad.toml").write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_suite(folder)
    assert fragment in str(info.value)
    assert "99-bad.toml" in str(info.value)


def test_folder_without_suite_file_and_unknown_name(tmp_path):
    with pytest.raises(ConfigError, match="no suite.toml"):
        load_suite(tmp_path)
    with pytest.raises(ConfigError, match="imdb-seed"):
        load_suite("no-such-suite")


def test_run_options_setting_label():
    assert RunOptions().setting == "full"
    assert RunOptions(quick=True, overrides={"max_train": 5}).setting == "quick"
    assert RunOptions(overrides={"max_train": None, "max_test": 100}).setting == "reduced"


# ---------------------------------------------------------------------------------------------- results writer
def _row(name, family, acc, setting="full", ref=None, **extra):
    return {"name": name, "title": name, "family": family, "kind": "x", "encoder": "e", "head": "h",
            "strategy": "s", "status": "ok", "error": None, "test_accuracy": acc, "macro_f1": acc - 0.01,
            "roc_auc": 0.9, "train_seconds": 12.5, "train_samples_per_second": 400.0,
            "inference_docs_per_second": 900.0, "peak_memory_mb": 812.4, "params_total": 2_500_000,
            "params_trainable": 250_000, "seed_reference": ref, "setting": setting, "n_train": 5000,
            "n_test": 40000, "device": "cpu", **extra}


def _results(rows):
    return {"benchmark": "imdb-seed", "description": "d", "split": "seed", "hardware": {"cpu_count": 2},
            "versions": {"torch": "2"}, "data": {"path": "p", "n_train": 5000, "n_validation": 5000, "n_test": 40000},
            "targets": {"best_at_least": 95.0, "rows": {"bert": 94.5}}, "rows": rows}


def test_results_writer_files_schema_and_verdicts(tmp_path):
    rows = [
        _row("cnn", "word-vectors", 0.87, ref={"model": "fastText + CNN", "accuracy": 0.864}),
        _row("bilstm", "word-vectors", 0.85, ref={"model": "fastText + BiLSTM", "accuracy": 0.8643}),
        _row("bert", "transformer", 0.93, setting="reduced", ref={"model": "BERT-base", "accuracy": 0.9183}),
        {"name": "mpnet-frozen", "title": "t", "family": "frozen-features", "kind": "transferlab", "encoder": "mpnet",
         "head": "logreg", "strategy": "frozen", "status": "failed", "error": "mpnet is not installed | pip it",
         "test_accuracy": None, "macro_f1": None, "train_seconds": None, "train_samples_per_second": None,
         "inference_docs_per_second": None, "peak_memory_mb": None, "params_total": None, "params_trainable": None,
         "seed_reference": {"model": "USE", "accuracy": 0.8369}, "setting": "full"},
        _row("tfidf", "peer", 0.89),
    ]
    results = _results(rows)
    assert validate(results) == []
    paths = write_outputs(results, tmp_path)
    assert {p.name for p in paths.values()} >= {"results.json", "results.csv", "results.md", "report.html",
                                                "accuracy_vs_cost.png"}
    assert json.loads((tmp_path / "results.json").read_text()) == results
    with open(tmp_path / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["name"] for r in table] == ["cnn", "bilstm", "bert", "mpnet-frozen", "tfidf"]
    assert float(table[0]["vs_seed_points"]) == pytest.approx(0.6) and table[0]["seed_model"] == "fastText + CNN"
    assert table[3]["status"] == "failed" and "not installed" in table[3]["error"]
    lines = "\n".join(target_lines(results))
    assert "`cnn` ≥ seed fastText + CNN 86.40%: **met**" in lines
    assert "`bilstm` ≥ seed fastText + BiLSTM 86.43%: **not met**" in lines
    assert "`bert` ≥ seed BERT-base 91.83%: **not judged**, reduced setting" in lines
    assert "`mpnet-frozen` ≥ seed USE 83.69%: **not run** (mpnet is not installed" in lines
    assert "`bert` ≥ 94.50%: **not judged**" in lines
    assert ("best single model ≥ 95.00%: **not judged** yet (best full row so far `cnn` 87.00%; not run in full: "
            "bert, mpnet-frozen)") in lines  # peers do not count; unjudged while rows of ours are missing
    done = _results([_row("cnn", "word-vectors", 0.87), _row("tfidf", "peer", 0.96)])
    assert "- best single model ≥ 95.00%: **not met** (best full row `cnn` 87.00%)" in target_lines(done)
    done["rows"].append(_row("bert", "transformer", 0.951))
    assert "- best single model ≥ 95.00%: **met** (best full row `bert` 95.10%)" in target_lines(done)
    md = markdown(results)
    assert "**failed**: mpnet is not installed / pip it" in md  # a pipe would break the table
    assert md.count("\n| ") == 1 + len(rows)
    html = (tmp_path / "report.html").read_text()
    assert "accuracy_vs_cost.png" in html and "not installed" in html


def test_validate_catches_schema_breaks():
    results = _results([_row("cnn", "word-vectors", 87.0)])  # a percentage where a fraction belongs
    assert any("not a fraction" in p for p in validate(results))
    broken = _results([{k: v for k, v in _row("cnn", "word-vectors", 0.8).items() if k != "params_total"}])
    del broken["versions"]
    problems = validate(broken)
    assert "missing key 'versions'" in problems and any("params_total" in p for p in problems)
    failed = _results([{**_row("x", "peer", 0.5), "status": "failed", "error": ""}])
    assert any("without a reason" in p for p in validate(failed))


# ---------------------------------------------------------------------------------------------- end to end
def _invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.mark.slow
def test_bench_imdb_seed_quick_two_cheap_rows(imdb_path, tmp_path):
    out = tmp_path / "bench"
    result = _invoke("bench", "imdb-seed", "--quick", "--rows", "tfidf-logreg,glove-cnn", "--data", imdb_path,
                     "--out", out)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert validate(results) == []
    assert results["benchmark"] == "imdb-seed" and results["split"] == "seed"
    assert results["data"]["n_test"] == 40000 and results["hardware"]["cpu_count"]
    suite = load_suite("imdb-seed")
    # every suite row is listed, in suite order; the ones not run say how to run them
    assert [r["name"] for r in results["rows"]] == [r.name for r in suite.rows]
    rows = {r["name"]: r for r in results["rows"] if r["status"] == "ok"}
    assert sorted(rows) == ["glove-cnn", "tfidf-logreg"]
    waiting = next(r for r in results["rows"] if r["name"] == "mpnet-finetune")
    assert waiting["status"] == "not run" and "bench imdb-seed --rows mpnet-finetune" in waiting["error"]
    for r in rows.values():
        assert r["status"] == "ok" and r["setting"] == "quick"
        assert (r["n_train"], r["n_test"]) == (suite.quick["max_train"], suite.quick["max_test"])
        assert r["train_seconds"] > 0 and r["inference_docs_per_second"] > 0 and r["peak_memory_mb"] > 50
        assert 0 < r["params_trainable"] <= r["params_total"]
    assert rows["tfidf-logreg"]["family"] == "peer" and rows["tfidf-logreg"]["test_accuracy"] > 0.6
    assert rows["glove-cnn"]["family"] == "word-vectors"
    assert rows["glove-cnn"]["seed_reference"] == {"model": "fastText + CNN", "accuracy": 0.864}
    assert rows["glove-cnn"]["epochs"] <= 10 and rows["glove-cnn"]["max_length"] == suite.quick["max_length"]
    for name in ("curves.png", "confusion.png", "metrics.jsonl", "report.json"):
        assert (out / "rows" / "glove-cnn" / name).stat().st_size > 0
    assert not (out / "rows" / "glove-cnn" / "model.safetensors").exists()  # only with --keep-models
    assert (out / "accuracy_vs_cost.png").stat().st_size > 5000
    md = (out / "results.md").read_text()
    assert "| glove-cnn | word-vectors | quick |" in md and "**not judged**, quick setting" in md
    assert "glove-cnn" in result.stdout and "results in" in result.stderr

    # A second run of one row replaces that row and keeps the other.
    again = _invoke("bench", "imdb-seed", "--rows", "tfidf-logreg", "--max-train", "300", "--max-test", "200",
                    "--data", imdb_path, "--out", out)
    assert again.exit_code == 0, again.output
    rows2 = {r["name"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    assert len(rows2) == len(suite.rows)
    assert rows2["glove-cnn"] == rows["glove-cnn"]
    assert rows2["tfidf-logreg"]["setting"] == "reduced" and rows2["tfidf-logreg"]["n_test"] == 200


@pytest.mark.slow
def test_user_recipe_folder_on_own_data_records_a_failing_row(tmp_path):
    texts, labels = sentiment_data(120)
    data = write_csv(tmp_path / "reviews.csv", zip(texts, labels), header=("body", "verdict"))
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "suite.toml").write_text('name = "mine"\n[data]\npath = "nowhere.csv"\ntext_col = "text"\n'
                                       'label_col = "label"\nsplit = "stratified"\n', encoding="utf-8")
    (folder / "a.toml").write_text('name = "tfidf"\nkind = "tfidf"\n', encoding="utf-8")
    (folder / "b.toml").write_text(f'name = "ghost"\nkind = "transferlab"\nseed_reference = {{ model = "m", '
                                   f'accuracy = 80.0 }}\n[model]\nencoder = "{tmp_path / "no-model"}"\n'
                                   f'strategy = "frozen"\n', encoding="utf-8")
    out = tmp_path / "out"
    result = _invoke("bench", folder, "--data", data, "--text-col", "body", "--label-col", "verdict", "--out", out)
    assert result.exit_code == 1  # a row failed: said, not hidden
    assert "1 row(s) failed" in result.stderr and "ghost" in result.stderr
    results = json.loads((out / "results.json").read_text())
    assert validate(results) == []
    rows = {r["name"]: r for r in results["rows"]}
    assert rows["tfidf"]["status"] == "ok" and rows["tfidf"]["test_accuracy"] >= 0.9
    assert rows["tfidf"]["n_train"] + rows["tfidf"]["n_validation"] + rows["tfidf"]["n_test"] == 120
    assert rows["ghost"]["status"] == "failed" and "no-model" in rows["ghost"]["error"]
    assert "**failed**" in (out / "results.md").read_text()


def test_hf_trainer_log_becomes_one_record_per_epoch():
    from transferlab.bench.peers import _trainer_history

    log = [{"loss": 0.69, "grad_norm": 1.0, "learning_rate": 1e-5, "epoch": 1.0, "step": 10},
           {"eval_loss": 0.5, "eval_accuracy": 0.8, "eval_runtime": 3.2, "eval_samples_per_second": 9.0,
            "epoch": 1.0, "step": 10},
           {"loss": 0.4, "epoch": 2.0, "step": 20}, {"eval_loss": 0.45, "eval_accuracy": 0.85, "epoch": 2.0},
           {"train_runtime": 50.0, "train_loss": 0.55, "epoch": 2.0}]
    history = _trainer_history(log)
    assert history == [{"epoch": 1, "train_loss": 0.69, "val_loss": 0.5, "val_accuracy": 0.8},
                       {"epoch": 2, "train_loss": 0.4, "val_loss": 0.45, "val_accuracy": 0.85}]


def test_merge_adds_and_replaces_rows_by_name(tmp_path):
    base = _results([_row("cnn", "word-vectors", 0.85), _row("bert", "transformer", 0.80, setting="reduced")])
    gpu = _results([_row("bert", "transformer", 0.95), _row("distil", "transformer", 0.93)])
    write_outputs(base, tmp_path / "cpu")
    write_outputs(gpu, tmp_path / "gpu")
    result = _invoke("bench", "imdb-seed", "--out", tmp_path / "cpu", "--merge", tmp_path / "gpu" / "results.json")
    assert result.exit_code == 0, result.output
    merged = json.loads((tmp_path / "cpu" / "results.json").read_text())
    assert [(r["name"], r["test_accuracy"], r["setting"]) for r in merged["rows"]] == [
        ("cnn", 0.85, "full"), ("bert", 0.95, "full"), ("distil", 0.93, "full")]
    assert "| bert | transformer | full | 95.00 |" in (tmp_path / "cpu" / "results.md").read_text()
    other = _results([_row("x", "peer", 0.5)])
    other["split"] = "stratified"
    write_outputs(other, tmp_path / "other")
    bad = _invoke("bench", "imdb-seed", "--out", tmp_path / "cpu", "--merge", tmp_path / "other")
    assert bad.exit_code != 0 and "cannot merge" in bad.stderr


def test_earlier_results_are_kept_only_for_the_same_data_and_setting(tmp_path):
    from transferlab.bench.measure import earlier_results

    now = {"data": "d", "setting": "full", "rows": []}
    assert earlier_results(tmp_path, now, ("data", "setting")) == []  # nothing there yet
    (tmp_path / "results.json").write_text(json.dumps({"data": "d", "setting": "full", "rows": [{"name": "a"}],
                                                       "runs": [{"k": 8}]}))
    assert earlier_results(tmp_path, now, ("data", "setting")) == [{"name": "a"}]
    assert earlier_results(tmp_path, now, ("data",), "runs") == [{"k": 8}]
    assert earlier_results(tmp_path, {**now, "setting": "reduced"}, ("data", "setting")) == []
    (tmp_path / "results.json").write_text("{half a file")
    assert earlier_results(tmp_path, now, ("data", "setting")) == []
    (tmp_path / "results.json").write_text("[1, 2]")  # valid JSON, not a results file
    assert earlier_results(tmp_path, now, ("data", "setting")) == []


def test_hf_trainer_peer_gets_the_recipes_warmup_and_length_grouping(tmp_path):
    """A peer row must train at the settings its recipe names, as our loop does: the warm-up ratio (once silently
    dropped, so the Trainer trained without warm-up) and, with `length_buckets`, the Trainer's own length grouping."""
    from transferlab.bench.peers import trainer_arguments

    plain = trainer_arguments({"lr": 5e-5, "batch_size": 16, "warmup_ratio": 0.1}, {"epochs": 1}, tmp_path,
                              has_validation=False, use_cuda=False)
    assert plain.warmup_steps == 0.1 and plain.learning_rate == 5e-5 and plain.num_train_epochs == 1.0
    assert plain.train_sampling_strategy == "random" and plain.eval_strategy == "no"
    grouped = trainer_arguments({"length_buckets": True}, {}, tmp_path, has_validation=True, use_cuda=False)
    assert grouped.train_sampling_strategy == "group_by_length" and grouped.warmup_steps == 0.0
    assert grouped.eval_strategy == "epoch"


def test_committed_benchmark_recipe_folders_load():
    """Every recipe folder under benchmarks/ must load as a suite (a key a peer does not take is refused at load
    time; the grouped-by-length Trainer rows once were, after an hour's run had been planned on them)."""
    root = Path(__file__).resolve().parents[1] / "benchmarks"
    folders = sorted(p.parent for p in root.glob("*/recipes/suite.toml"))
    assert folders, "no recipe folders under benchmarks/"
    for folder in folders:
        suite = load_suite(str(folder))
        assert suite.rows, folder
    speed = load_suite(str(root / "train-speed" / "recipes"))
    grouped = speed.select(["hf-trainer-mpnet-grouped"])[0]
    assert grouped.kind == "hf-trainer" and grouped.train["length_buckets"] is True


def test_a_row_not_run_says_the_command_that_runs_it(tmp_path, monkeypatch):
    """A folder suite's hint names the folder (it once named only its last part, `bench recipes`, which is not a
    suite anyone can run); a shipped suite's names the suite."""
    from transferlab.bench.runner import not_run_row

    folder = _copy_suite(tmp_path)
    monkeypatch.chdir(tmp_path)
    row = not_run_row(load_suite(str(folder)).select(["glove-cnn"])[0])
    assert row["status"] == "not run" and row["error"] == "to run it: transferlab bench suite --rows glove-cnn"
    monkeypatch.chdir(tmp_path.parent)
    row = not_run_row(load_suite(str(folder)).select(["glove-cnn"])[0])
    assert row["error"] == f"to run it: transferlab bench {tmp_path.name}/suite --rows glove-cnn"
    shipped = not_run_row(load_suite("imdb-seed").select(["glove-cnn"])[0])
    assert shipped["error"] == "to run it: transferlab bench imdb-seed --rows glove-cnn"
