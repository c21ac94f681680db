"""--attention-dropout: the attention-probability dropout of a fine-tuned transformer (ModelConfig.attention_dropout).
On CPUs attention dropout makes PyTorch's attention leave its fused kernel (benchmarks/speed/probes/
attention_dropout.py); these tests check that the setting reaches every attention layer, and only it."""
import json

import pytest
import torch
from typer.testing import CliRunner

from conftest import sentiment_data, write_csv
from transferlab.cli import app
from transferlab.encoders.transformer import load_pretrained
from transferlab.encoders.zoo import resolve
from transferlab.errors import ConfigError
from transferlab.models.classifier import TextClassifier


def _attention_dropouts(backbone) -> set[float]:
    return {layer.attention.self.dropout.p for layer in backbone.encoder.layer}


def test_load_pretrained_replaces_only_the_attention_dropout():
    _, default = load_pretrained(resolve("minilm"))
    _, none = load_pretrained(resolve("minilm"), attention_dropout=0.0)
    assert _attention_dropouts(default) == {0.1}  # the checkpoint's own
    assert _attention_dropouts(none) == {0.0}
    assert none.config.attention_probs_dropout_prob == 0.0
    assert none.config.hidden_dropout_prob == default.config.hidden_dropout_prob == 0.1
    # same weights: the setting changes training noise, not the pretrained model
    for (name, a), (_, b) in zip(default.state_dict().items(), none.state_dict().items()):
        assert torch.equal(a, b), name


def _silence_hidden_dropout(backbone) -> None:
    """Every dropout but the attention probabilities' set to 0, so only attention dropout can make passes differ."""
    attention = {layer.attention.self.dropout for layer in backbone.encoder.layer}
    for module in backbone.modules():
        if isinstance(module, torch.nn.Dropout) and module not in attention:
            module.p = 0.0


def test_without_attention_dropout_training_mode_attention_is_deterministic():
    """With hidden dropout switched off, a training-mode forward pass is repeatable only if no attention dropout is
    left anywhere: the check that the value reaches the attention kernel, not just the config."""
    ids = torch.randint(1000, 5000, (2, 24))
    mask = torch.ones_like(ids)
    passes = {}
    for p in (0.0, None):
        _, backbone = load_pretrained(resolve("minilm"), attention_dropout=p)
        backbone.train()
        _silence_hidden_dropout(backbone)
        passes[p] = [backbone(input_ids=ids, attention_mask=mask).last_hidden_state for _ in range(2)]
    assert torch.equal(*passes[0.0])
    assert not torch.equal(*passes[None])  # the checkpoint's 0.1: the passes differ


def test_train_cli_fine_tunes_without_attention_dropout(tmp_path):
    texts, labels = sentiment_data(40)
    data = write_csv(tmp_path / "d.csv", zip(texts, labels))
    out = tmp_path / "model"
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--encoder", "minilm", "--strategy", "finetune",
                                   "--epochs", "1", "--max-length", "16", "--attention-dropout", "0",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    saved = json.loads((out / "encoder" / "config.json").read_text())
    assert saved["attention_probs_dropout_prob"] == 0.0
    assert json.loads((out / "config.json").read_text())["model"]["attention_dropout"] == 0.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(encoder="minilm", strategy="frozen", attention_dropout=0.0), "not to a frozen"),
    (dict(encoder="glove-50d", attention_dropout=0.0), "not to a word"),
    (dict(encoder="minilm", strategy="finetune", attention_dropout=1.0), "must be in [0, 1)"),
    (dict(encoder="minilm", strategy="finetune", attention_dropout=-0.1), "must be in [0, 1)"),
])
def test_attention_dropout_refused_where_it_cannot_apply(kwargs, message):
    texts, labels = sentiment_data(8)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        TextClassifier(epochs=1, **kwargs).fit(texts, labels)
