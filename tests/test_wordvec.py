import gzip

import numpy as np
import pytest

from transferlab.encoders import wordvec
from transferlab.encoders.zoo import resolve
from transferlab.errors import DataError


def test_tokenize_lowercases_strips_html_and_splits_negation():
    assert wordvec.tokenize("I didn't <br /><br />LIKE it!") == ["i", "did", "n't", "like", "it", "!"]


def test_tokenize_head_and_tail():
    text = " ".join(f"w{i}" for i in range(100))
    assert wordvec.tokenize(text, 8) == [f"w{i}" for i in range(8)]
    toks = wordvec.tokenize(text, 8, "head+tail")
    assert toks[:2] == ["w0", "w1"] and toks[-6:] == [f"w{i}" for i in range(94, 100)]


def test_tokenize_a_million_characters_is_bounded():
    toks = wordvec.tokenize("word " * 200_000, 400)
    assert len(toks) == 400


def test_vocab_and_embedding_matrix_oov_policy():
    vectors = wordvec.WordVectors(["good", "bad"], np.array([[1, 0], [0, 1]], dtype=np.float32))
    tokens = [["good", "film", "film"], ["bad", "rare"]]
    vocab = wordvec.build_vocab(tokens, set(vectors.words), min_count=2)
    # "film" is frequent, "good"/"bad" are known, "rare" is neither: it goes to <unk>.
    assert vocab[:2] == [wordvec.PAD, wordvec.UNK]
    assert set(vocab[2:]) == {"good", "bad", "film"}
    matrix, hits = wordvec.embedding_matrix(vocab, vectors, 2, seed=0)
    assert hits == 2
    assert np.allclose(matrix[vocab.index("good")], [1, 0])
    assert np.allclose(matrix[0], 0)  # padding
    assert np.allclose(matrix[1], [0.5, 0.5])  # unknown = mean vector
    ids = wordvec.encode_tokens([["rare", "good"], []], {w: i for i, w in enumerate(vocab)})
    assert ids[0] == [1, vocab.index("good")]
    assert ids[1] == [1]  # an empty document still has one position


@pytest.mark.parametrize("header", [True, False])
def test_text_vectors_with_and_without_header_and_gzip(tmp_path, header):
    lines = ["cat 0.1 0.2 0.3", "dog 0.4 0.5 0.6"]
    path = tmp_path / "v.vec.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(("2 3\n" if header else "") + "\n".join(lines) + "\n")
    vec = wordvec.load_vectors(resolve(f"vectors:{path}"), restrict={"dog"})
    assert vec.words == ["dog"] and vec.dim == 3
    assert np.allclose(vec.vectors[0], [0.4, 0.5, 0.6])


def test_ragged_vector_file_names_the_line(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("cat 0.1 0.2\ndog 0.4\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"v.txt:line 2"):
        wordvec.load_vectors(resolve(f"vectors:{path}"))


def test_fasttext_bin_round_trip(tmp_path):
    from gensim.models import FastText

    sentences = [["good", "film"], ["bad", "film"]] * 20
    model = FastText(vector_size=8, min_count=1, epochs=2, seed=1, workers=1)
    model.build_vocab(sentences)
    model.train(sentences, total_examples=len(sentences), epochs=2)
    path = tmp_path / "ft.bin"
    from gensim.models.fasttext import save_facebook_model

    save_facebook_model(model, str(path))
    vec = wordvec.load_vectors(resolve(f"vectors:{path}"), restrict={"good", "unseenword"})
    assert vec.dim == 8 and set(vec.words) == {"good", "unseenword"}  # subwords cover unseen words
    assert np.allclose(vec.vectors[vec.words.index("good")], model.wv["good"], atol=1e-5)


def test_glove_package_loads_restricted(tmp_path):
    resolved = resolve("glove-50d")
    vec = wordvec.load_vectors(resolved, restrict={"the", "film", "zzzznotaword"})
    assert set(vec.words) == {"the", "film"} and vec.dim == 50


def test_in_domain_fasttext_trains_on_given_text():
    toks = [["good", "film", "great"], ["bad", "film", "awful"]] * 30
    vec = wordvec.train_fasttext(toks, dim=16, epochs=2, min_count=1)
    assert vec.dim == 16 and "film" in vec.words
