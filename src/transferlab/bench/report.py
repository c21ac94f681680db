"""Write a benchmark's results: ``results.json`` (the schema below), ``results.csv``, ``results.md``, an
accuracy-versus-cost plot and ``report.html`` with every row's training curves and confusion matrix.

``results.json``::

    {"benchmark", "split", "hardware", "versions", "data", "targets",
     "rows": [{"name", "family", "encoder", "head", "strategy", "test_accuracy", "macro_f1", "train_seconds",
               "train_samples_per_second", "inference_docs_per_second", "peak_memory_mb", "params_total",
               "params_trainable", "seed_reference": {"model", "accuracy"} | null,
               "status": "ok" | "failed" | "not run", "error", "setting": "full" | "reduced" | "quick", ...}]}

Accuracies are fractions in [0, 1] (the seed reference too); peers are rows with ``"family": "peer"``.
``train_seconds`` is the whole fit (loading, tokenising, validation); ``train_step_seconds`` the training steps
alone, where the row can tell (our loop and the HF Trainer: each epoch from its start to its end, validation
apart), and ``train_samples_per_second`` is computed from it.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..errors import DataError  # noqa: E402

SCHEMA_KEYS = ("benchmark", "split", "hardware", "versions", "rows")
ROW_KEYS = ("name", "family", "encoder", "head", "strategy", "test_accuracy", "macro_f1", "train_seconds",
            "train_samples_per_second", "inference_docs_per_second", "peak_memory_mb", "params_total",
            "params_trainable", "seed_reference")
CSV_COLUMNS = ("name", "title", "family", "encoder", "head", "strategy", "status", "setting", "test_accuracy",
               "seed_model", "seed_accuracy", "vs_seed_points", "macro_f1", "roc_auc", "train_seconds",
               "train_step_seconds", "train_samples_per_second", "inference_docs_per_second", "peak_memory_mb", "peak_memory_kind",
               "params_total", "params_trainable", "n_train", "n_validation", "n_test", "epochs", "max_length",
               "device", "error")
FAMILY_COLORS = {"word-vectors": "tab:blue", "frozen-features": "tab:green", "transformer": "tab:red",
                 "peer": "tab:gray"}


def load_results(out: Path) -> dict | None:
    path = Path(out) / "results.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"results.json is not valid JSON ({exc})", where=str(path),
                        hint="move it away to start a fresh results file") from None


def merge_rows(results: dict, other: dict) -> dict:
    """``results`` with ``other``'s rows added or replacing rows of the same name (suite order kept)."""
    if other.get("benchmark") != results.get("benchmark") or other.get("split") != results.get("split"):
        raise DataError(f"cannot merge results of {other.get('benchmark')!r} split {other.get('split')!r} into "
                        f"{results.get('benchmark')!r} split {results.get('split')!r}",
                        hint="merge only results of the same benchmark and split")
    order = [r["name"] for r in results["rows"]] + [r["name"] for r in other["rows"]]
    rows = {r["name"]: r for r in results["rows"]}
    rows.update({r["name"]: r for r in other["rows"]})
    return {**results, "rows": sorted(rows.values(), key=lambda r: order.index(r["name"]))}


def validate(results: dict) -> list[str]:
    """Problems with a results document (empty when it follows the schema)."""
    problems = [f"missing key {k!r}" for k in SCHEMA_KEYS if k not in results]
    for i, row in enumerate(results.get("rows", [])):
        problems += [f"row {i} ({row.get('name')}): missing {k!r}" for k in ROW_KEYS if k not in row]
        if row.get("status") == "ok":
            acc = row.get("test_accuracy")
            if not isinstance(acc, (int, float)) or not 0 <= acc <= 1:
                problems.append(f"row {i} ({row.get('name')}): test_accuracy {acc!r} is not a fraction")
        elif not row.get("error"):
            problems.append(f"row {i} ({row.get('name')}): failed without a reason")
    return problems


def vs_seed(row: dict) -> float | None:
    ref = row.get("seed_reference")
    if row.get("status") != "ok" or not ref:
        return None
    return round(100 * (row["test_accuracy"] - ref["accuracy"]), 2)


def target_lines(results: dict) -> list[str]:
    """Each target of the suite, met or not, with the reason when it cannot be judged."""
    rows = results.get("rows", [])
    ok = [r for r in rows if r.get("status") == "ok"]
    full = [r for r in ok if r.get("setting") == "full"]
    lines = []
    for r in rows:
        ref = r.get("seed_reference")
        if not ref:
            continue
        what = f"`{r['name']}` ≥ seed {ref['model']} {100 * ref['accuracy']:.2f}%"
        if r.get("status") != "ok":
            lines.append(f"- {what}: **not run** ({r.get('error')})")
        elif r.get("setting") != "full":
            lines.append(f"- {what}: **not judged**, {r['setting']} setting gave {100 * r['test_accuracy']:.2f}%")
        else:
            verdict = "met" if r["test_accuracy"] >= ref["accuracy"] else "not met"
            lines.append(f"- {what}: **{verdict}** ({100 * r['test_accuracy']:.2f}%, {vs_seed(r):+.2f} points)")
    targets = results.get("targets") or {}
    for name, minimum in (targets.get("rows") or {}).items():
        row = next((r for r in rows if r["name"] == name), None)
        what = f"`{name}` ≥ {minimum:.2f}%"
        if row is None or row.get("status") != "ok":
            lines.append(f"- {what}: **not run**" + (f" ({row.get('error')})" if row else ""))
        elif row.get("setting") != "full":
            lines.append(f"- {what}: **not judged**, {row['setting']} setting gave {100 * row['test_accuracy']:.2f}%")
        else:
            verdict = "met" if 100 * row["test_accuracy"] >= minimum else "not met"
            lines.append(f"- {what}: **{verdict}** ({100 * row['test_accuracy']:.2f}%)")
    if "best_at_least" in targets:
        ours = [r for r in full if r.get("family") != "peer"]
        pending = [r["name"] for r in rows if r.get("family") != "peer" and r not in ours]
        what = f"best single model ≥ {targets['best_at_least']:.2f}%"
        best = max(ours, key=lambda r: r["test_accuracy"]) if ours else None
        reached = best is not None and 100 * best["test_accuracy"] >= targets["best_at_least"]
        if best is None:
            lines.append(f"- {what}: **not judged**, no row of ours ran in the full setting")
        elif pending and not reached:
            lines.append(f"- {what}: **not judged** yet (best full row so far `{best['name']}` "
                         f"{100 * best['test_accuracy']:.2f}%; not run in full: {', '.join(pending)})")
        else:
            lines.append(f"- {what}: **{'met' if reached else 'not met'}** (best full row `{best['name']}` "
                         f"{100 * best['test_accuracy']:.2f}%)")
    return lines


def _fmt(value, kind: str = "") -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{100 * value:.2f}"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "params":
        return f"{value / 1e6:.1f}M" if value >= 1e6 else f"{value / 1e3:.1f}k"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def hardware_line(hw: dict) -> str:
    return (f"{hw.get('processor')}, {hw.get('cpu_count')} CPUs" + (f", GPU {hw['gpu']}" if hw.get("gpu") else
                                                                     ", no GPU") + f"; {hw.get('platform')}")


def slice_table(results: dict) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows) of test accuracy per slice for every row that has slices; cells carry the 95% interval,
    and the size when it differs from the header's (a row scored on a reduced test part)."""
    from ..evaluation.slices import with_ci

    rows = [r for r in results.get("rows", []) if r.get("status") == "ok" and r.get("slices")]
    if not rows:
        return None
    first = {s["name"]: s for s in rows[0]["slices"]}
    names = list(first)
    header = ["row"] + [f"{n} (n={first[n]['n']:,})" for n in names]
    body = []
    for r in rows:
        mine = {s["name"]: s for s in r["slices"]}
        cells = [r["name"]]
        for n in names:
            sl = mine.get(n)
            if sl is None or sl["accuracy"] is None:
                cells.append("–")
                continue
            size = "" if sl["n"] == first[n]["n"] else f" (n={sl['n']:,})"
            cells.append(f"{with_ci(sl['accuracy'], sl['accuracy_ci'])}{size}")
        body.append(cells)
    return header, body


def markdown(results: dict) -> str:
    hw = results.get("hardware", {})
    data = results.get("data", {})
    lines = [
        f"# {results['benchmark']}: results", "",
        results.get("description", "").strip(), "",
        f"Data: `{data.get('path')}`, split `{results['split']}` (train {data.get('n_train')}, validation "
        f"{data.get('n_validation')}, test {data.get('n_test')}). Accuracies in percent on the test part a row "
        "was scored on (`n test`); `setting` says whether the row ran in full, reduced (subsampled, shorter) or "
        "quick. Memory is the peak process RSS on CPU (it includes the interpreter and libraries) or the peak "
        "allocated CUDA memory on a GPU.", "",
        f"Last run's hardware: {hardware_line(hw)}.", "",
        "| row | family | setting | test acc | seed ref | Δ pts | macro F1 | train s | train samples/s | "
        "infer docs/s | peak MB | params (trainable) | n train / test | device |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        ref = r.get("seed_reference")
        if r.get("status") != "ok":
            lines.append(f"| {r['name']} | {r['family']} | {r.get('setting') or ''} | **{r.get('status')}**: "
                         f"{str(r.get('error')).replace('|', '/')} | {_fmt(ref and ref['accuracy'], 'pct')} | | | | | | | | | "
                         f"{r.get('device', '')} |")
            continue
        delta = vs_seed(r)
        lines.append(
            f"| {r['name']} | {r['family']} | {r['setting']} | {_fmt(r['test_accuracy'], 'pct')} | "
            f"{(ref['model'] + ' ' + _fmt(ref['accuracy'], 'pct')) if ref else '–'} | "
            f"{'' if delta is None else f'{delta:+.2f}'} | {_fmt(r['macro_f1'], 'pct')} | {_fmt(r['train_seconds'])} | "
            f"{_fmt(r['train_samples_per_second'])} | {_fmt(r['inference_docs_per_second'])} | "
            f"{_fmt(r['peak_memory_mb'], 'int')} | {_fmt(r['params_total'], 'params')} "
            f"({_fmt(r['params_trainable'], 'params')}) | {r.get('n_train')} / {r.get('n_test')} | {r.get('device')} |")
    table = slice_table(results)
    if table:
        header, body = table
        lines += ["", "## Slices", "", "Test accuracy (%) on each slice of the test part, with its 95% interval "
                  "(Wilson); macro F1 and its bootstrap interval are in each row's `report.json`.", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in cells) + " |" for cells in body]
    lines += ["", "## Targets", "", *target_lines(results), "",
              "Plots: `accuracy_vs_cost.png`; per row `rows/NAME/curves.png` and `rows/NAME/confusion.png`; "
              "all together in `report.html`.", ""]
    return "\n".join(lines)


def write_csv(results: dict, path: Path) -> None:
    import pandas as pd

    records = []
    for r in results["rows"]:
        ref = r.get("seed_reference") or {}
        records.append({**{k: r.get(k) for k in CSV_COLUMNS}, "seed_model": ref.get("model"),
                        "seed_accuracy": ref.get("accuracy"), "vs_seed_points": vs_seed(r)})
    pd.DataFrame(records, columns=list(CSV_COLUMNS)).to_csv(path, index=False)


def plot_cost(results: dict, path: Path) -> Path | None:
    """Accuracy against training time and against inference speed, one point per row that ran."""
    rows = [r for r in results["rows"] if r.get("status") == "ok" and r.get("train_seconds")]
    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    try:
        for ax, key, label in ((axes[0], "train_seconds", "training time (s, log)"),
                               (axes[1], "inference_docs_per_second", "inference speed (docs/s, log)")):
            for r in rows:
                if not r.get(key):
                    continue
                ax.scatter(r[key], 100 * r["test_accuracy"], color=FAMILY_COLORS.get(r["family"], "black"), s=40,
                           marker="o" if r.get("setting") == "full" else "x")
                ax.annotate(r["name"], (r[key], 100 * r["test_accuracy"]), fontsize=7, xytext=(4, 3),
                            textcoords="offset points")
            ax.set_xscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("test accuracy (%)")
            ax.grid(True, alpha=0.3)
        handles = [plt.Line2D([], [], color=c, marker="o", linestyle="none", label=f)
                   for f, c in FAMILY_COLORS.items()]
        handles.append(plt.Line2D([], [], color="black", marker="x", linestyle="none", label="not full setting"))
        fig.legend(handles=handles, fontsize=8, loc="lower center", ncol=len(handles), frameon=False)
        fig.suptitle(f"{results['benchmark']}: accuracy versus cost")
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path


def _inline(line: str) -> str:
    """One markdown target line as HTML: escaped first, then **verdict** as a badge and `code` as code."""
    import re

    text = html.escape(line[2:] if line.startswith("- ") else line)
    text = re.sub(r"\*\*(met|not met|not run|not judged)\*\*",
                  lambda m: f'<span class="badge {m.group(1).replace(" ", "-")}">{m.group(1)}</span>', text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1280px;margin:2em auto;padding:0 1em;
color:#1d2530}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #dde3ea}
p.meta{color:#556;margin:.2em 0}
table{border-collapse:collapse;margin:.6em 0;font-size:13px} th,td{padding:4px 8px;border-bottom:1px solid #e4e8ee}
th{background:#f3f5f8;text-align:left;position:sticky;top:0} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr:hover td{background:#f8fafc} tr.failed td{color:#8a1f11}
.badge{display:inline-block;padding:0 .5em;border-radius:.8em;font-size:12px;font-weight:600}
.badge.met{background:#dcf5e3;color:#0f6b2e} .badge.not-met{background:#fde2df;color:#8a1f11}
.badge.not-run,.badge.not-judged{background:#eceff3;color:#4a5563}
code{background:#f3f5f8;padding:0 .25em;border-radius:3px}
figure{display:inline-block;margin:.4em;max-width:48%} figure img{max-width:100%} figcaption{font-size:12px;color:#556}
"""


def html_report(results: dict, md_table: str = "") -> str:
    """A page people read: the table with numbers aligned, targets as badges, slices, the cost plot, and every row's
    curves and confusion matrix.  Everything from the results (row names, errors, descriptions) is escaped."""
    esc = html.escape
    head_cells = ("row", "family", "setting", "test acc %", "seed ref %", "Δ pts", "macro F1 %", "train s",
                  "infer docs/s", "peak MB", "params")
    body = []
    for r in results["rows"]:
        ref = r.get("seed_reference")
        if r.get("status") != "ok":
            cells = [r["name"], r["family"], r.get("setting") or "", f"{r.get('status')}: {r.get('error')}",
                     _fmt(ref and ref["accuracy"], "pct"), "", "", "", "", "", ""]
            body.append('<tr class="failed">' + "".join(f"<td>{esc(str(c))}</td>" for c in cells) + "</tr>")
            continue
        delta = vs_seed(r)
        cells = [r["name"], r["family"], r["setting"], _fmt(r["test_accuracy"], "pct"),
                 _fmt(ref and ref["accuracy"], "pct"), "" if delta is None else f"{delta:+.2f}",
                 _fmt(r["macro_f1"], "pct"), _fmt(r["train_seconds"]), _fmt(r["inference_docs_per_second"]),
                 _fmt(r["peak_memory_mb"], "int"), _fmt(r["params_total"], "params")]
        body.append("<tr>" + "".join(f'<td{" class=num" if i >= 3 else ""}>{esc(str(c))}</td>'
                                     for i, c in enumerate(cells)) + "</tr>")
    figures = []
    for r in results["rows"]:
        files = r.get("files") or {}
        imgs = "".join(f'<figure><img src="rows/{esc(r["name"])}/{esc(files[k])}" alt="{esc(r["name"])} {k}">'
                       f"<figcaption>{esc(r['name'])}: {k}</figcaption></figure>"
                       for k in ("curves", "confusion") if k in files)
        if imgs:
            figures.append(f"<h3>{esc(r['name'])}: {esc(r.get('title', ''))}</h3>{imgs}")
    targets = "".join(f"<li>{_inline(line)}</li>" for line in target_lines(results))
    table = slice_table(results)
    slices = ""
    if table:
        header, rows = table
        slices = ("<h2>Slices</h2><p class=meta>Test accuracy (%) per slice, with its 95% interval (Wilson).</p>"
                  "<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"
                  + "".join("<tr>" + "".join(f'<td{" class=num" if i else ""}>{esc(c)}</td>'
                                             for i, c in enumerate(cells)) + "</tr>" for cells in rows)
                  + "</table>")
    data = results.get("data", {})
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self'; style-src 'unsafe-inline'">
<title>{esc(results['benchmark'])}: results</title><style>{CSS}</style></head><body>
<h1>{esc(results['benchmark'])}</h1><p>{esc(results.get('description', ''))}</p>
<p class=meta>Data <code>{esc(str(data.get('path')))}</code>, split <code>{esc(str(results.get('split')))}</code>:
train {esc(str(data.get('n_train')))}, validation {esc(str(data.get('n_validation')))}, test
{esc(str(data.get('n_test')))}.</p>
<p class=meta>Hardware of the last run: {esc(hardware_line(results.get('hardware', {})))}.</p>
<table><tr>{''.join(f'<th>{esc(h)}</th>' for h in head_cells)}</tr>{''.join(body)}</table>
<h2>Targets</h2><ul>{targets}</ul>{slices}
<h2>Accuracy versus cost</h2><img src="accuracy_vs_cost.png" alt="accuracy versus cost" style="max-width:100%">
<h2>Training curves and confusion matrices</h2>{''.join(figures)}
</body></html>
"""


def write_outputs(results: dict, out: Path) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("results.json", "results.csv", "results.md", "report.html")}
    paths["results.json"].write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    write_csv(results, paths["results.csv"])
    md = markdown(results)
    paths["results.md"].write_text(md, encoding="utf-8")
    cost = plot_cost(results, out / "accuracy_vs_cost.png")
    if cost:
        paths["accuracy_vs_cost.png"] = cost
    paths["report.html"].write_text(html_report(results, md), encoding="utf-8")
    return paths
