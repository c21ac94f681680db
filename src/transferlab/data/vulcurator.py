"""Vulnerability descriptions linked to the commits that fix them (VulCurator's TensorFlow set).

``tf_fixes.csv`` (cve, description, commit_url) says which commits fix which CVE; ``tf_vfc_commit_messages.csv``
(commit_id, repo, msg, label) holds the commit messages.  Every commit with a message is a candidate for every
CVE, so a ranking run scores the whole pool, as a maintainer searching the history would.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..errors import ConfigError, DataError

FIXES_FILE = "tf_fixes.csv"
MESSAGES_FILE = "tf_vfc_commit_messages.csv"
FIXES_COLUMNS = ("cve", "description", "commit_url")
MESSAGES_COLUMNS = ("commit_id", "msg")
SPLIT_NAMES = ("train", "val", "test")

_SHA = re.compile(r"/commit/([0-9a-fA-F]{7,40})\b")
# Git trailers ("Key: value" lines that tools append) plus the machine-written ids of Google's export pipeline.
# Only keys ending in -by / -Id / -RevId (and Cc) count, so a subject such as "TFLite: fix ..." is kept, and so
# are "Fixes:" / "Bug:" lines, which may carry words.
_TRAILER = re.compile(r"^\s*(?:[A-Za-z][\w-]*-(?:by|id|revid)|Cc)\s*:\s*\S", re.IGNORECASE)


@dataclass
class FixLinks:
    cves: list[str]
    descriptions: list[str]
    commits: list[str]
    messages: list[str]
    gold: list[set[int]]
    source: str
    dropped_cves: int = 0  # CVEs whose fix commits all lack a message: nothing in the pool could match them

    def __len__(self) -> int:
        return len(self.cves)

    def subset(self, cve_indices: Iterable[int]) -> "FixLinks":
        """The given CVEs, in the given order, against the FULL candidate pool: cutting the pool per split would
        make the test ranking easier than the task it stands for."""
        idx = [int(i) for i in cve_indices]
        _check_indices(idx, len(self.cves))
        return FixLinks(
            cves=[self.cves[i] for i in idx],
            descriptions=[self.descriptions[i] for i in idx],
            commits=self.commits,
            messages=self.messages,
            gold=[set(self.gold[i]) for i in idx],
            source=self.source,
            dropped_cves=self.dropped_cves,
        )


def clean_message(msg: str) -> str:
    """Drop git trailers (``PiperOrigin-RevId:``, ``Change-Id:``, ``Signed-off-by:``, ``Reviewed-by:`` ...).

    They are ids, hashes and e-mail addresses that never occur in a CVE description: they only add noise to
    lexical scores (longer documents under BM25 length normalisation, rare "words" in TF-IDF vectors) and eat
    an encoder's token budget.  Everything else, subject and body, is kept as written.
    """
    kept = [line for line in str(msg).splitlines() if not _TRAILER.match(line)]
    return "\n".join(kept).strip()


def load_fix_links(folder: str | Path, *, clean: bool = True) -> FixLinks:
    """CVEs with their descriptions, the pool of commits that have a message, and which commits fix which CVE.

    ``clean`` passes each message through :func:`clean_message`.  CVEs none of whose fix commits has a message
    are dropped and counted in ``dropped_cves``.
    """
    folder = Path(folder)
    fixes = _read_rows(folder / FIXES_FILE, FIXES_COLUMNS)
    commits, messages = _read_messages(folder / MESSAGES_FILE, clean)
    position = {sha: i for i, sha in enumerate(commits)}

    cves: list[str] = []
    descriptions: list[str] = []
    gold: list[set[int]] = []
    seen: dict[str, int] = {}
    all_cves: set[str] = set()
    for line, row in fixes:
        where = f"{folder / FIXES_FILE}:line {line}"
        cve, description, sha = _fix_row(row, where)
        all_cves.add(cve)
        if sha not in position:
            continue
        if cve not in seen:
            seen[cve] = len(cves)
            cves.append(cve)
            descriptions.append(description)
            gold.append(set())
        gold[seen[cve]].add(position[sha])
    return FixLinks(cves=cves, descriptions=descriptions, commits=commits, messages=messages, gold=gold,
                    source=str(folder), dropped_cves=len(all_cves) - len(cves))


def grouped_split(n_cves: int, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 13) -> dict[str, list[int]]:
    """Train / val / test CVE indices.  Each CVE is one group, so all its (description, commit) pairs land in
    one part and a test description is never seen in training."""
    fracs = _check_fractions(fractions)
    if n_cves < 0:
        raise ConfigError(f"n_cves must be >= 0, got {n_cves}")
    order = np.random.default_rng(seed).permutation(n_cves)
    sizes = _allocate(n_cves, fracs)
    bounds = np.cumsum([0] + sizes)
    return {name: sorted(int(i) for i in order[bounds[k]:bounds[k + 1]]) for k, name in enumerate(SPLIT_NAMES)}


def training_pairs(links: FixLinks, cve_idx: Iterable[int], negatives_per_positive: int = 4,
                   seed: int = 13, description_negatives: int = 0) -> tuple[list[tuple[str, str]], list[int]]:
    """(description, message) pairs: label 1 for each fix commit, 0 for commits drawn from those not fixing it.

    Negatives come only from the fix commits of the CVEs in ``cve_idx``: a commit of a validation or test CVE
    used as a negative would be trained on (pushed away from everything it is paired with), so the test ranking
    would no longer measure commits the model has never seen.  Negatives are chosen by message *text*: TensorFlow
    fixes several CVEs with commits of one message ("Prevent division by 0" five times), and such a message drawn
    as a negative for a CVE it also fixes would be labelled 0 and 1 at once.

    ``description_negatives``: for each positive (description, message), that many more pairs of the same message
    with descriptions of other CVEs, labelled 0.  With message-side negatives alone a message that fixes several
    training CVEs is positive more often than not, whatever it is paired with, and a pair model learns the
    message's look instead of the match; pairing every positive message with other descriptions too leaves the
    message alone nothing to predict (the query-side negatives of cross-encoder training recipes).
    """
    idx = [int(i) for i in cve_idx]
    _check_indices(idx, len(links.cves))
    if negatives_per_positive < 0 or description_negatives < 0:
        raise ConfigError(f"negative counts must be >= 0, got {negatives_per_positive} and {description_negatives}")
    allowed = sorted(set().union(*(links.gold[i] for i in idx))) if idx else []
    gold_text = {i: {links.messages[j] for j in links.gold[i]} for i in idx}
    rng = np.random.default_rng(seed)
    pairs: list[tuple[str, str]] = []
    labels: list[int] = []

    def draw(pool: list, k: int) -> list:
        take = min(k, len(pool))
        return [pool[int(n)] for n in rng.choice(len(pool), size=take, replace=False)] if take else []

    for i in idx:
        description = links.descriptions[i]
        others = [j for j in allowed if links.messages[j] not in gold_text[i]]
        for j in sorted(links.gold[i]):
            pairs.append((description, links.messages[j]))
            labels.append(1)
            for n in draw(others, negatives_per_positive):
                pairs.append((description, links.messages[n]))
                labels.append(0)
            if description_negatives:
                strangers = [c for c in idx if links.messages[j] not in gold_text[c]
                             and links.descriptions[c] != description]
                for c in draw(strangers, description_negatives):
                    pairs.append((links.descriptions[c], links.messages[j]))
                    labels.append(0)
    return pairs, labels


# ------------------------------------------------------------------------------------------------- helpers
def _read_rows(path: Path, required: Sequence[str]) -> list[tuple[int, dict]]:
    """Rows with their line number (data row number + 1 for the header)."""
    if not path.is_file():
        raise DataError(f"file not found: {path}", where=str(path),
                        hint=f"the VulCurator folder needs {FIXES_FILE} and {MESSAGES_FILE}")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"missing column(s) {', '.join(missing)}; found {reader.fieldnames}",
                                where=str(path), hint=f"the file needs columns {', '.join(required)}")
            return [(n + 1, row) for n, row in enumerate(reader, start=1)]
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", where=str(path),
                        hint="re-save the file as UTF-8") from None
    except csv.Error as exc:
        raise DataError(f"not a readable CSV file: {exc}", where=str(path)) from None


def _read_messages(path: Path, clean: bool) -> tuple[list[str], list[str]]:
    commits: list[str] = []
    messages: list[str] = []
    seen: set[str] = set()
    for line, row in _read_rows(path, MESSAGES_COLUMNS):
        sha = (row.get("commit_id") or "").strip().lower()
        if not sha:
            raise DataError("empty commit_id", where=f"{path}:line {line}", hint="fill in the commit sha")
        if sha in seen:  # one candidate per commit: a duplicate would compete with itself in the ranking
            continue
        seen.add(sha)
        msg = row.get("msg") or ""
        commits.append(sha)
        messages.append(clean_message(msg) if clean else msg)
    return commits, messages


def _fix_row(row: dict, where: str) -> tuple[str, str, str]:
    cve = (row.get("cve") or "").strip()
    description = (row.get("description") or "").strip()
    url = (row.get("commit_url") or "").strip()
    if not cve:
        raise DataError("empty cve", where=where, hint="fill in the CVE id or remove the row")
    if not description:
        raise DataError(f"empty description for {cve}", where=where, hint="fill in the description or remove the row")
    found = _SHA.search(url)
    if not found:
        raise DataError(f"commit_url has no commit sha: {url!r}", where=where,
                        hint="use a URL like https://github.com/<owner>/<repo>/commit/<sha>")
    return cve, description, found.group(1).lower()


def _check_indices(idx: list[int], n: int) -> None:
    bad = [i for i in idx if not 0 <= i < n]
    if bad:  # a caller bug, not bad data
        raise ValueError(f"CVE index {bad[0]} out of range 0..{n - 1}")


def _check_fractions(fractions: Sequence[float]) -> list[float]:
    fracs = [float(f) for f in fractions]
    if len(fracs) != 3 or any(f < 0 for f in fracs) or abs(sum(fracs) - 1.0) > 1e-6:
        raise ConfigError(f"fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    return fracs


def _allocate(n: int, fracs: list[float]) -> list[int]:
    """Largest-remainder rounding, so the part sizes add up to exactly n."""
    raw = [n * f for f in fracs]
    sizes = [int(np.floor(r)) for r in raw]
    for k in sorted(range(len(raw)), key=lambda k: sizes[k] - raw[k])[: n - sum(sizes)]:
        sizes[k] += 1
    return sizes
