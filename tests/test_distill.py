"""Knowledge distillation (tasks/distill.py, TextClassifier.fit(teacher=...)): the loss's definition, the teacher's
softened probabilities, and a student of another family learning from a teacher on labelled and unlabelled text."""

import numpy as np
import pytest
import torch

from transferlab.errors import ConfigError
from transferlab.models.classifier import TextClassifier
from transferlab.tasks.distill import Distillation, teacher_probabilities

from conftest import sentiment_data, write_csv

LABELS = ["negative", "neutral", "positive"]


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_with_temperature_one_and_a_one_hot_teacher_the_loss_is_cross_entropy(alpha):
    torch.manual_seed(0)
    logits = torch.randn(6, 3) * 3
    hard = torch.tensor([0, 2, 1, 1, 0, 2])
    task = Distillation(LABELS, temperature=1.0, alpha=alpha)
    targets = torch.as_tensor(task.soft_targets(hard.numpy(), np.eye(3, dtype=np.float32)[hard.numpy()]))
    expected = torch.nn.functional.cross_entropy(logits, hard)
    assert float(task.loss(logits, targets)) == pytest.approx(float(expected), rel=1e-5)


def test_unlabelled_rows_learn_from_the_teacher_alone_scaled_by_t_squared():
    torch.manual_seed(1)
    logits = torch.randn(4, 3)
    teacher = torch.softmax(torch.randn(4, 3), dim=-1)
    t = 3.0
    task = Distillation(LABELS, temperature=t, alpha=0.25)
    targets = torch.as_tensor(task.soft_targets(np.full(4, -100), teacher.numpy()))
    kl = torch.nn.functional.kl_div(torch.log_softmax(logits / t, -1), teacher, reduction="batchmean")
    assert float(task.loss(logits, targets)) == pytest.approx(float(kl) * t * t, rel=1e-5)
    # hard labels alone (validation batches) are plain cross-entropy
    hard = torch.tensor([0, 1, 2, 0])
    assert float(task.loss(logits, hard)) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, hard)))


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="temperature"):
        Distillation(LABELS, temperature=0)
    with pytest.raises(ConfigError, match="alpha"):
        Distillation(LABELS, alpha=1.5)
    with pytest.raises(ConfigError, match="single-label"):
        Distillation(LABELS, multilabel=True)


class FakeTeacher:
    multilabel_ = False

    def __init__(self, labels, logits):
        self.labels_, self.logits = labels, np.asarray(logits, np.float32)

    def decision_function(self, X):
        return self.logits


def test_teacher_probabilities_follow_the_student_label_order_and_average_teachers():
    a = FakeTeacher(["positive", "negative"], [[2.0, 0.0]])
    b = FakeTeacher(["negative", "positive"], [[0.0, 0.0]])
    p = teacher_probabilities([a, b], ["x"], ["negative", "positive"], temperature=1.0)
    pa = np.exp([0.0, 2.0]) / np.exp([0.0, 2.0]).sum()
    np.testing.assert_allclose(p[0], (pa + [0.5, 0.5]) / 2, rtol=1e-6)
    soft = teacher_probabilities(a, ["x"], ["negative", "positive"], temperature=4.0)[0]
    assert soft[1] < pa[1]  # a higher temperature softens
    with pytest.raises(ConfigError, match="does not know"):
        teacher_probabilities(a, ["x"], ["negative", "positive", "neutral"], temperature=1.0)


PROBE = ["great acting and a superb story", "awful acting and a dull story", "i loved it , brilliant",
         "i hated it , dreadful", "excellent , touching and funny", "poor , tedious and stupid",
         "a delightful masterpiece", "a horrible waste of time"]
PROBE_TRUTH = ["positive", "negative"] * 4


@pytest.mark.slow
def test_a_student_of_another_family_learns_from_the_teacher_on_unlabelled_text(tmp_path):
    texts, labels = sentiment_data(40)
    teacher = TextClassifier("glove-50d", "dan", epochs=30, lr=5e-3, max_length=16, seed=0, patience=None)
    teacher.fit(texts, labels)
    assert teacher.predict(PROBE) == PROBE_TRUTH
    unlabelled = [f"{t} again" for t in texts[10:]]  # the teacher's kind of text, without its labels
    val = (texts[2:8], labels[2:8])
    kw = dict(epochs=15, lr=5e-3, max_length=16, seed=0, patience=None)
    # two labelled reviews only: on its own the student cannot know "superb", "dull", "dreadful"...
    alone = TextClassifier("glove-50d", "cnn", **kw).fit(texts[:2], labels[:2], validation=val)
    student = TextClassifier("glove-50d", "cnn", kd_temperature=2.0, kd_alpha=0.5, **kw)
    with pytest.warns(UserWarning, match="1 unlabelled text"):
        student.fit(texts[:2], labels[:2], validation=val, teacher=teacher, unlabelled=unlabelled + [texts[2]],
                    out_dir=tmp_path / "student")
    info = student.fit_info_["distillation"]
    assert info["n_unlabelled"] == 30 and info["n_unlabelled_dropped"] == 1  # the validation text left out
    taught = np.mean([a == b for a, b in zip(student.predict(PROBE), PROBE_TRUTH)])
    untaught = np.mean([a == b for a, b in zip(alone.predict(PROBE), PROBE_TRUTH)])
    assert taught >= 0.85 and taught >= untaught + 0.25, (taught, untaught)  # measured: 0.875 against 0.5
    loaded = TextClassifier.load(tmp_path / "student")
    assert loaded.predict(PROBE) == student.predict(PROBE)
    with pytest.raises(ConfigError, match="plain cross-entropy"):
        TextClassifier("glove-50d", "cnn", epochs=1, sampler="balanced").fit(texts, labels, teacher=teacher)


@pytest.mark.slow
def test_distill_command_trains_a_student_and_compares_it_with_its_teachers(tmp_path):
    import json

    from typer.testing import CliRunner

    from transferlab.cli import app

    runner = CliRunner()
    texts, labels = sentiment_data(40)
    data = write_csv(tmp_path / "reviews.csv", zip(texts, labels))
    more = tmp_path / "more.jsonl"
    more.write_text("".join(json.dumps({"body": t}) + "\n" for t in [f"{p} indeed" for p in PROBE] + texts[:3]),
                    encoding="utf-8")
    res = runner.invoke(app, ["train", "--data", str(data), "--encoder", "glove-50d", "--head", "dan", "--epochs",
                              "20", "--lr", "0.005", "--max-length", "16", "--out", str(tmp_path / "teacher")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["distill", "--teacher", str(tmp_path / "teacher"), "--student-head", "cnn",
                              "--data", str(data), "--split", "stratified:0.6,0.2,0.2", "--unlabelled", str(more),
                              "--unlabelled-text-col", "body", "--augment", "1", "--epochs", "5", "--max-length", "16", "--test",
                              "--out", str(tmp_path / "student")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "student" / "teachers.json").read_text())
    assert set(summary) == {"student", "teachers"} and len(summary["teachers"]) == 1
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    dist = config["fit"]["distillation"]
    left_out = config["fit"]["unlabelled_left_out_as_test"] + dist["n_unlabelled_dropped"]
    # 11 unlabelled lines, plus one perturbed copy of each of the 24 training reviews (fewer where a copy repeats)
    assert dist["temperature"] == 2.0 and config["fit"]["augment_copies"] == 1
    assert 11 + 12 <= dist["n_unlabelled"] + left_out <= 11 + 24
    assert TextClassifier.load(tmp_path / "student").predict(["a superb story"])[0] in ("positive", "negative")


# ---------------------------------------------------------------- the transfer set and the teacher's cached logits
from hypothesis import given, settings, strategies as st  # noqa: E402

from transferlab.data.augment import transfer_set  # noqa: E402

WORDS = st.lists(st.sampled_from(["a", "good", "bad", "film", "plot", "very", "dull", "!"]), min_size=0, max_size=12)


def _is_subsequence(small: list[str], big: list[str]) -> bool:
    it = iter(big)
    return all(w in it for w in small)


@settings(max_examples=60, deadline=None)
@given(st.lists(WORDS.map(" ".join), min_size=1, max_size=6), st.integers(0, 3), st.integers(0, 10**6))
def test_the_transfer_set_only_drops_words_and_never_repeats_a_source(texts, copies, seed):
    out = transfer_set(texts, copies, seed=seed, drop=0.2, window=0.5)
    assert out == transfer_set(texts, copies, seed=seed, drop=0.2, window=0.5)  # reproducible from the seed
    assert len(out) == len(set(out)) and not set(out) & set(texts) and all(o.strip() for o in out)
    assert len(out) <= copies * len(texts)
    for o in out:  # never a word the text did not have, never reordered
        assert any(_is_subsequence(o.split(), t.split()) for t in texts), (o, texts)


def test_the_transfer_set_grows_with_copies_and_refuses_bad_settings():
    texts, _ = sentiment_data(40)
    long_texts = [f"{t} and then some more words about this film today" for t in texts]
    one, two = transfer_set(long_texts, 1, seed=0), transfer_set(long_texts, 2, seed=0)
    assert len(one) >= 30 and len(two) > len(one)
    with pytest.raises(ConfigError):
        transfer_set(texts, -1)
    with pytest.raises(ConfigError, match="drop"):
        transfer_set(texts, 1, drop=1.0)


def test_the_teachers_logits_are_cached_and_a_changed_teacher_is_asked_again(monkeypatch):
    from transferlab.tasks.distill import teacher_logits

    texts, labels = sentiment_data(20)
    teacher = TextClassifier("glove-50d", "dan", epochs=2, max_length=16, seed=0, patience=None).fit(texts, labels)
    first = teacher_logits(teacher, texts)
    np.testing.assert_allclose(first, teacher.decision_function(texts), rtol=1e-6)
    calls = []
    real = TextClassifier.decision_function
    monkeypatch.setattr(TextClassifier, "decision_function", lambda self, X, **k: calls.append(len(X)) or real(self, X))
    np.testing.assert_array_equal(teacher_logits(teacher, texts[::-1]), first[::-1])  # all from the cache
    assert calls == []
    teacher_logits(teacher, texts[:3] + ["a text never seen"])
    assert calls == [1]  # only the new text was scored
    with torch.no_grad():  # a retrained teacher must not read the old answers
        next(p for p in teacher.module_.parameters() if p.requires_grad).add_(0.5)
    changed = teacher_logits(teacher, texts)
    assert calls[-1] == len(texts) and not np.allclose(changed, first)


@pytest.mark.slow
def test_distill_bench_compares_the_students_per_seed_and_reuses_its_teacher(tmp_path):
    import json

    from transferlab.bench import distill

    texts, labels = sentiment_data(60)
    data = write_csv(tmp_path / "reviews.csv", zip(texts, labels))
    kw = dict(data=str(data), text_col="text", label_col="label", split="stratified:0.5,0.2,0.3", seeds=[0, 1],
              copies=2, teacher_params=dict(encoder="glove-50d", head="dan", strategy=None, epochs=20, lr=5e-3,
                                            max_length=16, batch_size=8),
              student_params=dict(epochs=3, max_length=16), speed_docs=10, device="cpu")
    said = []
    res = distill.run(tmp_path / "out", announce=said.append, **kw)
    assert [(r["seed"], r["kind"]) for r in res["rows"]] == [(0, "labels"), (0, "distilled"), (1, "labels"),
                                                             (1, "distilled")]
    s = res["summary"]
    per_seed = [100 * (res["rows"][i + 1]["test_accuracy"] - res["rows"][i]["test_accuracy"]) for i in (0, 2)]
    assert s["gain_points_per_seed"] == pytest.approx(per_seed, abs=0.01)
    assert res["n"]["transfer"] > 0 and res["teacher"]["test_accuracy"] > 0.5
    # the teacher labels training and transfer texts once, outside the students' timed fits
    assert f"teacher labelled {res['n']['train'] + res['n']['transfer']} training and transfer texts" in " ".join(said)
    assert res["teacher"]["labelling_seconds_or_cached"] >= 0
    assert s["speed_ratio"] == pytest.approx(res["speed_docs_per_second"]["student"]
                                             / res["speed_docs_per_second"]["teacher"], abs=0.01)
    assert set(res["targets"]) == {"gain_points", "teacher_share", "speed_ratio"}
    out = tmp_path / "out"
    assert json.loads((out / "results.json").read_text())["summary"] == s
    assert (out / "accuracy_vs_speed.png").stat().st_size > 0 and "| gain over labels alone" in \
        (out / "results.md").read_text()
    said.clear()
    again = distill.run(out, announce=said.append, **{**kw, "seeds": [0]})
    assert any("reusing" in m for m in said) and again["teacher"]["test_accuracy"] == res["teacher"]["test_accuracy"]
    def measured(rows):  # what a rerun must reproduce (times and memory vary)
        return [{k: v for k, v in r.items() if k not in ("train_seconds", "peak_memory_mb")} for r in rows]

    assert measured(again["rows"]) == measured(res["rows"][:2])  # the same seed trains the same students


@pytest.mark.parametrize("suite", ["distill", "dapt"])
def test_multi_seed_benches_refuse_an_empty_seed_list_before_any_work(tmp_path, suite):
    from transferlab.bench import dapt, distill

    run = {"distill": distill.run, "dapt": dapt.run}[suite]
    with pytest.raises(ConfigError, match="no seeds"):
        run(tmp_path / "out", data=str(tmp_path / "missing.csv"), seeds=[])
    assert not (tmp_path / "out").exists()
