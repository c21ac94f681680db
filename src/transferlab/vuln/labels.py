"""Where the cascade's labels come from, read from the shared security data (or the same files anywhere else).

Stage 1, security-relevant or not:
- **Matomo** (``matomo_issues.csv.gz``): 19,085 GitHub issues and pull requests; positive = the maintainers'
  ``c: Security`` label (``is_sec``, 1.3%).  A label someone chose to add, not a review: security issues nobody
  labelled are negatives here.  Split by time: train before ``validation_from``, validation until ``test_from``,
  test after it (the benchmark's honest protocol; the deployed model is the one trained this way).
- **FARSEC Chromium** (``farsec_chromium.csv.gz``): 44,889 bug reports, positive = Chromium's security bug type
  (0.43%).  A different project and tracker: it widens what "security" looks like, and it is all training data.
The labels column is never part of the input text (``c: Security`` would give the answer away).

Stage 2, probable vulnerability versus ordinary security discussion or hardening:
- positives: vulnerability-fix commit messages (VulCurator TensorFlow, trailers and "Internal change" stubs
  removed), CVE descriptions of the same fixes (``tf_fixes.csv``, the project boilerplate removed), the SAP
  project-kb vulnerability statements, and FARSEC's Chromium security bug reports (vulnerabilities written as bug
  reports, which keeps "how it is written" from giving the class away);
- negatives: Matomo's security-labelled issues and pull requests (hardening, features, discussion).  Some of
  them are real vulnerabilities ("CSRF in ..."), so this class is noisy, and it is the smaller one (247).
Rows about the same vulnerability (a CVE and its fix commit) share a group and land in the same part.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.records import Examples
from ..errors import DataError

SECURITY, NOT_SECURITY = "security", "other"
VULNERABILITY, NOT_VULNERABILITY = "vulnerability", "security-not-vuln"
MAX_CHARS = 6000

_TRAILER = re.compile(r"^\s*(PiperOrigin-RevId|Change-Id|Signed-off-by|Reviewed-by|Co-authored-by)\s*:.*$",
                      re.IGNORECASE | re.MULTILINE)
_TF_BOILERPLATE = [re.compile(p, re.IGNORECASE) for p in (
    r"TensorFlow is an open source (machine learning|platform for machine learning|ML) (framework|platform)[^.]*\.\s*",
    r"The fix will be included in TensorFlow [^.]*(\.\d+)*[^.]*\.\s*",
    r"We will also cherrypick this commit on[^.]*(\.\d+)*[^.]*(\.\d+)*[^.]*(\.\d+)*[^.]*\.\s*",
    r"[^.]*(are|is) also affected and still in supported range\.\s*",
)]


def shared_folder(path: str | Path | None, env: str, name: str) -> Path:
    """A folder of the shared data: ``path`` if given, else ``$env``, else ``../shared/data/NAME`` from the working
    directory, else the same beside this checkout (the project's layout).  Not checked here."""
    import os

    path = path or os.environ.get(env)
    if path:
        return Path(path)
    candidates = (Path("../shared/data") / name, Path(__file__).resolve().parents[3].parent / "shared" / "data" / name)
    return next((c for c in candidates if c.is_dir()), candidates[0])


def data_dir(path: str | Path | None = None) -> Path:
    """The folder with ``matomo_issues.csv.gz``, ``farsec_chromium.csv.gz``, ``vulcurator/``, ``sap_project_kb/``."""
    folder = shared_folder(path, "TRANSFERLAB_SECURITY_DATA", "security")
    if not folder.is_dir():
        raise DataError("the security data folder does not exist", where=str(folder),
                        hint="pass --data-dir with matomo_issues.csv.gz, farsec_chromium.csv.gz, vulcurator/, "
                             "sap_project_kb/ (../shared/data/security in this project)")
    return folder


def _need(path: Path) -> Path:
    if not path.exists():
        raise DataError("a label source is missing", where=str(path),
                        hint="see the README section on the cascade's label sources")
    return path


def issue_text(title, body) -> str:
    """What the models read from an issue, a bug or a mail: the title, then the body (quoted mail lines out)."""
    title = "" if title is None or (isinstance(title, float) and np.isnan(title)) else str(title)
    body = "" if body is None or (isinstance(body, float) and np.isnan(body)) else str(body)
    body = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith(">"))
    return f"{title}\n\n{body}".strip()[:MAX_CHARS]


def clean_commit_message(message: str) -> str:
    return _TRAILER.sub("", message or "").strip()


def clean_tf_description(text: str) -> str:
    for pattern in _TF_BOILERPLATE:
        text = pattern.sub("", text)
    return text.strip()


@dataclass
class Parts:
    """Train, validation and test examples of one stage, with what they came from (``columns['origin']``)."""

    train: Examples
    validation: Examples
    test: Examples
    description: dict = field(default_factory=dict)

    def counts(self) -> dict:
        return {name: {"n": len(ex), **{lab: int(sum(1 for y in ex.labels if y == lab))
                                        for lab in sorted(set(ex.labels))}}
                for name, ex in (("train", self.train), ("validation", self.validation), ("test", self.test))}


def _examples(frame: pd.DataFrame, source: str) -> Examples:
    return Examples(texts=frame["text"].tolist(), labels=frame["label"].tolist(),
                    origins=frame["where"].tolist(), columns={"origin": frame["origin"].tolist()}, source=source)


def read_matomo(folder: Path) -> pd.DataFrame:
    path = _need(folder / "matomo_issues.csv.gz")
    frame = pd.read_csv(path)
    missing = {"title", "body", "is_sec", "created_at", "number"} - set(frame.columns)
    if missing:
        raise DataError(f"columns {sorted(missing)} are missing", where=str(path))
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, errors="coerce")
    frame["text"] = [issue_text(t, b) for t, b in zip(frame["title"], frame["body"])]
    frame["where"] = [f"{path.name}:#{n}" for n in frame["number"]]
    frame["origin"] = "matomo"
    return frame


def read_farsec(folder: Path) -> pd.DataFrame:
    path = _need(folder / "farsec_chromium.csv.gz")
    frame = pd.read_csv(path)
    frame["text"] = frame["text"].fillna("").astype(str).str.slice(0, MAX_CHARS)
    frame["where"] = [f"{path.name}:{i}" for i in frame["id"]]
    frame["origin"] = "farsec"
    return frame


def stage1(folder: str | Path | None = None, *, validation_from: str = "2018-01-01",
           test_from: str = "2020-01-01", farsec: bool = True, max_farsec_negatives: int | None = None,
           seed: int = 13) -> Parts:
    """Security-relevant or not.  Matomo split by creation time; FARSEC (all of it) joins the training part."""
    folder = data_dir(folder)
    matomo = read_matomo(folder)
    matomo["label"] = np.where(matomo["is_sec"] == 1, SECURITY, NOT_SECURITY)
    from ..data.splits import time_cutoffs

    dated = matomo[matomo["created_at"].notna()].reset_index(drop=True)
    idx = time_cutoffs(dated["created_at"], validation_from, test_from)
    train, validation, test = (dated.iloc[i] for i in idx)
    parts = [train]
    if farsec:
        fs = read_farsec(folder)
        fs["label"] = np.where(fs["security"] == 1, SECURITY, NOT_SECURITY)
        if max_farsec_negatives is not None:
            neg = fs[fs["label"] == NOT_SECURITY]
            neg = neg.sample(n=min(max_farsec_negatives, len(neg)), random_state=seed)
            fs = pd.concat([fs[fs["label"] == SECURITY], neg])
        parts.append(fs)
    train = pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=seed)
    for name, part in (("validation", validation), ("test", test)):
        if (part["label"] == SECURITY).sum() == 0:
            raise DataError(f"the {name} part has no security-labelled item", where="stage 1 time split",
                            hint="move validation_from / test_from")
    return Parts(_examples(train, "stage1:train"), _examples(validation, "stage1:validation"),
                 _examples(test, "stage1:test"),
                 {"validation_from": validation_from, "test_from": test_from, "farsec": farsec,
                  "max_farsec_negatives": max_farsec_negatives,
                  "positive": "Matomo 'c: Security' label; FARSEC Chromium security bug type",
                  "split": "Matomo by created_at (train < validation_from <= validation < test_from <= test); "
                           "FARSEC all in train"})


def stage2_frame(folder: str | Path | None = None) -> pd.DataFrame:
    """Every stage-2 row with its label, origin and group (rows about one vulnerability share a group)."""
    folder = data_dir(folder)
    rows: list[dict] = []
    vc = folder / "vulcurator"
    msgs = pd.read_csv(_need(vc / "tf_vfc_commit_messages.csv"))
    for sha, msg in zip(msgs["commit_id"], msgs["msg"]):
        text = clean_commit_message(str(msg))
        if len(text.split()) >= 4:  # "Internal change" says nothing
            rows.append({"text": text, "label": VULNERABILITY, "origin": "vulcurator-commit", "group": f"commit:{sha}",
                         "where": f"tf_vfc_commit_messages.csv:{sha}"})
    fixes = pd.read_csv(_need(vc / "tf_fixes.csv"))
    for cve, desc, url in zip(fixes["cve"], fixes["description"], fixes["commit_url"]):
        text = clean_tf_description(str(desc))
        sha = str(url).rstrip("/").rsplit("/", 1)[-1]
        if text:
            rows.append({"text": text, "label": VULNERABILITY, "origin": "vulcurator-cve", "group": f"commit:{sha}",
                         "where": f"tf_fixes.csv:{cve}"})
    with open(_need(folder / "sap_project_kb" / "statements.jsonl"), encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"not JSON ({exc.msg})", where=f"statements.jsonl:{line_no}") from None
            desc = (item.get("description") or "").strip()
            if desc:
                rows.append({"text": desc[:MAX_CHARS], "label": VULNERABILITY, "origin": "sap-statement",
                             "group": f"vuln:{item.get('vulnerability_id')}",
                             "where": f"statements.jsonl:{item.get('vulnerability_id')}"})
    fs = read_farsec(folder)
    for _, r in fs[fs["security"] == 1].iterrows():
        rows.append({"text": r["text"], "label": VULNERABILITY, "origin": "farsec-security", "group": f"farsec:{r['id']}",
                     "where": r["where"]})
    matomo = read_matomo(folder)
    for _, r in matomo[matomo["is_sec"] == 1].iterrows():
        rows.append({"text": r["text"], "label": NOT_VULNERABILITY, "origin": "matomo-security",
                     "group": f"matomo:{r['number']}", "where": r["where"]})
    return pd.DataFrame(rows)


def stage2(folder: str | Path | None = None, *, fractions=(0.7, 0.15, 0.15), seed: int = 13) -> Parts:
    """Probable vulnerability or not, among security items: a stratified split by group (held-out test part)."""
    frame = stage2_frame(folder)
    rng = np.random.default_rng(seed)
    part = {}
    for (label, origin), chunk in frame.groupby(["label", "origin"]):
        groups = np.array(chunk["group"].unique(), dtype=object)
        rng.shuffle(groups)
        n_train = int(round(fractions[0] * len(groups)))
        n_val = int(round(fractions[1] * len(groups)))
        for i, g in enumerate(groups):
            part.setdefault(g, "train" if i < n_train else "validation" if i < n_train + n_val else "test")
    frame["part"] = frame["group"].map(part)
    chosen = {name: frame[frame["part"] == name].sample(frac=1.0, random_state=seed)
              for name in ("train", "validation", "test")}
    return Parts(*(_examples(chosen[n], f"stage2:{n}") for n in ("train", "validation", "test")),
                 {"fractions": list(fractions), "seed": seed,
                  "positive": "VulCurator fix commit messages + their CVE descriptions, SAP project-kb statements, "
                              "FARSEC Chromium security bugs",
                  "negative": "Matomo 'c: Security' issues and pull requests",
                  "split": "stratified by label and origin, grouped by vulnerability / commit"})
