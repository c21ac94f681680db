"""Learning from triage, measured: a simulated reviewer judges what stage 1 surfaced in the Matomo test period,
then `retrain` trains on those verdicts and reports before/after on the judged records it kept out.

The reviewer's verdicts are the maintainers' labels (``c: Security`` -> security-not-vuln, else not-security):
a proxy for a person, with the same weakness as the labels.  Run from the repository root:

    python benchmarks/vuln/simulate_triage.py [--out runs/vuln-triage-sim]

Writes runs/.../retrain.json and benchmarks/vuln/retrain_simulation.md.
"""

import argparse
import json
from pathlib import Path

import pandas as pd

from transferlab.models.classifier import environment
from transferlab.vuln import labels as L
from transferlab.vuln.benchmark import _matomo_events
from transferlab.vuln.cascade import Cascade
from transferlab.vuln.demo import SHIPPED
from transferlab.vuln.ingest import ingest
from transferlab.vuln.retrain import retrain
from transferlab.vuln.scan import score_pending
from transferlab.vuln.sources.gharchive import GHArchiveConnector
from transferlab.vuln.store import Store

parser = argparse.ArgumentParser()
parser.add_argument("--out", default="runs/vuln-triage-sim")
parser.add_argument("--cascade", default=str(SHIPPED))
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
cascade = Cascade.load(args.cascade)
split = cascade.info["stage1"]["labels"]
frame = L.read_matomo(L.data_dir())
frame = frame[frame["created_at"] >= pd.Timestamp(split["test_from"], tz="UTC")]
hour = out / "matomo-test-period.json.gz"
_matomo_events(frame, hour)
db = out / "v.db"
if db.exists():
    db.unlink()
store = Store.open(f"sqlite:///{db}")
print(ingest(GHArchiveConnector([hour]), store).summary())
print("scored", score_pending(store, cascade, None, None)[0])
label = dict(zip(frame["number"].astype(int), frame["is_sec"].astype(int)))
judged = 0
for row in store.scored(cascade.version):
    if row["stage1"] >= cascade.threshold(1):  # what stage 1 surfaced: the "probable security" list
        number = int(row["native_id"].rsplit("#", 1)[1])
        verdict = "security-not-vuln" if label[number] else "not-security"
        store.add_verdict(row["id"], verdict, "simulated reviewer (maintainers' label)", None, cascade.version)
        judged += 1
print("verdicts", judged)
report = retrain(cascade, store, out / "cascade", holdout=0.3)
hw = environment()["hardware"]
lines = ["# Learning from triage (simulated reviewer)", "",
         f"Command: `python benchmarks/vuln/simulate_triage.py --out {args.out}` (cascade {args.cascade}). "
         f"Hardware: {hw['processor']}, {hw['cpu_count']} CPUs, {hw.get('gpu', 'no GPU')}.", "",
         f"Cascade `{report['before_version']}` -> `{report['after_version']}`. The Matomo test period "
         f"({len(frame)} items) was ingested as a GH Archive hour and scored; the {judged} items stage 1 surfaced "
         "were judged with the maintainers' label as the verdict; 30% of them (by a hash of the record id) were "
         f"kept out. Verdicts: {report['counts']['by_verdict']}; each verdict weighs "
         f"{report['verdict_weight']}.", "",
         "| stage | held-out set | n | PR-AUC | recall | precision | F1 | FPR | test items also trained on |",
         "|---|---|---|---|---|---|---|---|---|"]


def f(m, k):
    return "-" if m is None or m.get(k) is None else f"{m[k]:.3f}"


for r in report["rows"]:
    b, a = r["before"], r["after"]
    lines.append(f"| {r['stage']} | {r['set']} | {b.get('n')} | " + " | ".join(
        f"{f(b, k)} -> {f(a, k)}" for k in ("pr_auc", "recall", "precision", "f1", "fpr"))
        + f" | {r.get('trained_on_overlap', 0)} |")
lines += ["", "Rows with test items also trained on are not clean comparisons (the judged records come from the "
          "test period); the held-out verdicts row is.", ""]
Path("benchmarks/vuln/retrain_simulation.md").write_text("\n".join(lines), encoding="utf-8")
(Path("benchmarks/vuln") / "retrain_simulation.json").write_text(json.dumps(report, indent=2, default=str))
print("\n".join(lines))
