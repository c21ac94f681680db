import gzip
import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transferlab.data.tagged import (
    TaggedReadReport,
    TaggedSentences,
    iob2_to_bioes,
    looks_like_conll,
    read_conll,
    read_tagged,
    read_tagged_jsonl,
    spans_from_tags,
    to_iob2,
    tokenize_with_offsets,
    write_conll,
)
from transferlab.data.readers import ReadReport
from transferlab.errors import ConfigError, DataError

CONLL = Path(__file__).resolve().parents[2] / "shared" / "data" / "conll2003"

IOB2 = "John B-PER\nSmith I-PER\nmet O\nMary B-PER\nin O\nNew B-LOC\nYork I-LOC\n\nParis B-LOC\nJane B-PER\n"
IOB1 = "John I-PER\nSmith I-PER\nmet O\nMary I-PER\nin O\nNew I-LOC\nYork I-LOC\n\nParis I-LOC\nJane I-PER\n"
BIOES = "John B-PER\nSmith E-PER\nmet O\nMary S-PER\nin O\nNew B-LOC\nYork E-LOC\n\nParis S-LOC\nJane S-PER\n"
EXPECTED = [["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC", "I-LOC"], ["B-LOC", "B-PER"]]


def write(path: Path, text: str) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(text.encode("utf-8"))
    return path


def jsonl(path: Path, *objects) -> Path:
    return write(path, "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objects))


def test_head_of_shared_conll_file(tmp_path):
    src = CONLL / "valid.txt"
    if not src.exists():
        pytest.skip("../shared/data/conll2003 is not beside the repository")
    with open(src, "rb") as f:
        head = b"".join(f.readline() for _ in range(50))
    assert b"B-ORG \n" in head  # the shared files carry a trailing space after the tag
    path = tmp_path / "valid_head.txt"
    path.write_bytes(head)
    report = ReadReport(str(path))
    data = read_conll(path, report=report)
    # -DOCSTART- is no sentence; lines 3-13, 15-16 and 18-50 (cut off at EOF) are.
    assert [len(t) for t in data.tokens] == [11, 2, 33]
    assert data.origins == ["valid_head.txt:line 3", "valid_head.txt:line 15", "valid_head.txt:line 18"]
    assert data.tokens[1] == ["LONDON", "1996-08-30"] and data.tags[1] == ["B-LOC", "O"]
    assert data.tags[2][:5] == ["B-MISC", "I-MISC", "O", "B-PER", "I-PER"]
    assert data.scheme == "iob2" and data.documents == [0, 0, 0] and data.repaired == 0
    assert report.rows_read == 3 and report.skipped == []
    assert data.entity_types() == ["LOC", "MISC", "ORG", "PER"]
    assert data.tag_names()[0] == "O" and "I-PER" in data.tag_names()
    assert looks_like_conll(path)


@pytest.mark.parametrize("text, scheme", [(IOB2, "iob2"), (IOB1, "iob1"), (BIOES, "bioes")])
def test_schemes_are_detected_and_converted_to_iob2(tmp_path, text, scheme):
    data = read_conll(write(tmp_path / "d.conll", text))
    assert data.tags == EXPECTED and data.scheme == scheme
    assert data.tokens[0][:2] == ["John", "Smith"] and data.origins[1] == "d.conll:line 9"
    given_scheme = read_conll(tmp_path / "d.conll", scheme=scheme)
    assert given_scheme.tags == EXPECTED and given_scheme.scheme == scheme


def test_iob1_b_tag_between_chunks_of_one_type(tmp_path):
    data = read_conll(write(tmp_path / "d.txt", "A I-PER\nB I-PER\nC B-PER\nD O\n"))
    assert data.scheme == "iob1" and data.tags == [["B-PER", "I-PER", "B-PER", "O"]]


def test_extra_columns_trailing_space_documents_and_compression(tmp_path):
    text = (
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG \nrejects VBZ B-VP O\n\n"
        "-DOCSTART- -X- -X- O\n\nPeter NNP B-NP B-PER\n\nBlackburn NNP B-NP B-LOC\n"
    )
    data = read_conll(write(tmp_path / "d.txt.gz", text))
    assert data.tokens == [["EU", "rejects"], ["Peter"], ["Blackburn"]]
    assert data.tags == [["B-ORG", "O"], ["B-PER"], ["B-LOC"]]
    assert data.documents == [0, 1, 1]


def test_subset_keeps_every_column():
    data = TaggedSentences(tokens=[["a"], ["b", "c"]], tags=[["O"], ["B-X", "I-X"]], source="m", documents=[0, 1])
    part = data.subset([1])
    assert part.tokens == [["b", "c"]] and part.tags == [["B-X", "I-X"]] and part.documents == [1]
    assert part.origins == ["m:#1"] and len(part) == 1


BAD_CONLL = [
    ("a O\nb O\n\nc O x\nd O\n", 4, "3 columns", ["a"]),
    ("a O\nb O\n\nc\nd O\n", 4, "1 column", ["a"]),
    ("a O\nb O\n\nc O\nd X-FOO\n", 5, "is not O, B-X", ["a"]),
    ("a B-LOC\nb O\n\nc O\nd U-LOC\n", 5, "is not O, B-X", ["a"]),
    ("a O\nb B-LOC\n\nc B-PER\nd O\ne I-PER\n", 6, "does not continue a PER chunk", ["a"]),
    ("a O\nb B-LOC\n\nc B-PER\nd I-LOC\n", 5, "does not continue a LOC chunk", ["a"]),
]


@pytest.mark.parametrize("text, line, reason, kept", BAD_CONLL)
def test_bad_conll_raises_with_file_and_line_or_is_skipped(tmp_path, text, line, reason, kept):
    path = write(tmp_path / "bad.txt", text)
    with pytest.raises(DataError, match=reason) as info:
        read_conll(path)
    assert info.value.where == f"{path}:line {line}" and f"bad.txt:line {line}" in str(info.value)
    report = ReadReport(str(path))
    data = read_conll(path, skip_bad_rows=True, report=report)
    assert [t[0] for t in data.tokens] == kept
    assert report.rows_read == 2 and len(report.skipped) == 1
    assert report.skipped[0][0] == f"{path}:line {line}" and reason in report.skipped[0][1]


def test_continuation_error_tells_about_repair_and_bilou_gets_its_own_hint(tmp_path):
    with pytest.raises(DataError, match="pass --repair-tags to turn it into B-X"):
        read_conll(write(tmp_path / "a.txt", "a O\nb I-PER\n\nc B-PER\n"))
    with pytest.raises(DataError, match="rename L- to E- and U- to S-"):
        read_conll(write(tmp_path / "b.txt", "a U-PER\n"))


def test_e_and_s_tags_are_outside_a_given_iob_scheme(tmp_path):
    path = write(tmp_path / "d.txt", "a O\n\nb S-PER\nc O\n")
    with pytest.raises(DataError, match="not part of the iob2 scheme") as info:
        read_conll(path, scheme="iob2")
    assert info.value.where.endswith("d.txt:line 3")
    report = ReadReport(str(path))
    assert read_conll(path, scheme="iob1", skip_bad_rows=True, report=report).tokens == [["a"]]
    assert len(report.skipped) == 1 and report.rows_read == 2


def test_repair_turns_orphan_i_tags_into_b_and_counts_them(tmp_path):
    path = write(tmp_path / "d.txt", "a B-LOC\nb O\nc I-PER\nd I-PER\ne I-LOC\n\nf B-ORG\n")
    report = TaggedReadReport(str(path))
    data = read_conll(path, repair=True, report=report)
    assert data.tags == [["B-LOC", "O", "B-PER", "I-PER", "B-LOC"], ["B-ORG"]]
    assert data.scheme == "iob2" and data.repaired == 2 and report.repaired == 2
    assert "repaired 2" in report.summary() and not report.skipped
    plain = ReadReport(str(path))
    read_conll(path, repair=True, report=plain)
    assert plain.repaired == 2


def test_bioes_chunk_without_its_b_is_repaired(tmp_path):
    data = read_conll(write(tmp_path / "d.txt", "a O\nb E-PER\nc S-LOC\n"), repair=True)
    assert data.scheme == "bioes" and data.tags == [["O", "B-PER", "B-LOC"]] and data.repaired == 1


@pytest.mark.parametrize("text", ["", "\n\n  \n", "-DOCSTART- O\n\n"])
def test_no_sentences_is_an_error(tmp_path, text):
    with pytest.raises(DataError, match="no sentences"):
        read_conll(write(tmp_path / "d.txt", text))


def test_all_sentences_skipped_is_an_error(tmp_path):
    with pytest.raises(DataError, match="all 2 were skipped"):
        read_conll(write(tmp_path / "d.txt", "a X\n\nb Y\n"), skip_bad_rows=True)


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "d.txt"
    path.write_bytes(b"a O\n\ncaf\xe9 O\n")
    with pytest.raises(DataError, match="not UTF-8") as info:
        read_conll(path)
    assert info.value.where.endswith("d.txt:line 3")


def test_unknown_scheme_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown tag scheme"):
        read_conll(write(tmp_path / "d.txt", "a O\n"), scheme="bilou")
    with pytest.raises(ConfigError):
        to_iob2(["O"], "auto")
    with pytest.raises(DataError, match="file not found"):
        read_conll(tmp_path / "missing.txt")


# ---------------------------------------------------------------- JSON Lines


def test_jsonl_tokens_and_tags(tmp_path):
    path = jsonl(
        tmp_path / "d.jsonl",
        {"tokens": ["John", "lives"], "tags": ["I-PER", "O"], "id": "s1"},
        "",
        {"tokens": ["in", "Rome"], "tags": ["O", "I-LOC"]},
    )
    data = read_tagged_jsonl(path)
    assert data.scheme == "iob1" and data.tags == [["B-PER", "O"], ["O", "B-LOC"]]
    assert data.origins == ["d.jsonl:line 1 (id s1)", "d.jsonl:line 3"]
    assert data.texts is None and data.offsets is None and data.documents is None


BAD_JSONL = [
    ({"tokens": ["a", "b"], "tags": ["O"]}, "2 tokens but 1 tags"),
    ({"tokens": [], "tags": []}, "empty sentence"),
    ({"tokens": ["a", " "], "tags": ["O", "O"]}, "non-blank strings"),
    ({"tokens": ["a"], "tags": ["BX"]}, "is not O, B-X"),
    # The B-X fixes the file as IOB2 (without it an I-X after O would make it IOB1).
    ({"tokens": ["a", "b", "c"], "tags": ["B-X", "O", "I-X"]}, "does not continue"),
    ({"text": "   ", "spans": []}, "no tokens"),
    ({"text": "Rome", "spans": [{"start": 0, "end": 9, "label": "LOC"}]}, "outside its text"),
    ({"text": "Rome", "spans": [{"start": -1, "end": 2, "label": "LOC"}]}, "outside its text"),
    ({"text": "Rome", "spans": [{"start": 2, "end": 2, "label": "LOC"}]}, "start must be below end"),
    ({"text": "New York", "spans": [{"start": 0, "end": 8, "label": "LOC"},
                                    {"start": 4, "end": 8, "label": "LOC"}]}, "overlap"),
    ({"text": "a  b", "spans": [{"start": 1, "end": 3, "label": "X"}]}, "covers no token"),
    ({"text": "Rome", "spans": [{"start": 0, "end": 4, "label": "two words"}]}, "without spaces"),
    ({"text": "Rome"}, "'spans' must be a list"),
    ({"words": ["a"]}, "neither 'tokens' nor 'text'"),
    ("[1, 2", "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"tokens": ["a"], "tags": ["O"], "n": ' + "9" * 5000 + "}", "not valid JSON"),
]


@pytest.mark.parametrize("obj, reason", BAD_JSONL, ids=[reason for _, reason in BAD_JSONL])
def test_bad_jsonl_raises_with_file_and_line_or_is_skipped(tmp_path, obj, reason):
    line = json.dumps(obj) if not isinstance(obj, str) else obj
    path = jsonl(tmp_path / "bad.jsonl", {"text": "fine", "spans": []} if "text" in line else
                 {"tokens": ["fine"], "tags": ["O"]}, line)
    with pytest.raises(DataError, match=reason) as info:
        read_tagged_jsonl(path)
    assert info.value.where == f"{path}:line 2"
    report = ReadReport(str(path))
    data = read_tagged_jsonl(path, skip_bad_rows=True, report=report)
    assert data.tokens == [["fine"]] and report.rows_read == 2
    assert report.skipped[0][0].endswith("bad.jsonl:line 2") and reason in report.skipped[0][1]


def test_jsonl_mixing_tokens_and_text_is_bad(tmp_path):
    path = jsonl(tmp_path / "d.jsonl", {"tokens": ["a"], "tags": ["O"]}, {"text": "b", "spans": []})
    with pytest.raises(DataError, match="first object \\(line 1\\) has 'tokens'"):
        read_tagged_jsonl(path)


def test_json_array_file_gets_a_conversion_hint(tmp_path):
    with pytest.raises(DataError, match="JSON array") as info:
        read_tagged_jsonl(write(tmp_path / "d.json", '[{"tokens": ["a"],\n "tags": ["O"]}]\n'))
    assert "jq" in str(info.value)


def test_span_round_trip(tmp_path):
    records = [
        {"text": "Angela Merkel visited Paris, France.", "spans": [
            {"start": 22, "end": 27, "label": "LOC"}, {"start": 0, "end": 13, "label": "PER"},
            {"start": 29, "end": 35, "label": "LOC"}]},
        {"text": "No entities here!", "spans": []},
        # Adjacent spans of one type and a span ending inside a word ("York" of "Yorkers").
        {"text": "Ann Bob met New Yorkers", "spans": [
            {"start": 0, "end": 3, "label": "PER"}, {"start": 4, "end": 7, "label": "PER"},
            {"start": 12, "end": 20, "label": "LOC"}]},
    ]
    data = read_tagged_jsonl(jsonl(tmp_path / "s.jsonl", *records))
    assert data.tags[0] == ["B-PER", "I-PER", "O", "B-LOC", "O", "B-LOC", "O"]
    assert data.tokens[2] == ["Ann", "Bob", "met", "New", "York", "ers"]
    assert data.tags[2] == ["B-PER", "B-PER", "O", "B-LOC", "I-LOC", "O"]
    for rec, tags, offsets, text in zip(records, data.tags, data.offsets, data.texts):
        assert text == rec["text"]
        want = sorted(({**s, "text": text[s["start"]:s["end"]]} for s in rec["spans"]), key=lambda s: s["start"])
        assert spans_from_tags(tags, offsets, text) == want
    assert [data.texts[0][s:e] for s, e in data.offsets[0]] == data.tokens[0]


def test_tokenize_with_offsets_keeps_marks_and_maps_back():
    text = "Dr. Müller (cafe\u0301) पढ़ाई 3.5%"
    words = tokenize_with_offsets(text)
    want = ["Dr", ".", "Müller", "(", "cafe\u0301", ")", "पढ़ाई", "3", ".", "5", "%"]
    assert [w for w, _, _ in words] == want
    assert all(text[s:e] == w for w, s, e in words)


def test_hostile_text_does_not_crash(tmp_path):
    path = jsonl(
        tmp_path / "h.jsonl",
        '{"tokens": ["a\\ud800b", "nul\\u0000"], "tags": ["B-X", "O"]}',
        '{"text": "x\\udfff y\\u0000", "spans": [{"start": 0, "end": 2, "label": "X"}]}',
    )
    with pytest.raises(DataError, match="has 'text' but the file's first object"):
        read_tagged_jsonl(path)
    data = read_tagged_jsonl(path, skip_bad_rows=True)
    assert data.tokens == [["a\ufffdb", "nul\0"]]  # lone surrogates replaced one for one, NUL kept
    out = io.StringIO()
    write_conll(out, data.tokens, data.tags, data.tags)
    assert out.getvalue() == "a\ufffdb B-X B-X\nnul\0 O O\n\n"
    spans = read_tagged_jsonl(jsonl(tmp_path / "s.jsonl", '{"text": "x\\udfff y\\u0000", "spans": []}'))
    assert spans.texts == ["x\ufffd y\0"] and spans.tokens == [["x", "\ufffd", "y", "\0"]]


def test_ten_megabyte_lines(tmp_path):
    big = "w" * 10_000_000
    data = read_conll(write(tmp_path / "big.txt", f"{big} B-X \n\nb O\n"))
    assert len(data.tokens[0][0]) == 10_000_000
    # 200,000 words of 49 letters and 100,000 spans: anything quadratic in either would not finish.
    words = " ".join(["w" * 49] * 200_000)
    obj = {"text": words, "spans": [{"start": 50 * i, "end": 50 * i + 49, "label": "W"} for i in range(0, 200_000, 2)]}
    data = read_tagged_jsonl(jsonl(tmp_path / "big.jsonl", obj))
    assert len(words) == 10_000_000 - 1 and len(data.tokens[0]) == 200_000
    assert data.tags[0][:3] == ["B-W", "O", "B-W"]
    assert len(spans_from_tags(data.tags[0], data.offsets[0], words)) == 100_000
    assert not looks_like_conll(write(tmp_path / "one_line.txt", big))


def test_read_tagged_picks_the_reader(tmp_path):
    record = {"tokens": ["Rome"], "tags": ["B-LOC"]}
    assert read_tagged(jsonl(tmp_path / "a.jsonl", record)).tags == [["B-LOC"]]
    assert read_tagged(jsonl(tmp_path / "a.data", record)).tags == [["B-LOC"]]  # sniffed from content
    assert read_tagged(write(tmp_path / "a.conll", "Rome B-LOC\n")).tags == [["B-LOC"]]
    assert read_tagged(write(tmp_path / "b.txt", "{ O\n")).tokens == [["{"]]


def test_looks_like_conll(tmp_path):
    assert looks_like_conll(write(tmp_path / "a.txt", "-DOCSTART- O\n\nEU NNP B-ORG\nrejects VBZ O\n"))
    assert looks_like_conll(write(tmp_path / "b.txt.gz", "Rome U-LOC\nis O\n"))
    assert not looks_like_conll(write(tmp_path / "c.csv", "text,label\nhello,O\n"))
    assert not looks_like_conll(write(tmp_path / "d.tsv", "text\tlabel\ngood film\tpos\n"))
    assert not looks_like_conll(write(tmp_path / "e.txt", "a O\nb c B-X\n"))  # column counts differ
    assert not looks_like_conll(jsonl(tmp_path / "f.jsonl", {"tokens": ["a"], "tags": ["O"]}))
    assert not looks_like_conll(tmp_path / "missing.txt") and not looks_like_conll(tmp_path)


def test_write_conll_reads_back(tmp_path):
    path = tmp_path / "out.txt"
    write_conll(path, [["New York", "is"], ["big"]], [["B-LOC", "O"], ["O"]], [["B-LOC", "B-X"], ["O"]])
    assert path.read_text() == "New_York B-LOC B-LOC\nis O B-X\n\nbig O O\n\n"
    back = read_conll(path)
    assert back.tokens == [["New_York", "is"], ["big"]] and back.tags == [["B-LOC", "B-X"], ["O"]]
    binary = io.BytesIO()
    write_conll(binary, [["é"]], [["O"]], [["O"]])
    assert binary.getvalue() == "é O O\n\n".encode()
    with pytest.raises(ValueError, match="sentence 0"):
        write_conll(io.StringIO(), [["a"]], [["O"]], [["O", "O"]])


# ---------------------------------------------------------------- scheme conversion

_CHUNK = st.one_of(st.just(None), st.tuples(st.sampled_from(["PER", "LOC", "X-Y"]), st.integers(1, 4)))


@given(st.lists(_CHUNK, max_size=12))
def test_bioes_round_trip_of_valid_iob2(chunks):
    tags = []
    for chunk in chunks:
        if chunk is None:
            tags.append("O")
        else:
            typ, n = chunk
            tags += [f"B-{typ}"] + [f"I-{typ}"] * (n - 1)
    bioes = iob2_to_bioes(tags)
    assert to_iob2(bioes, "bioes") == tags
    assert sum(t[0] in "BS" for t in bioes) == sum(t[0] == "B" for t in tags)  # one opening per chunk


def test_conversion_examples():
    assert iob2_to_bioes(["B-X", "I-X", "I-X", "B-X", "O", "I-Y"]) == ["B-X", "I-X", "E-X", "S-X", "O", "S-Y"]
    assert to_iob2(["I-X", "I-X", "B-X", "I-Y", "O"], "iob1") == ["B-X", "I-X", "B-X", "B-Y", "O"]
    with pytest.raises(DataError, match="not part of the iob2 scheme"):
        to_iob2(["E-X"], "iob2")


@pytest.mark.slow
@pytest.mark.parametrize("split, count", [("train", 14041), ("valid", 3250), ("test", 3453)])
def test_full_shared_conll2003(split, count):
    path = CONLL / f"{split}.txt"
    if not path.exists():
        pytest.skip("../shared/data/conll2003 is not beside the repository")
    report = ReadReport(str(path))
    data = read_conll(path, report=report)
    assert len(data) == count and report.rows_read == count and not report.skipped
    assert data.scheme == "iob2" and data.repaired == 0
    assert data.entity_types() == ["LOC", "MISC", "ORG", "PER"]
