"""A small, learnable stand-in for ../shared/data/security (same files, same columns), for the cascade tests.

Matomo security items are hardening, vulnerabilities use flaw words ("overflow", "injection", "bypass"), hardening
and discussion use hardening words: learnable in seconds by a GloVe model, so the tests train a real cascade.
"""

import gzip
import json
import random
from pathlib import Path

import pandas as pd

OTHER = ["the dashboard chart is slow to render", "add a dark theme to the settings page",
         "translation strings are missing in german", "the export to csv drops the last column",
         "documentation for the api is out of date", "improve the layout of the reports page",
         "upgrade the build to the newest compiler", "the tooltip overlaps the legend"]
HARDENING = ["add a content security policy header for hardening", "require the old password when changing "
             "the email", "rotate the session token after login for security", "rate limit login attempts to "
             "slow brute force guessing", "hash api tokens at rest as a security improvement"]
VULN = ["heap buffer overflow when parsing a crafted file allows remote code execution",
        "sql injection in the search parameter lets attackers read the database",
        "authentication bypass through a crafted cookie gives admin access",
        "cross site scripting in the comment field executes attacker script",
        "integer overflow leads to out of bounds write and memory corruption"]


def write_security_data(folder: Path, seed: int = 0) -> Path:
    rnd = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in range(360):
        year = 2014 + n % 8  # 2014..2021: train < 2018 <= validation < 2020 <= test
        sec = n % 6 == 0
        title = rnd.choice(HARDENING) if sec else rnd.choice(OTHER)
        rows.append({"repository": "matomo-org/matomo", "number": n + 1, "is_pr": 0, "state": "closed",
                     "created_at": f"{year}-0{1 + n % 9}-1{n % 10}T10:00:00Z", "closed_at": "",
                     "title": title, "body": f"{title}. Steps to reproduce are below. Thanks for looking.",
                     "labels": "c: Security" if sec else "", "is_sec": int(sec), "comments": 0})
    with gzip.open(folder / "matomo_issues.csv.gz", "wt", encoding="utf-8") as fh:
        pd.DataFrame(rows).to_csv(fh, index=False)
    farsec = [{"project": "chromium", "split": "train", "id": i, "security": int(i % 5 == 0),
               "text": rnd.choice(VULN) if i % 5 == 0 else rnd.choice(OTHER)} for i in range(300)]
    with gzip.open(folder / "farsec_chromium.csv.gz", "wt", encoding="utf-8") as fh:
        pd.DataFrame(farsec).to_csv(fh, index=False)
    vc = folder / "vulcurator"
    vc.mkdir(exist_ok=True)
    commits = [{"commit_id": f"{i:040x}", "repo": "tensorflow/tensorflow",
                "msg": f"Fix {rnd.choice(VULN)}\n\nPiperOrigin-RevId: {i}\nChange-Id: I{i:08x}", "label": 1}
               for i in range(40)]
    commits.append({"commit_id": "f" * 40, "repo": "tensorflow/tensorflow", "msg": "Internal change\n\nChange-Id: Ix",
                    "label": 1})
    pd.DataFrame(commits).to_csv(vc / "tf_vfc_commit_messages.csv", index=False)
    fixes = [{"cve": f"CVE-2022-{1000 + i}", "description": "Tensorflow is an Open Source Machine Learning "
              f"Framework. The implementation has a {rnd.choice(VULN)}. The fix will be included in TensorFlow "
              "2.8.0.", "commit_url": f"https://github.com/tensorflow/tensorflow/commit/{i:040x}"}
             for i in range(40)]
    pd.DataFrame(fixes).to_csv(vc / "tf_fixes.csv", index=False)
    sap = folder / "sap_project_kb"
    sap.mkdir(exist_ok=True)
    with open(sap / "statements.jsonl", "w", encoding="utf-8") as fh:
        for i in range(60):
            fh.write(json.dumps({"vulnerability_id": f"CVE-2019-{2000 + i}", "description":
                                 f"A {rnd.choice(VULN)} in the library.", "aliases": None, "fixes": []}) + "\n")
    return folder


def write_osv(folder: Path) -> Path:
    """One OSV advisory: GHSA-aaaa-bbbb-cccc (CVE-2024-1111), SQL injection in PyPI acme-parser, fixed in 1.3.0."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "A.json").write_text(json.dumps({
        "id": "GHSA-aaaa-bbbb-cccc", "aliases": ["CVE-2024-1111"], "summary": "SQL injection in acme-parser",
        "affected": [{"package": {"ecosystem": "PyPI", "name": "acme-parser"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.3.0"}]}]}]}))
    return folder
