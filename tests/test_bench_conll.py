"""The CoNLL-2003 benchmark's bookkeeping: targets judged on the variant chosen by validation, peer margins,
results.md; and a tiny end-to-end run on a slice of the real files."""

import json

import pytest

from transferlab.bench import conll2003


def row(name, f1, val_f1, kind="ours"):
    return {"name": name, "kind": kind, "status": "ok", "f1": f1, "best": {"val_f1": val_f1}}


def test_verdicts_pick_the_variant_by_validation_not_test():
    results = {"rows": [row("minilm-finetune", 86.0, 0.90), row("minilm-finetune-case", 85.0, 0.91),
                        row("hf-trainer-minilm", 84.6, None, "hf-trainer"), row("glove-bilstm-crf", 86.5, 0.9)]}
    lines = "\n".join(conll2003.verdicts(results))
    assert "`minilm-finetune` ≥ 88.0: **not met** (85.00, row `minilm-finetune-case`" in lines
    assert "`minilm-finetune-case` vs `hf-trainer-minilm`: +0.40 F1 (**not met**" in lines
    assert "`minilm-finetune` vs `hf-trainer-minilm`: +1.40 F1" in lines
    assert "`glove-bilstm-crf` ≥ 86.0: **met** (86.50" in lines and "`mpnet-finetune` ≥ 91.0: not run" in lines
    assert "what the uncased MiniLM loses" in lines and "-1.00 F1" in lines
    # a third variant, better on validation, takes the target; what context adds is reported beside casing
    results["rows"].append(row("minilm-finetune-context", 88.2, 0.93))
    lines = "\n".join(conll2003.verdicts(results))
    assert "`minilm-finetune` ≥ 88.0: **met** (88.20, row `minilm-finetune-context`" in lines
    assert "`minilm-finetune-case` vs `hf-trainer-minilm`: +0.40 F1\n" in lines + "\n"
    assert "what document context adds to MiniLM (both with casing): +3.20 F1" in lines


@pytest.mark.slow
def test_a_reduced_run_writes_rows_and_keeps_earlier_ones(tmp_path):
    data = conll2003.load("../shared/data/conll2003", max_train=60, max_test=40)
    assert len(data["train"]) == 60 and len(data["test"]) == 40
    out = tmp_path / "out"
    first = conll2003.run("../shared/data/conll2003", out, rows=["glove-bilstm"], max_train=60, max_test=40,
                          epochs=1, announce=lambda m: None)
    assert first["rows"][0]["status"] == "ok" and first["setting"] == "reduced"
    conll2003.run("../shared/data/conll2003", out, rows=["spacy-sm"], max_train=60, max_test=40, epochs=1,
                  announce=lambda m: None)
    saved = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in saved["rows"]] == ["glove-bilstm", "spacy-sm"]
    md = (out / "results.md").read_text()
    assert "| glove-bilstm |" in md and "spacy-sm" in md and (out / "rows" / "glove-bilstm" / "confusion.png").exists()
    assert (out / "rows" / "spacy-sm" / "test_predictions.conll").read_text().count("\n\n") == 40
