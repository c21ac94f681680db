"""``transferlab vuln benchmark``: how good and how fast the cascade is, measured on held-out data.

- Stage 1 on Matomo split by time (trained before ``validation_from``, thresholds chosen on the validation years,
  measured on the items created from ``test_from`` on): PR-AUC, recall at 1% false-positive rate, precision,
  recall and F1 at the chosen threshold.  These figures come from the cascade's own record (``cascade.json``),
  written when it was trained; the benchmark recomputes them from the models and checks they agree.
- Stage 2 on its held-out part (grouped by vulnerability), with the share flagged per label source.
- The whole cascade on the Matomo test period: how many items it flags and what share of them the maintainers
  labelled security.
- Throughput: the Matomo test period written as a GH Archive hour (one IssuesEvent per item), ingested by the real
  connector into a fresh SQLite store, then scored the way ``scan`` scores (stage 1 for all, stage 2 for what
  passes, evidence for what is flagged): records per second for each step, on this machine.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from . import labels as L
from .cascade import Cascade

# every stage is also judged per source of its test items (the origin column of labels.py): GitHub issues and fix
# commits, FARSEC bug reports, advisory texts, mailing lists (no labelled mail yet: that slice says n=0)
SLICES = ["github=column:origin~^(matomo|vulcurator-commit)", "farsec=column:origin~^farsec",
          "advisories=column:origin~^(sap-statement|vulcurator-cve)", "mail=column:origin~mail"]


def _matomo_events(frame, path: Path) -> int:
    """The Matomo items as IssuesEvents in one GH Archive-format hour file."""
    n = 0
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for _, r in frame.iterrows():
            when = r["created_at"].strftime("%Y-%m-%dT%H:%M:%SZ")
            issue = {"number": int(r["number"]), "title": str(r["title"] if isinstance(r["title"], str) else ""),
                     "body": r["body"] if isinstance(r["body"], str) else "", "state": r.get("state") or "open",
                     "html_url": f"https://github.com/matomo-org/matomo/issues/{int(r['number'])}",
                     "user": {"login": "someone"}, "labels": [], "created_at": when, "updated_at": when}
            fh.write(json.dumps({"id": str(n), "type": "IssuesEvent", "created_at": when,
                                 "repo": {"name": "matomo-org/matomo"},
                                 "payload": {"action": "opened", "issue": issue}}) + "\n")
            n += 1
    return n


def run(cascade_dir: str | Path, out: str | Path, *, data=None, log: Callable[[str], None] = print,
        max_throughput: int | None = None, command: str | None = None, runtime: str = "auto") -> dict:
    from ..models.base import environment
    from .cascade import _held_out
    from .ingest import ingest
    from .scan import score_pending
    from .sources.gharchive import GHArchiveConnector
    from .store import Store

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cascade = Cascade.load(cascade_dir, runtime=runtime)
    info = cascade.info
    split = info["stage1"]["labels"]
    p1 = L.stage1(data, validation_from=split["validation_from"], test_from=split["test_from"], farsec=False)
    p2 = L.stage2(data)
    log("stage 1 on the Matomo test period, stage 2 on its held-out part")
    result = {"cascade": {"version": cascade.version, "models": cascade.models, "trained_at": info.get("trained_at"),
                          "train_seconds": {s: info[s]["train_seconds"] for s in ("stage1", "stage2")}},
              "split": split, "stage2_split": info["stage2"]["labels"], "environment": environment(),
              "decisions": {s: info[s].get("decision", "validation part") for s in ("stage1", "stage2")},
              "command": command or f"transferlab vuln benchmark --cascade {cascade_dir} --out {out}"}
    # each test part is scored once; the figures, the whole-cascade count and the plot all use these
    proba1, proba2 = cascade.stage1.predict_proba(p1.test), cascade.stage2.predict_proba(p2.test)
    score1 = proba1[:, cascade.stage1.labels_.index(L.SECURITY)]
    score2 = proba2[:, cascade.stage2.labels_.index(L.VULNERABILITY)]
    result["stage1"] = _held_out(cascade.stage1, p1.test, L.SECURITY, proba1)
    result["stage1_validation"] = info["stage1"]["validation"]
    result["stage2"] = _held_out(cascade.stage2, p2.test, L.VULNERABILITY, proba2)
    result["counts"] = {"stage1": p1.counts(), "stage2": p2.counts()}
    from ..evaluation.slices import parse_slices, slice_report

    result["slices"] = {
        stage: slice_report(part.texts, part.columns, part.labels, model.decode(proba), model.labels_,
                            parse_slices(SLICES), positive=positive)
        for stage, part, model, proba, positive in (("stage1", p1.test, cascade.stage1, proba1, L.SECURITY),
                                                    ("stage2", p2.test, cascade.stage2, proba2, L.VULNERABILITY))}
    for stage in ("stage1", "stage2"):
        recorded = info[stage]["test"].get("pr_auc")
        if recorded is not None and abs(recorded - result[stage]["pr_auc"]) > 1e-6:
            result.setdefault("warnings", []).append(f"{stage} PR-AUC recomputed {result[stage]['pr_auc']:.6f} "
                                                     f"differs from cascade.json {recorded:.6f}")
    # the whole cascade on the test period, against the maintainers' security label
    s = cascade.score(p1.test.texts, p1=score1)
    truth = np.array([y == L.SECURITY for y in p1.test.labels])
    flagged = s["flagged"]
    result["cascade_on_matomo_test"] = {
        "items": int(len(truth)), "security_labelled": int(truth.sum()), "passed_stage1": int(s["passed1"].sum()),
        "flagged": int(flagged.sum()), "flagged_security_labelled": int((flagged & truth).sum()),
        "share_of_flagged_security_labelled": round(float(truth[flagged].mean()), 4) if flagged.any() else None,
        "flagged_titles": [p1.test.texts[i].split("\n")[0][:120] for i in np.flatnonzero(flagged)[:25]]}
    # throughput: ingest, then score, the test period as a GH Archive hour
    frame = L.read_matomo(L.data_dir(data))
    import pandas as pd

    frame = frame[frame["created_at"] >= pd.Timestamp(split["test_from"], tz="UTC")]
    if max_throughput:
        frame = frame.head(max_throughput)
    work = out / "throughput"
    work.mkdir(exist_ok=True)
    hour = work / "matomo-test-period.json.gz"
    n_events = _matomo_events(frame, hour)
    db = work / "bench.db"
    if db.exists():
        db.unlink()
    store = Store.open(f"sqlite:///{db}")
    log(f"throughput: ingesting {n_events} events")
    started = time.perf_counter()
    rep = ingest(GHArchiveConnector([hour]), store, progress=True)
    ingest_s = time.perf_counter() - started
    log(f"throughput: scoring {rep.new} records (with an empty embedding cache: these texts were encoded above)")
    with _empty_cache():
        scored, score_s = score_pending(store, Cascade.load(cascade_dir, runtime=runtime), None, None, progress=True)
    result["throughput"] = {"events": n_events, "records_ingested": rep.new, "ingest_seconds": round(ingest_s, 2),
                            "ingest_records_per_s": round(rep.new / ingest_s, 1),
                            "records_scored": scored, "score_seconds": round(score_s, 2),
                            "score_records_per_s": round(scored / score_s, 1) if score_s else None,
                            "end_to_end_records_per_s": round(scored / (ingest_s + score_s), 1),
                            "device": str(cascade.stage1.device_), "runtime": _runtime(cascade)}
    # the scratch files, the store's migration lock file among them (kept by the store after release)
    for scratch in (hour, db, store.migration_lock_path):
        scratch.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        work.rmdir()
    _plot(cascade, ((p1.test, score1), (p2.test, score2)), out / "pr_curves.png")
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    (out / "results.md").write_text(markdown(result), encoding="utf-8")
    return result


@contextlib.contextmanager
def _empty_cache():
    """Score with an empty embedding cache (a fresh TRANSFERLAB_CACHE folder), the environment put back after:
    throughput is encoding, never reading vectors an earlier run cached."""
    import os
    import tempfile
    from unittest import mock

    with tempfile.TemporaryDirectory() as empty, mock.patch.dict(os.environ, {"TRANSFERLAB_CACHE": empty}):
        yield


def _runtime(cascade: Cascade) -> str:
    """What scored each stage: float32 PyTorch, PyTorch in bf16, or an exported ONNX graph (fp32/int8; a frozen
    stage's graph is its encoder)."""
    def one(model) -> str:
        graph = model.runtime_ or getattr(model.backend_, "_graph", None)
        if graph is None:
            return "torch"
        return "torch-bf16" if graph.kind == "bf16" else f"onnx-{graph.kind}"

    return f"stage 1 {one(cascade.stage1)}, stage 2 {one(cascade.stage2)}"


def _plot(cascade: Cascade, scored, path: Path) -> None:
    """``scored``: (examples, positive-class score) for stage 1 and stage 2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    panels = ((1, L.SECURITY, "stage 1: security (Matomo test period)"),
              (2, L.VULNERABILITY, "stage 2: vulnerability (held out)"))
    for ax, (stage, pos, title), (ex, score) in zip(axes, panels, scored):
        truth = np.array([y == pos for y in ex.labels])
        precision, recall, _ = precision_recall_curve(truth, score)
        ax.plot(recall, precision)
        thr = cascade.threshold(stage)
        called = score >= thr
        ax.scatter([truth[called].sum() / max(truth.sum(), 1)], [truth[called].mean() if called.any() else 0],
                   color="red", zorder=3, label=f"threshold {thr:.3f}")
        ax.axhline(truth.mean(), color="grey", ls=":", label=f"prevalence {truth.mean():.3f}")
        ax.set(title=title, xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
        ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def markdown(r: dict) -> str:
    from ..evaluation.slices import with_ci

    hw = r["environment"]["hardware"]
    m = r["cascade"]["models"]
    s1, s2, c, t = r["stage1"], r["stage2"], r["cascade_on_matomo_test"], r["throughput"]
    # either way (refit asked for, or too few validation positives) the model trained on training + validation
    refit = {s: "cross-validation" in (r.get("decisions") or {}).get(s, "") for s in ("stage1", "stage2")}
    where = {s: "on out-of-fold scores, refitted" if refit[s] else "on validation" for s in refit}
    lines = [
        "# Vulnerability early warning: cascade benchmark", "",
        f"Cascade `{r['cascade']['version']}`: stage 1 `{m['stage1']['id']}` (threshold {m['stage1']['threshold']:.4f}, "
        f"{m['stage1']['rule']} {where['stage1']}), stage 2 `{m['stage2']['id']}` (threshold "
        f"{m['stage2']['threshold']:.4f}, {m['stage2']['rule']} {where['stage2']}).  Hardware: {hw.get('processor')}, {hw.get('cpu_count')} CPUs"
        f"{', ' + hw['gpu'] if hw.get('gpu') else ', no GPU'}; scoring device {t['device']}"
        f"{' (' + t['runtime'] + ')' if t.get('runtime') else ''}; torch "
        f"{r['environment']['versions'].get('torch')}.", "", f"Command: `{r.get('command', 'transferlab vuln benchmark')}`",
        "",
        "## Stage 1: security-relevant (Matomo, split by time)", "",
        f"Train: Matomo before {r['split']['validation_from']}" + (" + FARSEC Chromium" if r["split"]["farsec"] else "")
        + (f"; validation {r['split']['validation_from']} to {r['split']['test_from']}, then refitted on training + "
           "validation with the threshold from 5-fold out-of-fold scores" if refit["stage1"] else
           f"; thresholds on {r['split']['validation_from']} to {r['split']['test_from']}")
        + f"; test from {r['split']['test_from']}: {s1['n']} items, {s1['positives']} labelled security "
        f"({_pct(s1['prevalence'])}%).",
        "", "| set | PR-AUC | ROC-AUC | recall@1%FPR | precision | recall | F1 | FPR |", "|---|---|---|---|---|---|---|---|"]
    for name, x in (("validation (threshold chosen here)", r["stage1_validation"]), ("**test**", s1)):
        if "cross_validation" in x:  # few validation positives: the threshold came from out-of-fold scores
            cv = x["cross_validation"] or {}
            spread = lambda k: (f"{100 * cv[k]['mean']:.1f} ± {100 * cv[k]['sd']:.1f}"  # noqa: E731
                                if k in cv else "-")
            lines.append(f"| {cv.get('folds', '?')}-fold cross-validation (threshold chosen here) | - | - | - | "
                         f"{spread('precision')} | {spread('recall')} | - | {spread('fpr')} |")
            continue
        lines.append(f"| {name} | {x['pr_auc']:.3f} | {x['roc_auc']:.3f} | {_pct(x['recall_at_1pct_fpr'])} | "
                     f"{_pct(x['precision'])} | {_pct(x['recall'])} | {_pct(x['f1'])} | {_pct(x['fpr'])} |")
    lines += ["", "## Stage 2: probable vulnerability (held-out part, grouped by vulnerability)", "",
              f"Test: {s2['n']} items, {s2['positives']} vulnerabilities.", "",
              "| PR-AUC | ROC-AUC | recall@1%FPR | precision | recall | F1 | FPR |", "|---|---|---|---|---|---|---|",
              f"| {s2['pr_auc']:.3f} | {s2['roc_auc']:.3f} | {_pct(s2['recall_at_1pct_fpr'])} | {_pct(s2['precision'])} "
              f"| {_pct(s2['recall'])} | {_pct(s2['f1'])} | {_pct(s2['fpr'])} |", "",
              "Share called a vulnerability, per label source (test part):", "",
              "| source | label | n | called vulnerability |", "|---|---|---|---|"]
    for origin, x in s2.get("per_origin", {}).items():
        lines.append(f"| {origin} | {x['label']} | {x['n']} | {_pct(x['flagged_share'])}% |")
    for stage, title in (("stage1", "Stage 1"), ("stage2", "Stage 2")):
        rows = (r.get("slices") or {}).get(stage)
        if not rows:
            continue
        lines += ["", f"{title} per source of the test items (at the chosen threshold; 95% Wilson intervals):", "",
                  "| slice | n | positives | recall | precision | accuracy |", "|---|---|---|---|---|---|"]
        for x in rows:
            lines.append(f"| {x['name']} | {x['n']} | {x.get('positives', '-')} | "
                         f"{with_ci(x.get('recall'), x.get('recall_ci'), 1)} | "
                         f"{with_ci(x.get('precision'), x.get('precision_ci'), 1)} | "
                         f"{with_ci(x['accuracy'], x['accuracy_ci'], 1)} |")
    lines += ["", "## The whole cascade on the Matomo test period", "",
              f"{c['items']} items; {c['passed_stage1']} pass stage 1; {c['flagged']} flagged; "
              f"{c['flagged_security_labelled']} of those carry the maintainers' security label "
              f"({_pct(c['share_of_flagged_security_labelled'])}%).", "",
              "## Throughput (this machine)", "",
              f"- ingest (GH Archive hour of {t['events']} IssuesEvents -> SQLite): {t['ingest_records_per_s']} records/s",
              f"- scoring (stage 1 for all, stage 2 for what passes, evidence for what is flagged): "
              f"{t['score_records_per_s']} records/s", f"- end to end: {t['end_to_end_records_per_s']} records/s", "",
              "![precision-recall curves](pr_curves.png)", ""]
    if r.get("warnings"):
        lines += ["Warnings:"] + [f"- {w}" for w in r["warnings"]]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ scan speed
def _scan_once(cascade_dir, hour: Path, work: Path, runtime: str) -> dict:
    """Ingest ``hour`` into a fresh SQLite store and score it as ``scan`` does, with an empty embedding cache;
    timings and every record's scores (keyed by source and native id)."""
    from .ingest import ingest
    from .scan import score_pending
    from .sources.gharchive import GHArchiveConnector
    from .store import Store

    db = work / f"speed-{runtime}.db"
    db.unlink(missing_ok=True)
    store = Store.open(f"sqlite:///{db}")
    try:
        started = time.perf_counter()
        rep = ingest(GHArchiveConnector([hour]), store, progress=False)
        ingest_s = time.perf_counter() - started
        with _empty_cache():  # nothing encoded before counts
            started = time.perf_counter()
            cascade = Cascade.load(cascade_dir, runtime=runtime)
            load_s = time.perf_counter() - started
            scored, score_s = score_pending(store, cascade, None, None, progress=True)
        rows = {(r["source"], r["native_id"]): r for r in store.scored(cascade.version)}
    finally:
        store.engine.dispose()
        db.unlink(missing_ok=True)
    total = ingest_s + score_s
    return {"runtime": runtime, "ran": _runtime(cascade), "records_ingested": rep.new, "records_scored": scored,
            "ingest_seconds": round(ingest_s, 2), "load_seconds": round(load_s, 2), "score_seconds": round(score_s, 2),
            "score_records_per_s": round(scored / score_s, 1) if score_s else None,
            "end_to_end_records_per_s": round(scored / total, 1) if total else None, "_rows": rows}


def scan_speed(cascade_dir: str | Path, out: str | Path, *, data=None, runtimes=("torch", "auto"),
               max_items: int | None = None, tolerance: float = 0.02, log: Callable[[str], None] = print,
               command: str | None = None) -> dict:
    """``vuln scan`` end to end (ingest a GH Archive hour, score every record: stage 1, stage 2 for what passes,
    evidence for what is flagged) with each runtime side by side in one run, on the same hour, the same cores and
    an empty embedding cache each time.  The hour is the Matomo test period written as IssuesEvents (as ``vuln
    benchmark`` builds it).  Each runtime's flags are compared with the first runtime's: the same records flagged,
    and the largest stage-1/stage-2 score difference (``tolerance`` bounds it)."""
    import pandas as pd

    from ..errors import ConfigError
    from ..models.base import environment
    from ..runtime.onnx import RUNTIMES

    bad = [r for r in runtimes if r not in RUNTIMES] or ([] if runtimes else ["(none)"])
    if bad:
        raise ConfigError(f"unknown runtime(s) {', '.join(bad)}", hint=f"--runtimes from {', '.join(RUNTIMES)}")
    out = Path(out)
    work = out / "throughput"
    work.mkdir(parents=True, exist_ok=True)
    frame = L.read_matomo(L.data_dir(data))
    split = json.loads((Path(cascade_dir) / "cascade.json").read_text(encoding="utf-8"))["stage1"]["labels"]
    frame = frame[frame["created_at"] >= pd.Timestamp(split["test_from"], tz="UTC")]
    if max_items:
        frame = frame.head(max_items)
    hour = work / "matomo-test-period.json.gz"
    n_events = _matomo_events(frame, hour)
    log(f"{n_events} events from the Matomo test period, runtimes {', '.join(runtimes)}")
    runs = []
    for runtime in runtimes:
        log(f"[{len(runs) + 1}/{len(runtimes)}] {runtime}")
        runs.append(_scan_once(cascade_dir, hour, work, runtime))
        log(f"    {runs[-1]['ran']}: {runs[-1]['end_to_end_records_per_s']} records/s end to end")
    hour.unlink()
    ref = runs[0]
    for r in runs:
        keys = ref["_rows"].keys() & r["_rows"].keys()
        flagged_ref = {k for k in keys if ref["_rows"][k]["flagged"]}
        flagged = {k for k in keys if r["_rows"][k]["flagged"]}

        def largest(stage: str) -> float:
            return max((abs(float(r["_rows"][k][stage] or 0) - float(ref["_rows"][k][stage] or 0)) for k in keys),
                       default=0.0)

        r["agreement"] = {"records_compared": len(keys), "flagged": len(flagged), "flagged_reference": len(flagged_ref),
                          "flagged_only_here": len(flagged - flagged_ref), "flagged_only_reference": len(flagged_ref - flagged),
                          "largest_stage1_difference": largest("stage1"), "largest_stage2_difference": largest("stage2")}
        a = r["agreement"]
        a["same_flags_within_tolerance"] = (len(keys) == len(ref["_rows"]) and flagged == flagged_ref
                                            and max(a["largest_stage1_difference"],
                                                    a["largest_stage2_difference"]) <= tolerance)
        r["speedup_vs_reference"] = (round(r["end_to_end_records_per_s"] / ref["end_to_end_records_per_s"], 2)
                                     if ref["end_to_end_records_per_s"] else None)
    for r in runs:
        r.pop("_rows")
    env = environment()
    result = {"benchmark": "vuln-scan-speed", "cascade": str(cascade_dir), "events": n_events, "tolerance": tolerance,
              "runs": runs, "hardware": env["hardware"], "versions": env["versions"],
              "command": command or f"transferlab vuln speed --cascade {cascade_dir} --out {out}"}
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "results.md").write_text(speed_markdown(result), encoding="utf-8")
    return result


def speed_markdown(r: dict) -> str:
    from ..bench.report import hardware_line

    lines = ["# `vuln scan` end to end, runtimes side by side", "",
             f"Cascade `{r['cascade']}`; {r['events']} GitHub events (the Matomo test period as a GH Archive hour), "
             "ingested into a fresh SQLite store and scored with an empty embedding cache for each runtime, one "
             "after another in one run. Flags compared with the first row (tolerance on each score: "
             f"{r['tolerance']}).", "",
             "| runtime asked | what ran | ingest s | load s | score s | records/s scored | records/s end to end "
             "(x first) | flagged | same flags |", "|---|---|---|---|---|---|---|---|---|"]
    for x in r["runs"]:
        a = x["agreement"]
        same = ("yes" if a["same_flags_within_tolerance"] else "NO") + (
            f" (+{a['flagged_only_here']}/-{a['flagged_only_reference']}; largest score difference "
            f"{max(a['largest_stage1_difference'], a['largest_stage2_difference']):.1e})")
        lines.append(f"| {x['runtime']} | {x['ran']} | {x['ingest_seconds']} | {x['load_seconds']} | "
                     f"{x['score_seconds']} | {x['score_records_per_s']} | {x['end_to_end_records_per_s']} "
                     f"({x['speedup_vs_reference']}x) | {a['flagged']} | {same} |")
    lines += ["", f"Hardware: {hardware_line(r['hardware'])}.", f"Command: `{r['command']}`."]
    return "\n".join(lines) + "\n"
