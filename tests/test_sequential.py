"""Sequential transfer (``init_from``): a model starts from the encoder an earlier model trained on another task,
its head replaced; across tasks for transformers, across label sets for word vectors; refused where it cannot work."""

import pytest
import torch
from safetensors.torch import load_file

from transferlab.errors import ConfigError, ModelFileError
from transferlab.models.classifier import TextClassifier
from transferlab.models.tagger import TokenTagger

from conftest import sentiment_data
from test_tagger import ner_data


def test_word_vector_classifier_carries_embedding_rows_by_word_and_its_encoder(tmp_path):
    texts, labels = sentiment_data(40)
    first = TextClassifier("glove-50d", "cnn", epochs=3, max_length=16, seed=0, patience=None)
    first.fit(texts, labels, out_dir=tmp_path / "first")
    # a new task with other labels and other text: only shared words carry over
    topics = [f"{t} film number {i}" for i, t in enumerate(["wonderful", "terrible", "plot", "music"] * 5)]
    second = TextClassifier("glove-50d", "cnn", epochs=1, lr=1e-9, max_length=16, seed=0, patience=None,
                            validation_fraction=0.0, init_from=str(tmp_path / "first"))
    second.fit(topics, ["praise", "blame", "story", "sound"] * 5)
    info = second.fit_info_["init_from"]
    assert info["task"] == "classification" and info["words_carried"] >= 4
    old = load_file(str(tmp_path / "first" / "model.safetensors"))
    old_vocab = (tmp_path / "first" / "vocab.txt").read_text().split("\n")
    new_emb = second.module_.embedding.weight.detach()
    w = "wonderful"
    # lr 1e-9: what the model holds is what it started from
    assert torch.allclose(new_emb[second.backend_.index[w]], old["embedding.weight"][old_vocab.index(w)], atol=1e-5)
    for k, v in second.module_.state_dict().items():
        if k.startswith("encoder."):
            assert torch.allclose(v, old[k], atol=1e-5), k
    assert second.labels_ == ["blame", "praise", "sound", "story"]  # the head is new: the new task's labels


def test_refusals_name_the_reason(tmp_path):
    texts, labels = sentiment_data(20)
    TextClassifier("glove-50d", "cnn", epochs=1, max_length=16, patience=None).fit(texts, labels,
                                                                                  out_dir=tmp_path / "cnn")
    with pytest.raises(ConfigError, match="same family"):
        TextClassifier("minilm", init_from=str(tmp_path / "cnn"), epochs=1, max_length=16).fit(texts, labels)
    with pytest.raises(ConfigError, match="frozen encoder"):
        TextClassifier("minilm", strategy="frozen", init_from=str(tmp_path / "cnn"), epochs=1).fit(texts, labels)
    with pytest.raises(ConfigError, match="nothing of the earlier model"):
        TextClassifier("glove-50d", "bigru", epochs=1, max_length=16, init_from=str(tmp_path / "cnn"),
                       min_count=50).fit(["zzz qqq"] * 4, ["a", "b"] * 2)
    with pytest.raises(ModelFileError, match="not a saved TransferLab model"):
        TextClassifier("glove-50d", init_from=str(tmp_path), epochs=1).fit(texts, labels)


@pytest.mark.slow
def test_a_transformer_tagger_starts_from_a_fine_tuned_classifier(tmp_path):
    texts, labels = sentiment_data(16)
    TextClassifier("minilm", epochs=1, max_length=16, batch_size=8, seed=0, patience=None).fit(
        texts, labels, out_dir=tmp_path / "clf")
    tagger = TokenTagger("minilm", epochs=1, lr=1e-12, max_length=16, batch_size=8, seed=0, patience=None,
                         validation_fraction=0.0, init_from=str(tmp_path / "clf"))
    tagger.fit(ner_data(8))
    info = tagger.fit_info_["init_from"]
    assert info["task"] == "classification" and info["tensors"] > 50
    old = load_file(str(tmp_path / "clf" / "model.safetensors"))
    now = tagger.module_.state_dict()
    shared = [k for k in old if k.startswith("backbone.") and k in now]
    assert shared and all(torch.allclose(now[k], old[k], atol=1e-6) for k in shared)
    base = TokenTagger("minilm", epochs=1, lr=1e-12, max_length=16, batch_size=8, seed=0, patience=None,
                       validation_fraction=0.0).fit(ner_data(8))
    moved = [k for k in shared if not torch.allclose(base.module_.state_dict()[k], old[k], atol=1e-6)]
    assert moved  # the classifier's fine-tuning is what the tagger started from, not the pretrained encoder
    assert len(tagger.predict([["John", "lives", "in", "Paris"]])[0]) == 4


def test_train_init_from_on_the_command_line(tmp_path):
    import json

    from typer.testing import CliRunner

    from transferlab.cli import app

    from conftest import write_csv

    texts, labels = sentiment_data(40)
    data = write_csv(tmp_path / "d.csv", zip(texts, labels))
    runner = CliRunner()
    args = ["train", "--data", str(data), "--head", "cnn", "--epochs", "1", "--max-length", "16"]
    assert runner.invoke(app, args + ["--out", str(tmp_path / "a")]).exit_code == 0
    res = runner.invoke(app, args + ["--init-from", str(tmp_path / "a"), "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert "encoder started from" in res.output
    fit = json.loads((tmp_path / "b" / "config.json").read_text())["fit"]
    assert fit["init_from"]["from"] == str(tmp_path / "a") and fit["init_from"]["words_carried"] > 10
