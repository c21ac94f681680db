"""Models saved by an older TransferLab keep loading and predicting the same numbers.

tests/fixtures/models_v1 holds folders written by format version 1 (commit dc15a77, see make.py there) with the
probabilities they gave then; a format change that breaks them fails here."""

import json
from pathlib import Path

import numpy as np
import pytest

from transferlab.models.classifier import TextClassifier

V1 = Path(__file__).parent / "fixtures" / "models_v1"
EXPECTED = json.loads((V1 / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_version_1_folders_load_and_predict_as_they_did(name):
    case = EXPECTED[name]
    assert json.loads((V1 / name / "config.json").read_text())["format_version"] == 1
    probe = [tuple(p) if isinstance(p, list) else p for p in case["probe"]]
    clf = TextClassifier.load(V1 / name, device="cpu")
    np.testing.assert_allclose(clf.predict_proba(probe), np.asarray(case["proba"]), rtol=0, atol=1e-5)
    assert clf.predict(probe) == case["predict"]
