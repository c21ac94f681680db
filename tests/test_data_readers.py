import bz2
import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from transferlab.data.readers import ReadReport, read_examples
from transferlab.data.splits import split_examples
from transferlab.errors import DataError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IMDB = SHARED_DATA / "imdb" / "movie_reviews.csv.bz2"

CSV_TEXT = 'text,label,extra\nhello world,pos,a\n"multi\nline, with comma",neg,b\nbye,pos,c\n'


def write(path: Path, text: str) -> Path:
    opener = {".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix, open)
    with opener(path, "wb") as f:
        f.write(text.encode("utf-8"))
    return path


def test_csv_reads_texts_labels_origins_and_kept_columns(tmp_path):
    path = write(tmp_path / "d.csv", CSV_TEXT)
    ex, report = read_examples(path, text_col="text", label_col="label", keep_cols=["extra"])
    assert ex.texts == ["hello world", "multi\nline, with comma", "bye"]
    assert ex.labels == ["pos", "neg", "pos"] and not ex.multilabel
    # The quoted field spans lines 3-4, so the next record starts on line 5.
    assert ex.origins == ["d.csv:line 2", "d.csv:line 3", "d.csv:line 5"]
    assert ex.columns == {"extra": ["a", "b", "c"]}
    assert ex.source == str(path) and ex.pairs is None
    assert report.rows_read == 3 and report.skipped == []


@pytest.mark.parametrize("name", ["d.csv.gz", "d.csv.bz2", "d.tsv", "d.tsv.gz", "d.tsv.bz2"])
def test_compressed_and_tab_separated(tmp_path, name):
    text = CSV_TEXT.replace(",", "\t") if ".tsv" in name else CSV_TEXT
    ex, _ = read_examples(write(tmp_path / name, text), text_col="text", label_col="label")
    assert ex.labels == ["pos", "neg", "pos"]
    assert ex.origins[2] == f"{name}:line 5"


def test_fmt_overrides_suffix(tmp_path):
    path = write(tmp_path / "data.txt", "text\tlabel\nhi\tx\n")
    with pytest.raises(DataError, match="cannot tell the format"):
        read_examples(path, text_col="text")
    ex, _ = read_examples(path, text_col="text", label_col="label", fmt="tsv")
    assert ex.labels == ["x"]


def test_unlabeled_text_and_byte_order_mark(tmp_path):
    ex, _ = read_examples(write(tmp_path / "d.csv", "\ufefftext\nsome text\n\n"), text_col="text")
    assert ex.texts == ["some text"] and ex.labels is None


def test_pair_columns(tmp_path):
    path = write(tmp_path / "p.csv", "premise,hypothesis,label\nA man sleeps.,A person rests.,entailment\n")
    ex, _ = read_examples(path, text_col="premise", pair_col="hypothesis", label_col="label")
    assert ex.is_pair and ex.pairs == ["A person rests."] and ex.texts == ["A man sleeps."]


def test_multilabel_with_separator(tmp_path):
    path = write(tmp_path / "m.csv", "text,tags\na,bug| security \nb,\nc,feature\n")
    ex, _ = read_examples(path, text_col="text", label_col="tags", label_sep="|")
    assert ex.multilabel and ex.labels == [["bug", "security"], [], ["feature"]]


@pytest.mark.parametrize("name", ["d.jsonl", "d.jsonl.gz", "d.json.gz", "d.ndjson"])
def test_jsonl_numbers_and_lists(tmp_path, name):
    rows = [{"t": "one", "y": 1, "tags": ["a", "b"]}, {"t": "two", "y": 0, "tags": "c"}]
    path = write(tmp_path / name, "\n".join(json.dumps(r) for r in rows) + "\n\n")
    ex, report = read_examples(path, text_col="t", label_col="y")
    assert ex.labels == ["1", "0"] and ex.origins == [f"{name}:line 1", f"{name}:line 2"]
    ex, _ = read_examples(path, text_col="t", label_col="tags")
    assert ex.multilabel and ex.labels == [["a", "b"], ["c"]]
    assert report.rows_read == 2


def test_hf_saved_dataset_with_classlabel(tmp_path):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    ds = datasets.Dataset.from_dict({"text": ["bad", "good"], "label": [0, 1]}, features=features)
    ds.save_to_disk(str(tmp_path / "ds"))
    ex, report = read_examples(tmp_path / "ds", text_col="text", label_col="label")
    assert ex.labels == ["neg", "pos"] and ex.origins == ["ds:row 0", "ds:row 1"] and report.rows_read == 2


def test_hf_dataset_dict_concatenates_splits(tmp_path):
    import datasets

    dd = datasets.DatasetDict(
        train=datasets.Dataset.from_dict({"text": ["a", "b"], "label": ["x", "y"]}),
        test=datasets.Dataset.from_dict({"text": ["c"], "label": ["x"]}),
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    ex, _ = read_examples(tmp_path / "dd", text_col="text", label_col="label")
    assert ex.texts == ["a", "b", "c"] and ex.columns["split"] == ["train", "train", "test"]
    assert ex.origins[2] == "dd/test:row 0"
    assert split_examples(ex, "column:split")["test"].texts == ["c"]
    ex, _ = read_examples(tmp_path / "dd", text_col="text", hf_split="test")
    assert ex.texts == ["c"] and "split" not in ex.columns
    with pytest.raises(DataError, match="no split 'dev'"):
        read_examples(tmp_path / "dd", text_col="text", hf_split="dev")


def test_hub_name_that_cannot_be_loaded(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError) as err:
        read_examples("someone/no-such-set:cfg", text_col="text")
    msg = str(err.value)
    assert "someone/no-such-set:cfg" in msg and "does not exist locally" in msg and "ConnectionError" in msg


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as err:
        read_examples(tmp_path / "nope.csv", text_col="text")
    assert "file not found" in str(err.value) and "nope.csv" in str(err.value)


def test_missing_column_names_column_file_and_suggestion(tmp_path):
    path = write(tmp_path / "d.csv", CSV_TEXT)
    with pytest.raises(DataError) as err:
        read_examples(path, text_col="txt", label_col="label")
    msg = str(err.value)
    assert "'txt'" in msg and "d.csv" in msg and "text, label, extra" in msg and "did you mean 'text'" in msg
    with pytest.raises(DataError, match="'missing'"):
        read_examples(path, text_col="text", keep_cols=["missing"])


def test_empty_text_names_the_line(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\nfine,a\n   ,b\nok,c\n")
    with pytest.raises(DataError) as err:
        read_examples(path, text_col="text", label_col="label")
    assert "d.csv:line 3" in str(err.value) and "empty text" in str(err.value)
    ex, _ = read_examples(path, text_col="text", label_col="label", allow_empty_text=True)
    assert ex.texts == ["fine", "   ", "ok"]
    ex, report = read_examples(path, text_col="text", label_col="label", skip_bad_rows=True)
    assert ex.texts == ["fine", "ok"] and report.skipped[0][0].endswith("d.csv:line 3")


def test_missing_label(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"t": "a", "y": "x"}\n{"t": "b", "y": null}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:line 2: missing label"):
        read_examples(path, text_col="t", label_col="y")
    ex, report = read_examples(path, text_col="t", label_col="y", skip_bad_rows=True)
    assert ex.texts == ["a"] and len(report.skipped) == 1


def test_row_that_does_not_parse(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\ngood,a\ntoo,many,fields\nalso good,b\n")
    with pytest.raises(DataError) as err:
        read_examples(path, text_col="text", label_col="label")
    assert "d.csv:line 3" in str(err.value) and "--skip-bad-rows" in str(err.value)
    ex, report = read_examples(path, text_col="text", label_col="label", skip_bad_rows=True)
    assert ex.texts == ["good", "also good"] and ex.origins[1] == "d.csv:line 4"
    assert report.rows_read == 3 and len(report.skipped) == 1 and "line 3" in report.skipped[0][0]
    assert "skipped 1" in report.summary() and "expected 2 fields" in report.summary()


def test_csv_quote_error_and_nul_byte(tmp_path):
    path = write(tmp_path / "d.csv", 'text,label\n"bad"quote,a\nnul\0here,b\nok,c\n')
    with pytest.raises(DataError, match=r"d\.csv:line 2: row does not parse"):
        read_examples(path, text_col="text", label_col="label")
    ex, report = read_examples(path, text_col="text", label_col="label", skip_bad_rows=True)
    assert ex.texts == ["ok"] and [w.rsplit(":", 1)[1] for w, _ in report.skipped] == ["line 2", "line 3"]


def test_bad_json_lines(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"t": "a"}\n{"t": oops}\n[1, 2]\n{"t": "b"}\n')
    with pytest.raises(DataError, match=r"d\.jsonl:line 2: line is not valid JSON"):
        read_examples(path, text_col="t")
    ex, report = read_examples(path, text_col="t", skip_bad_rows=True)
    assert ex.texts == ["a", "b"] and len(report.skipped) == 2 and "not an object" in report.skipped[1][1]


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\nfine,a\ncaf\u00e9,b\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        read_examples(path, text_col="text", label_col="label")
    msg = str(err.value)
    assert "latin.csv:line 3" in msg and "not UTF-8" in msg and "0xe9 at byte 21" in msg and "iconv" in msg


def test_truncated_gzip(tmp_path):
    rows = "".join(f"document number {i},x\n" for i in range(5000))
    data = gzip.compress(("text,label\n" + rows).encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as err:
        read_examples(path, text_col="text", label_col="label")
    assert "truncated or corrupt" in str(err.value) and "cut.csv.gz:line " in str(err.value)


def test_million_character_document(tmp_path):
    doc = "word " * 200_000 + "end"
    path = write(tmp_path / "big.csv", f'text,label\n"{doc}",a\nsmall,b\n')
    ex, _ = read_examples(path, text_col="text", label_col="label")
    assert ex.texts[0] == doc and len(ex.texts[0]) > 1_000_000 and ex.texts[1] == "small"


def test_summary_lists_at_most_ten_skipped_rows():
    report = ReadReport("x.csv", rows_read=20, skipped=[(f"x.csv:line {i}", "bad") for i in range(12)])
    text = report.summary()
    assert text.startswith("read 20 rows from x.csv; skipped 12 (see below)")
    assert "x.csv:line 9: bad" in text and "x.csv:line 10" not in text and "2 more" in text


@pytest.mark.skipif(not IMDB.exists(), reason="shared IMDB data not available")
def test_imdb_seed_protocol():
    ex, report = read_examples(IMDB, text_col="review", label_col="sentiment")
    assert len(ex) == 50_000 and report.rows_read == 50_000 and not report.skipped
    assert "<br />" in "".join(ex.texts[:200])
    parts = split_examples(ex, "seed")
    assert [len(parts[p]) for p in ("train", "validation", "test")] == [5000, 5000, 40000]
    assert Counter(parts["test"].labels) == {"negative": 20_046, "positive": 19_954}
