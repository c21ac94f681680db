import csv
from pathlib import Path

import pytest

from transferlab.data.vulcurator import FixLinks, clean_message, grouped_split, load_fix_links, training_pairs
from transferlab.errors import ConfigError, DataError

VULCURATOR = Path(__file__).resolve().parents[2] / "shared" / "data" / "security" / "vulcurator"
needs_data = pytest.mark.skipif(not (VULCURATOR / "tf_fixes.csv").exists(),
                                reason="../shared/data/security/vulcurator is not beside the repository")

SHA = ["a" * 40, "b" * 40, "c" * 40, "d" * 40]


def _write(path: Path, header, rows):
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _tiny_folder(tmp_path: Path, fix_rows=None) -> Path:
    fix_rows = fix_rows or [
        ["CVE-1", "overflow in Foo", f"https://github.com/o/r/commit/{SHA[0]}"],
        ["CVE-1", "overflow in Foo", f"https://github.com/o/r/commit/{SHA[1]}"],
        ["CVE-2", "crash in Bar", f"https://github.com/o/r/commit/{SHA[2]}"],
        ["CVE-3", "no message here", f"https://github.com/o/r/commit/{'e' * 40}"],
    ]
    _write(tmp_path / "tf_fixes.csv", ["cve", "description", "commit_url"], fix_rows)
    _write(tmp_path / "tf_vfc_commit_messages.csv", ["commit_id", "repo", "msg", "label"], [
        [SHA[0], "o/r", "Fix Foo overflow\n\nPiperOrigin-RevId: 1\nChange-Id: I00", 1],
        [SHA[1], "o/r", "Foo: add test", 1],
        [SHA[2], "o/r", "Check Bar input", 1],
        [SHA[3], "o/r", "Unrelated commit", 1],  # a candidate with no CVE still competes in the ranking
    ])
    return tmp_path


# ------------------------------------------------------------------------------------------ loading
def test_tiny_folder_links_and_drops(tmp_path):
    links = load_fix_links(_tiny_folder(tmp_path))
    assert links.cves == ["CVE-1", "CVE-2"]
    assert links.commits == SHA
    assert links.gold == [{0, 1}, {2}]
    assert links.dropped_cves == 1  # CVE-3's only commit has no message
    assert links.messages[0] == "Fix Foo overflow"  # trailers cleaned by default
    assert "PiperOrigin" in load_fix_links(tmp_path, clean=False).messages[0]


@needs_data
def test_real_folder_counts():
    links = load_fix_links(VULCURATOR)
    with (VULCURATOR / "tf_vfc_commit_messages.csv").open(newline="", encoding="utf-8") as fh:
        with_msg = {r["commit_id"].lower() for r in csv.DictReader(fh)}
    with (VULCURATOR / "tf_fixes.csv").open(newline="", encoding="utf-8") as fh:
        fixes = [(r["cve"], r["commit_url"].rsplit("/", 1)[-1].lower()) for r in csv.DictReader(fh)]
    cves_with_msg = {cve for cve, sha in fixes if sha in with_msg}

    assert len(links.commits) == len(links.messages) == 294
    assert len(links.cves) == len(cves_with_msg) == len(links.descriptions) == len(links.gold)
    assert links.dropped_cves == len({cve for cve, _ in fixes}) - len(cves_with_msg)
    assert all(g and all(0 <= i < 294 for i in g) for g in links.gold)
    truth = {(cve, sha) for cve, sha in fixes}
    assert all((links.cves[q], links.commits[i]) in truth for q, g in enumerate(links.gold) for i in g)
    assert not any("PiperOrigin-RevId" in m or "Change-Id:" in m for m in links.messages)


def test_subset_keeps_full_pool(tmp_path):
    links = load_fix_links(_tiny_folder(tmp_path))
    sub = links.subset([1])
    assert sub.cves == ["CVE-2"] and sub.gold == [{2}]
    assert sub.commits == links.commits and sub.messages == links.messages


@needs_data
def test_bad_commit_url_names_file_and_line(tmp_path):
    with (VULCURATOR / "tf_fixes.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    rows[5][2] = "https://github.com/tensorflow/tensorflow/pull/123"  # data row 5 -> line 6
    with (tmp_path / "tf_fixes.csv").open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    (tmp_path / "tf_vfc_commit_messages.csv").symlink_to(VULCURATOR / "tf_vfc_commit_messages.csv")
    with pytest.raises(DataError) as exc:
        load_fix_links(tmp_path)
    assert exc.value.where == f"{tmp_path / 'tf_fixes.csv'}:line 6"
    assert "no commit sha" in exc.value.message


def test_missing_file_and_column(tmp_path):
    folder = _tiny_folder(tmp_path)
    (folder / "tf_vfc_commit_messages.csv").unlink()
    with pytest.raises(DataError, match="tf_vfc_commit_messages.csv"):
        load_fix_links(folder)
    _write(folder / "tf_vfc_commit_messages.csv", ["commit_id", "message"], [[SHA[0], "x"]])
    with pytest.raises(DataError, match="missing column.*msg") as exc:
        load_fix_links(folder)
    assert "tf_vfc_commit_messages.csv" in str(exc.value)


# ------------------------------------------------------------------------------------------ messages
def test_clean_message_drops_trailers_only():
    msg = ("TFLite: Error out when the graph has a recursion.\n\nRecursion is unsupported.\n\n"
           "Signed-off-by: Yong Tang <yong@example.com>\nReviewed-by: A <a@b.c>\n"
           "PiperOrigin-RevId: 370800333\nChange-Id: I6a2e4ff849da3395")
    assert clean_message(msg) == "TFLite: Error out when the graph has a recursion.\n\nRecursion is unsupported."
    assert clean_message("Fix out of bound access in DequantizeOp") == "Fix out of bound access in DequantizeOp"
    assert clean_message("PiperOrigin-RevId: 1") == ""


# ------------------------------------------------------------------------------------------ splits
def test_grouped_split_properties():
    parts = grouped_split(50)
    assert set(parts) == {"train", "val", "test"}
    assert [len(parts[k]) for k in ("train", "val", "test")] == [30, 10, 10]
    flat = parts["train"] + parts["val"] + parts["test"]
    assert sorted(flat) == list(range(50))  # disjoint and complete
    assert grouped_split(50) == parts  # deterministic
    assert grouped_split(50, seed=14) != parts
    assert sum(len(v) for v in grouped_split(7, (0.5, 0.25, 0.25)).values()) == 7


def test_grouped_split_rejects_bad_fractions():
    with pytest.raises(ConfigError):
        grouped_split(10, (0.5, 0.5, 0.5))


# ------------------------------------------------------------------------------------------ pairs
def _hand_links() -> FixLinks:
    # 4 CVEs, 7 commits; commit 6 belongs to no CVE.
    return FixLinks(cves=[f"CVE-{i}" for i in range(4)], descriptions=[f"desc {i}" for i in range(4)],
                    commits=[f"c{j}" for j in range(7)], messages=[f"msg {j}" for j in range(7)],
                    gold=[{0, 1}, {2}, {3, 4}, {5}], source="hand")


def test_training_pairs_stay_inside_given_cves():
    links = _hand_links()
    pairs, labels = training_pairs(links, [0, 2], negatives_per_positive=10, seed=1)
    allowed = {"msg 0", "msg 1", "msg 3", "msg 4"}
    assert {m for _, m in pairs} <= allowed  # never a commit of CVE 1, 3 or the orphan
    assert {d for d, _ in pairs} == {"desc 0", "desc 2"}
    gold_msgs = {"desc 0": {"msg 0", "msg 1"}, "desc 2": {"msg 3", "msg 4"}}
    for (d, m), y in zip(pairs, labels):
        assert (m in gold_msgs[d]) == (y == 1)
    assert labels.count(1) == 4
    assert labels.count(0) == 4 * 2  # capped at the 2 commits of the other CVE


def test_training_pairs_deterministic_and_sized():
    links = _hand_links()
    a = training_pairs(links, [0, 1, 2, 3], negatives_per_positive=2, seed=5)
    assert a == training_pairs(links, [0, 1, 2, 3], negatives_per_positive=2, seed=5)
    assert a[1].count(1) == 6 and a[1].count(0) == 12
    with pytest.raises(ValueError, match="CVE index 9"):
        training_pairs(links, [9])


def _links_with_a_shared_message() -> FixLinks:
    """Two CVEs fixed by different commits with one message (as TensorFlow's "Prevent division by 0")."""
    return FixLinks(cves=["CVE-0", "CVE-1", "CVE-2", "CVE-3"], descriptions=["desc 0", "desc 1", "desc 2", "desc 3"],
                    commits=[c * 40 for c in "abcde"], messages=["Prevent division by 0", "Prevent division by 0",
                                                                  "msg 2", "msg 3", "msg 4"],
                    gold=[{0}, {1}, {2}, {3, 4}], source="hand")


def test_a_message_shared_by_two_fixes_is_never_a_negative_of_either():
    links = _links_with_a_shared_message()
    for seed in range(20):
        pairs, labels = training_pairs(links, [0, 1, 2, 3], negatives_per_positive=4, seed=seed,
                                       description_negatives=3)
        positive = {p for p, y in zip(pairs, labels) if y == 1}
        assert not positive & {p for p, y in zip(pairs, labels) if y == 0}  # never labelled 1 and 0 at once


def test_description_negatives_pair_each_positive_message_with_other_cves():
    links = _hand_links()
    pairs, labels = training_pairs(links, [0, 1, 2, 3], negatives_per_positive=1, seed=3, description_negatives=2)
    gold_msgs = {d: {links.messages[j] for j in links.gold[i]} for i, d in enumerate(links.descriptions)}
    for (d, m), y in zip(pairs, labels):
        assert (m in gold_msgs[d]) == (y == 1)
    # each positive message also appears, labelled 0, beside two descriptions it does not fix
    for d, m in [p for p, y in zip(pairs, labels) if y == 1]:
        assert sum(1 for (d2, m2), y in zip(pairs, labels) if m2 == m and y == 0 and d2 != d) >= 2
    assert labels.count(1) == 6 and labels.count(0) == 6 * (1 + 2)
    with pytest.raises(ConfigError, match="negative counts"):
        training_pairs(links, [0], description_negatives=-1)
