"""Token tagging: each family's contract (train tiny -> save -> load -> identical predictions -> an empty text and
a 100k-character document), windows for long sentences, and that training learns the signal."""

import numpy as np
import pytest

from transferlab.data.tagged import TaggedSentences
from transferlab.models.tagger import TokenTagger
from transferlab.models.tagging import owners, word_windows

PEOPLE = ["John", "Mary", "Peter", "Anna", "Omar", "Lucy"]
PLACES = ["Paris", "Berlin", "Madrid", "Rome", "Oslo", "Lima"]


def ner_data(n=48):
    tokens, tags = [], []
    for i in range(n):
        p, c = PEOPLE[i % 6], PLACES[(i // 2) % 6]
        if i % 3 == 0:
            tokens.append([p, "Smith", "lives", "in", c, "."])
            tags.append(["B-PER", "I-PER", "O", "O", "B-LOC", "O"])
        elif i % 3 == 1:
            tokens.append(["In", c, ",", p, "works", "hard", "."])
            tags.append(["O", "B-LOC", "O", "B-PER", "O", "O", "O"])
        else:
            tokens.append(["the", "weather", "in", c, "is", "fine"])
            tags.append(["O", "O", "O", "B-LOC", "O", "O"])
    return TaggedSentences(tokens, tags)


FAMILIES = {
    "glove-bilstm-crf": dict(encoder="glove-50d", crf=True, epochs=4, lr=1e-2),
    "glove-bilstm": dict(encoder="glove-50d", epochs=2, char_cnn=False),
    "minilm-finetuned-case": dict(encoder="minilm", epochs=1, batch_size=8, max_length=16, stride=4,
                                  case_features=True),
    "minilm-frozen-linear-crf-case-context": dict(encoder="minilm", strategy="frozen", crf=True, epochs=3,
                                                 max_length=24, case_features=True, context=4),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FAMILIES))
def test_tagger_family_contract(name, tmp_path):
    data = ner_data()
    tagger = TokenTagger(**FAMILIES[name], seed=1, patience=None)
    tagger.fit(data.subset(range(36)), validation=data.subset(range(36, 48)), out_dir=tmp_path)
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == len(tagger.history_)
    assert "val_f1" in tagger.history_[-1]
    probe = [["John", "Smith", "lives", "in", "Paris", "."], [], ["Rome"] * 40]
    before = tagger.predict(probe)
    loaded = TokenTagger.load(tmp_path)
    assert loaded.predict(probe) == before
    assert [len(t) for t in before] == [6, 0, 40]
    assert set(t for s in before for t in s) <= set(tagger.tags_)
    long_text = "Mary visited Oslo. " * 5_300  # about 100k characters
    spans = loaded.predict_spans(["", long_text])
    assert spans[0] == []
    assert all(long_text[s["start"]:s["end"]] == s["text"] for s in spans[1])


@pytest.mark.slow
def test_bilstm_crf_learns_the_signal():
    data = ner_data(60)
    tagger = TokenTagger("glove-50d", crf=True, epochs=12, lr=1e-2, seed=0, patience=None)
    tagger.fit(data.subset(range(48)), validation=data.subset(range(48, 60)))
    assert tagger.score(data.subset(range(48, 60))) >= 0.9
    spans = tagger.predict_spans(["In Berlin, Anna works hard."])[0]
    assert [(s["text"], s["label"]) for s in spans] == [("Berlin", "LOC"), ("Anna", "PER")]


def test_windows_cover_every_word_with_overlap_and_owners_prefer_the_middle():
    lengths = [1, 2, 1, 3, 1, 1, 2, 1, 1, 1]
    windows = word_windows(lengths, body=5, stride=2)
    assert windows[0][0] == 0 and windows[-1][1] == len(lengths)
    for (a, b), (c, d) in zip(windows, windows[1:]):
        assert sum(lengths[a:b]) <= 5 and a < c <= b  # progress, and no word skipped
    own = owners(windows, len(lengths))
    assert (own >= 0).all()
    for w, k in enumerate(own):
        a, b = windows[k]
        assert a <= w < b
    assert word_windows([1, 1], body=5, stride=2) == [(0, 2)]
    assert word_windows([9], body=5, stride=2) == [(0, 1)]  # a word longer than the window stands alone


@pytest.mark.slow
def test_transformer_windows_give_the_same_tags_as_one_window_where_context_suffices(tmp_path):
    data = ner_data()
    tagger = TokenTagger("minilm", epochs=2, batch_size=8, max_length=64, seed=1, patience=None,
                         validation_fraction=0.0).fit(data)
    short = [["John", "Smith", "lives", "in", "Paris", "."] * 3]
    whole = tagger.predict(short)
    tagger.model_config_.max_length, tagger.model_config_.stride = 12, 3  # same weights, forced into windows
    items = tagger.backend_.prepare(TaggedSentences(short))
    assert len(items) > 1
    windowed = tagger.predict(short)
    assert len(windowed[0]) == 18
    assert np.mean([a == b for a, b in zip(whole[0], windowed[0])]) >= 0.8


def test_document_context_reads_whole_words_of_the_same_document_only():
    from transferlab.models.tagging import document_context

    pieces = [[[1], [2, 3]], [[4], [5]], [[6, 7], [8]], [[9]]]  # 4 sentences: words as subword ids
    assert document_context(pieces, None, 1, 3, 100) == ([1, 2, 3], [6, 7, 8])
    assert document_context(pieces, None, 1, 2, 100) == ([2, 3], [6, 7])  # a word is never cut
    assert document_context(pieces, [0, 0, 1, 1], 1, 3, 100) == ([1, 2, 3], [])  # next document: not read
    assert document_context(pieces, None, 0, 10, 100) == ([], [4, 5, 6, 7, 8, 9])  # crosses several sentences
    assert document_context(pieces, None, 2, 10, 4) == ([4, 5], [9])  # the room left in the window caps both


def test_context_is_read_but_only_the_sentence_is_labelled():
    from transferlab.config import TOKENS, ModelConfig
    from transferlab.encoders.transformer import load_pretrained
    from transferlab.encoders.zoo import resolve
    from transferlab.models.tagging import make_tagging_backend

    cfg = ModelConfig("minilm", context=6, max_length=32).resolve_defaults(TOKENS)
    backend = make_tagging_backend(cfg, resolve("minilm"), "cpu")
    backend.tokenizer, _ = load_pretrained(backend.resolved)
    doc = TaggedSentences([["Paris", "is", "big"], ["Anna", "lives", "there"], ["Rome", "too"], ["Oslo"]],
                          documents=[0, 0, 0, 1])
    items = backend.prepare(doc)
    plain = make_tagging_backend(ModelConfig("minilm", max_length=32).resolve_defaults(TOKENS), backend.resolved,
                                 "cpu")
    plain.tokenizer = backend.tokenizer
    alone = plain.prepare(doc)
    tok = backend.tokenizer
    middle = items[1]
    text = tok.decode(middle["input_ids"], skip_special_tokens=True)
    assert text.startswith("paris is big") and text.endswith("rome too")  # neighbours read
    assert [middle["input_ids"][i] for i in middle["word_starts"]] == \
        [alone[1]["input_ids"][i] for i in alone[1]["word_starts"]]  # the same three words are labelled
    assert middle["word_starts"][0] > alone[1]["word_starts"][0]
    assert "oslo" not in tok.decode(items[2]["input_ids"])  # another document
    assert items[3]["input_ids"] == alone[3]["input_ids"]  # alone in its document: nothing added
    with pytest.raises(Exception, match="under half of max_length"):
        ModelConfig("minilm", context=16, max_length=32).resolve_defaults(TOKENS)
    with pytest.raises(Exception, match="token tagging with a transformer"):
        ModelConfig("glove-50d", context=4).resolve_defaults(TOKENS)
    with pytest.raises(Exception, match="token tagging with a transformer"):
        ModelConfig("minilm", context=4).resolve_defaults()


def test_bad_sentences_from_python_are_named():
    from transferlab.errors import DataError

    with pytest.raises(DataError, match="sentence 1.*empty"):
        TokenTagger("glove-50d", crf=True).fit([["Paris"], []], [["B-LOC"], []])
    with pytest.raises(DataError, match="sentence 0.*not IOB2"):
        TokenTagger("glove-50d").fit([["Paris"]], [["S-LOC"]])
    with pytest.raises(DataError, match="2 words but 1 tags"):
        TokenTagger("glove-50d").fit([["in", "Paris"]], [["O"]])


@pytest.mark.slow
def test_word_vector_tagger_chunks_long_sentences_and_keeps_odd_words(tmp_path):
    data = ner_data(24)
    data.tokens[0][1] = "Sm\rith\n"  # a word with line breaks must survive the saved vocabulary
    data.tokens[3][1] = "Sm\rith\n"
    tagger = TokenTagger("glove-50d", epochs=1, max_length=5, seed=0, patience=None, validation_fraction=0.0,
                         min_count=1).fit(data)
    items = tagger.backend_.prepare(data.subset([0]))
    assert [(it["_start"], it["_end"]) for it in items] == [(0, 5), (5, 6)]
    tagger.save(tmp_path)
    again = TokenTagger.load(tmp_path)
    assert again.backend_.vocab == tagger.backend_.vocab
    probe = [data.tokens[0] * 3]
    assert again.predict(probe) == tagger.predict(probe) and len(again.predict(probe)[0]) == 18
