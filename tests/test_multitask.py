"""Multi-task models (models/multitask.py): one shared encoder and a head per task, batches drawn by the chosen
sampling, one saved model that predicts every task as it did before saving."""

import numpy as np
import pytest

from transferlab.data.records import Examples
from transferlab.errors import ConfigError
from transferlab.models.multitask import MultiTaskModel, TaskBatches, TaskData, parse_sampling

from conftest import sentiment_data
from test_tagger import ner_data


class _View:  # what the plan reads of a task's estimator
    class backend_:
        @staticmethod
        def collate(items):
            import torch

            return {"x": torch.tensor(items)}

    class task_:
        @staticmethod
        def collate_targets(targets, idx):
            import torch

            return torch.as_tensor(np.asarray(targets)[idx])


@pytest.mark.parametrize("sampling", ["proportional", "round-robin", "temperature:2"])
def test_the_batch_plan_draws_each_task_as_the_sampling_says(sampling):
    sizes = [400, 40]
    items = [list(range(n)) for n in sizes]
    plan = TaskBatches([_View(), _View()], items, [np.zeros(n) for n in sizes], sampling, seed=0)
    rng = np.random.default_rng(0)
    tasks = [int(b["task"]) for _, b in plan.plan(10, rng)]
    assert len(tasks) == 44  # one epoch: as many batches as the tasks' parts make
    share = tasks.count(1) / len(tasks)
    expected = {"proportional": 4 / 44, "round-robin": 0.5,
                "temperature:2": np.sqrt(40) / (np.sqrt(400) + np.sqrt(40))}[sampling]
    assert share == pytest.approx(expected, abs=0.12 if sampling.startswith("temperature") else 1e-9)
    for idx, batch in plan.plan(10, rng):  # every batch holds one task's items, with their own targets
        assert len(batch["x"]) == len(batch["labels"]) <= 10


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="sampling"):
        parse_sampling("temperature:0")
    with pytest.raises(ConfigError, match="kind"):
        TaskData("regression", [])
    with pytest.raises(ConfigError, match="per-task"):
        TaskData("ner", [], options={"lr": 1.0})
    texts, labels = sentiment_data(8)
    with pytest.raises(ConfigError, match="at least two tasks"):
        MultiTaskModel("minilm").fit({"a": TaskData("classification", Examples(texts, labels))})
    with pytest.raises(ConfigError, match="fine-tuned transformer"):
        MultiTaskModel("glove-50d").fit({"a": TaskData("classification", Examples(texts, labels)),
                                         "b": TaskData("ner", ner_data(8))})


@pytest.mark.slow
def test_one_encoder_two_heads_trained_saved_and_loaded(tmp_path):
    texts, labels = sentiment_data(40)
    ner = ner_data(48)
    tasks = {"sentiment": TaskData("classification", Examples(texts[8:], labels[8:]), Examples(texts[:8], labels[:8])),
             "entities": TaskData("ner", ner.subset(range(8, 48)), ner.subset(range(8)), options={"crf": True})}
    model = MultiTaskModel("minilm", epochs=3, batch_size=8, max_length=32, lr=1e-4, seed=0, patience=None,
                           task_sampling="round-robin")
    model.fit(tasks, out_dir=tmp_path / "mt")
    record = model.history_[-1]
    assert {"val_sentiment_macro_f1", "val_entities_f1", "val_score"} <= set(record)
    views = model.tasks_
    assert views["sentiment"].module_.backbone is views["entities"].module_.backbone  # one encoder
    assert views["sentiment"].score(texts[:8], labels[:8]) >= 0.75
    assert views["entities"].score(ner.subset(range(8))) >= 0.5
    loaded = MultiTaskModel.load(tmp_path / "mt")
    probe = ["a wonderful film", "", "dreadful " * 20000]
    np.testing.assert_allclose(loaded.tasks_["sentiment"].predict_proba(probe),
                               views["sentiment"].predict_proba(probe), atol=1e-5)
    sents = [["John", "lives", "in", "Paris"], ["Rome"]]
    assert loaded.predict(sents, task="entities") == model.predict(sents, task="entities")
    assert loaded.tasks_["entities"].module_.crf is not None
    with pytest.raises(ConfigError, match="no task 'other'"):
        loaded.predict(texts, task="other")


@pytest.mark.slow
def test_train_tasks_file_on_the_command_line(tmp_path):
    import json

    from typer.testing import CliRunner

    from transferlab.cli import app

    from conftest import write_csv
    from test_cli_ner import write_conll

    texts, labels = sentiment_data(60)
    write_csv(tmp_path / "reviews.csv", zip(texts, labels))
    write_conll(tmp_path / "ner.txt", ner_data(40))
    write_conll(tmp_path / "ner_test.txt", ner_data(12))
    (tmp_path / "tasks.toml").write_text(
        'encoder = "minilm"\nepochs = 2\nbatch_size = 8\nmax_length = 24\nlr = 1e-4\ntask_sampling = "temperature:2"\n'
        '[tasks.sentiment]\nkind = "classification"\ndata = "reviews.csv"\nsplit = "stratified:0.6,0.2,0.2"\n'
        '[tasks.entities]\nkind = "ner"\ndata = "ner.txt"\ntest_data = "ner_test.txt"\ncrf = true\n',
        encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--tasks", str(tmp_path / "tasks.toml"), "--out", str(tmp_path / "mt")])
    assert res.exit_code == 0, res.output
    assert "sentiment (classification): train 36, validation 12, test 12" in res.output
    reports = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "mt" / "reports").glob("*.json")}
    assert set(reports) == {"sentiment", "entities"} and "accuracy" in reports["sentiment"]
    config = json.loads((tmp_path / "mt" / "config.json").read_text())
    assert config["task"] == "multi-task" and [t["name"] for t in config["tasks"]] == ["sentiment", "entities"]
    res = runner.invoke(app, ["predict", str(tmp_path / "mt"), "--task", "entities"],
                        input='{"text": "John Smith lives in Paris ."}\n')
    assert res.exit_code == 0, res.output
    assert "entities" in json.loads(res.stdout.splitlines()[-1])
    res = runner.invoke(app, ["predict", str(tmp_path / "mt")], input='{"text": "x"}\n')
    assert res.exit_code == 2 and "--task: sentiment, entities" in res.output
    (tmp_path / "bad.toml").write_text('[tasks.a]\nkind = "classification"\ndata = "x.csv"\ncolour = "red"\n'
                                       '[tasks.b]\nkind = "ner"\ndata = "y.txt"\n', encoding="utf-8")
    res = runner.invoke(app, ["train", "--tasks", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown key(s) ['colour']" in res.output and "[tasks.a]" in res.output


@pytest.mark.slow
def test_each_classification_task_weighs_its_own_classes():
    texts, labels = sentiment_data(24)
    skewed = Examples(texts[:14], ["rare"] * 2 + ["common"] * 12)
    tasks = {"skewed": TaskData("classification", skewed),
             "even": TaskData("classification", Examples(texts, labels))}
    model = MultiTaskModel("minilm", epochs=1, batch_size=8, max_length=16, seed=0, patience=None,
                           class_weight="auto").fit(tasks, save_model=False)
    w = model.tasks_["skewed"].fit_info_["class_weights"]
    assert w["rare"] == pytest.approx(6 * w["common"])  # inverse frequency: 12 against 2
    even = model.tasks_["even"].fit_info_["class_weights"]
    assert even["positive"] == pytest.approx(even["negative"])
    plain = MultiTaskModel("minilm", epochs=1, batch_size=8, max_length=16, seed=0, patience=None).fit(
        tasks, save_model=False)
    assert plain.tasks_["skewed"].fit_info_["class_weights"] is None
    assert plain.tasks_["skewed"].task_.criterion.weight is None
