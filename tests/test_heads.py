import pytest
import torch

from transferlab.heads import CNNHead, DANHead, RNNAttentionHead, build_sequence_head, pair_features
from transferlab.errors import ConfigError


def _batch(lengths, dim=8):
    T = max(lengths)
    emb = torch.randn(len(lengths), T, dim)
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    return emb, mask


@pytest.mark.parametrize("name", ["cnn", "bigru", "bilstm", "dan"])
def test_heads_shape_and_short_inputs(name):
    head = build_sequence_head(name, 8)
    emb, mask = _batch([1, 7, 3])  # one token is shorter than every CNN filter
    out = head(emb, mask)
    assert out.shape == (3, head.out_dim)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["cnn", "bigru", "dan"])
def test_padding_does_not_change_the_output(name):
    torch.manual_seed(0)
    head = build_sequence_head(name, 8).eval()
    emb, mask = _batch([5])
    padded = torch.cat([emb, torch.randn(1, 6, 8) * 100], dim=1)  # garbage in the padded positions
    pmask = torch.cat([mask, torch.zeros(1, 6, dtype=torch.long)], dim=1)
    assert torch.allclose(head(emb, mask), head(padded, pmask), atol=1e-5)


def test_attention_weights_sum_to_one_and_ignore_padding():
    head = RNNAttentionHead(8, hidden=4).eval()
    emb, mask = _batch([2, 5])
    head(emb, mask)
    w = head.last_attention
    assert torch.allclose(w.sum(1), torch.ones(2))
    assert (w[0, 2:] == 0).all()


def test_dan_word_dropout_only_in_training():
    head = DANHead(8, word_dropout=0.9)
    emb, mask = _batch([6])
    head.eval()
    assert torch.equal(head(emb, mask), head(emb, mask))


def test_cnn_out_dim_counts_every_filter_width():
    assert CNNHead(8, filters=10, kernel_sizes=(2, 3)).out_dim == 20


def test_pair_features_combines_four_views():
    u, v = torch.ones(2, 3), torch.zeros(2, 3)
    assert pair_features(u, v).shape == (2, 12)


def test_unknown_head_is_a_config_error():
    with pytest.raises(ConfigError, match="cnn"):
        build_sequence_head("transformer", 8)


@pytest.mark.slow
def test_a_new_head_is_one_class_and_one_register_line():
    from torch import nn

    from transferlab.heads import registry
    from transferlab.models.classifier import TextClassifier

    from conftest import sentiment_data

    @registry.register("maxpool", task="classification", families=("word-vectors",), help="max over time")
    class MaxPool(nn.Module):
        def __init__(self, emb_dim):
            super().__init__()
            self.out_dim = emb_dim

        def forward(self, emb, mask):
            return emb.masked_fill(~mask.bool().unsqueeze(-1), -1e4).max(1).values

    try:
        texts, labels = sentiment_data(16)
        clf = TextClassifier("glove-50d", head="maxpool", epochs=1, max_length=8, validation_fraction=0.0)
        assert clf.fit(texts, labels).predict_proba(["a fine film"]).shape == (1, 2)
        assert "maxpool" in registry.names("classification", "word-vectors")
    finally:
        registry._HEADS.pop(("classification", "maxpool"))
