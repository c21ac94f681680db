"""``transferlab vuln ...``: the dependency early-warning application on the command line (thin: parse, call, print)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from ..cli_common import err, escape, friendly, out
from ..errors import ExitCode, TransferLabError
from .sources.base import DEFAULT_MAX_RECORD_BYTES

vuln_app = typer.Typer(no_args_is_help=True, help="Dependency vulnerability early warning: ingest what projects "
                       "say in public, score it, map it to your dependencies, triage.")

# What the early-warning application needs beyond the toolkit (the `vuln` extra): import name -> distribution
EXTRA_MODULES = {"sqlalchemy": "sqlalchemy", "alembic": "alembic", "psycopg": "psycopg", "requests": "requests",
                 "urllib3": "urllib3", "defusedxml": "defusedxml", "filelock": "filelock"}


def missing_extra() -> list[str]:
    """The distributions of the `vuln` extra that are not installed here."""
    import importlib.util

    return sorted(dist for module, dist in EXTRA_MODULES.items() if importlib.util.find_spec(module) is None)


@vuln_app.callback()
@friendly
def _needs_the_extra() -> None:
    """Every `vuln` command first checks that the application's extra is installed, and says how to install it."""
    from ..errors import ConfigError

    missing = missing_extra()
    if missing:
        raise ConfigError(f"the early-warning application needs packages that are not installed: {', '.join(missing)}",
                          hint="pip install 'transferlab[vuln]' (the toolkit alone does not include them)")

DB = typer.Option("sqlite:///transferlab-vuln.db", "--db", envvar="TRANSFERLAB_VULN_DB",
                  help="SQLAlchemy URL of the store: sqlite:///file.db (default) or postgresql+psycopg://user@host/db; "
                       "a password belongs in the environment variable, not on the command line")


@vuln_app.command("ingest")
@friendly
def ingest_cmd(
    source: str = typer.Option(..., "--source", help="gharchive | github | bugzilla | jira | mbox | pipermail | "
                               "hyperkitty"),
    path: Optional[List[str]] = typer.Option(None, "--path", help="files or folders (gharchive hours, mail archives);"
                                             " repeatable"),
    url: Optional[str] = typer.Option(None, "--url", help="site for bugzilla/jira, API root for github "
                                      "(default https://api.github.com), or a GH Archive hour URL"),
    repo: Optional[str] = typer.Option(None, "--repo", help="github: owner/name"),
    repos: Optional[str] = typer.Option(None, "--repos", help="gharchive: keep only these repositories "
                                        "(comma-separated owner/name, or @file with one per line)"),
    project: Optional[str] = typer.Option(None, "--project", help="bugzilla product, JIRA project key, or the "
                                          "mailing list's name when its headers do not say"),
    since: Optional[str] = typer.Option(None, "--since", help="github/bugzilla/jira: only items changed since this "
                                        "date (ISO 8601); later runs continue from their checkpoint"),
    db: str = DB,
    restart: bool = typer.Option(False, "--restart", help="forget this source's checkpoint and read it all again "
                                 "(stored records are updated, never duplicated)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    allow_insecure_http: bool = typer.Option(False, "--allow-insecure-http", help="github/bugzilla/jira: send the "
                                             "token or key to an http:// --url (unencrypted; trusted networks only)"),
    max_record_bytes: int = typer.Option(DEFAULT_MAX_RECORD_BYTES, "--max-record-bytes", min=1,
                                         help="gharchive/mail files: a line or message longer than this is skipped "
                                              "(counted) without being held in memory"),
):
    """Read a source into the store: idempotent (a rerun duplicates nothing) and resumable (a checkpoint per
    source; after a kill, the rerun continues where it stopped).  Bad items are counted and listed, not lost."""
    from .ingest import ingest
    from .sources import make_connector
    from .store import Store

    repo_list = _repo_list(repos)
    connector = make_connector(source, path=path, url=url, repo=repo, project=project, since=since, repos=repo_list,
                               allow_insecure_http=allow_insecure_http, max_record_bytes=max_record_bytes)
    store = Store.open(db)
    report = ingest(connector, store, progress=not as_json, restart=restart)
    if as_json:
        out.print_json(json.dumps(report.as_dict()), ensure_ascii=True)  # \uXXXX: no C1 or bidi control raw
    else:
        err.print(escape(report.summary()), highlight=False, soft_wrap=True)
        for example in report.skip_examples:
            err.print(escape(f"  skipped {example}"), highlight=False, soft_wrap=True)
        if report.skipped > len(report.skip_examples):
            err.print(escape(f"  ... all {report.skipped} skips are kept in the store's skips table"), highlight=False)
    if report.error:
        err.print(f"[bold red]error:[/] {escape(report.error)}\n  everything read before it is stored; rerun to "
                  "continue from the checkpoint", highlight=False, soft_wrap=True)
        raise typer.Exit(ExitCode.FAILED)


CASCADE_HELP = ("cascade folder from `transferlab vuln train` (default: $TRANSFERLAB_VULN_CASCADE, else one "
                "`vuln demo --retrain` trained, else the one shipped with TransferLab)")
TRUST = typer.Option(False, "--trust-remote-code", help="let the cascade's models run code shipped with them "
                     "(only for a folder you trust; a folder can never switch this on itself)")


RUNTIME = typer.Option("auto", "--runtime", help="auto (each stage's fastest runtime checked by `vuln export`, else "
                       "float32 PyTorch) | onnx | openvino | bf16 | torch")


def _cascade(path: Optional[str], trust_remote_code: bool = False, runtime: str = "auto"):
    from .cascade import Cascade

    return Cascade.load(_cascade_path(path), trust_remote_code=trust_remote_code, runtime=runtime)


def _cascade_path(path: Optional[str]) -> str:
    """--cascade, else $TRANSFERLAB_VULN_CASCADE, else one `vuln demo --retrain` trained, else the shipped one."""
    import os

    path = path or os.environ.get("TRANSFERLAB_VULN_CASCADE")
    if path is None:
        from .demo import cached_cascade

        found = cached_cascade()
        if found is None:
            from ..errors import ConfigError

            raise ConfigError("no cascade given and none cached", hint="train one with `transferlab vuln train "
                              "--out runs/cascade` and pass --cascade runs/cascade (or run `transferlab vuln demo`)")
        path = str(found)
    return path


def _since(value: Optional[str]):
    if value is None:
        return None
    from ..errors import ConfigError
    from .records import parse_time

    when = parse_time(value)
    if when is None:
        raise ConfigError(f"--since {value!r} is not a date", hint="ISO 8601, e.g. 2024-05-01 or 2024-05-01T12:00Z")
    return when


@vuln_app.command("train")
@friendly
def train_cmd(
    out_dir: Path = typer.Option(..., "--out", help="folder for the cascade (stage1/, stage2/, cascade.json)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="folder with the label sources "
                                            "(default ../shared/data/security or $TRANSFERLAB_SECURITY_DATA)"),
    stage1: str = typer.Option("minilm-frozen-tfidf-stack", "--stage1", help="stage-1 recipe: glove-dan | "
                               "glove-cnn | glove-bigru | minilm-frozen | minilm-frozen-tfidf (hybrid) | "
                               "minilm-frozen-tfidf-stack (stacked hybrid) | minilm-finetune | minilm-finetune-128"),
    stage2: str = typer.Option("minilm-frozen", "--stage2", help="stage-2 recipe (same choices)"),
    stage1_recall: float = typer.Option(0.8, "--stage1-recall", help="target recall of stage 1 on validation"),
    stage2_recall: float = typer.Option(0.8, "--stage2-recall", help="target recall of stage 2 on validation"),
    validation_from: str = typer.Option("2018-01-01", "--validation-from", help="Matomo items created from this "
                                        "date are validation (stage 1)"),
    test_from: str = typer.Option("2020-01-01", "--test-from", help="... and from this date, held-out test"),
    no_farsec: bool = typer.Option(False, "--no-farsec", help="stage 1 from Matomo only"),
    farsec_negatives: int = typer.Option(3000, "--farsec-negatives", help="keep at most this many non-security "
                                         "FARSEC reports, drawn at random (all 193 security ones are kept); 0 = all"),
    seed: int = typer.Option(13, "--seed"),
    shared: bool = typer.Option(False, "--shared", help="one fine-tuned encoder with a head per stage (multi-task, "
                                "the --stage1 recipe, e.g. minilm-finetune) instead of two models"),
    stage1_init_from: Optional[Path] = typer.Option(None, "--stage1-init-from", help="sequential transfer: stage 1's "
                                                    "encoder starts from this model folder's (e.g. a `transferlab "
                                                    "train` run on FARSEC, with a --stage1 recipe whose encoder trains)"),
    stage1_encoder: Optional[str] = typer.Option(None, "--stage1-encoder", help="stage 1 uses this encoder instead "
                                                 "of its recipe's (e.g. a folder from `transferlab adapt mlm`)"),
    refit: Optional[bool] = typer.Option(None, "--refit/--no-refit", help="refit each stage on training + "
                                         "validation data, its threshold from 5-fold out-of-fold scores (default: "
                                         "for frozen-encoder recipes, whose heads fit in seconds; a recipe whose "
                                         "network trains takes six times as long with --refit)"),
):
    """Train the two-stage cascade from the label sources; prints and stores each stage's held-out figures."""
    from .cascade import train_cascade

    cascade = train_cascade(out_dir, data=data_dir, stage1_recipe=stage1, stage2_recipe=stage2,
                            stage1_recall=stage1_recall, stage2_recall=stage2_recall, validation_from=validation_from,
                            test_from=test_from, farsec=not no_farsec, max_farsec_negatives=farsec_negatives or None,
                            seed=seed, shared=shared, stage1_init_from=stage1_init_from,
                            stage1_encoder=stage1_encoder, refit=refit,
                            log=lambda m: err.print(escape(m), highlight=False))
    err.print(f"cascade {cascade.version} in {escape(str(out_dir))}; held-out figures in cascade.json")


@vuln_app.command("scan")
@friendly
def scan_cmd(
    manifest: List[Path] = typer.Option(..., "--manifest", help="requirements.txt, pyproject.toml, poetry.lock, "
                                        "uv.lock, package.json, package-lock.json, go.mod, pom.xml, Cargo.lock, "
                                        "Gemfile.lock; repeatable"),
    db: str = DB,
    report: List[Path] = typer.Option([], "--report", help="report file; the suffix picks the format "
                                      "(.md, .html, .csv, .json, .sarif); repeatable"),
    cascade: Optional[str] = typer.Option(None, "--cascade", help=CASCADE_HELP),
    runtime: str = RUNTIME,
    trust_remote_code: bool = TRUST,
    mapping: Optional[Path] = typer.Option(None, "--mapping", help="TOML file mapping packages to projects "
                                           "(always wins over registries)"),
    osv: Optional[Path] = typer.Option(None, "--osv", help="OSV export (folder of JSON files or a zip) to tell "
                                       "known from new"),
    osv_api: bool = typer.Option(False, "--osv-api", help="ask the OSV API online instead"),
    offline: bool = typer.Option(False, "--offline", envvar="TRANSFERLAB_OFFLINE",
                                 help="never ask package registries (mapping file and cache only)"),
    since: Optional[str] = typer.Option(None, "--since", help="only records created or changed since this date "
                                        "(daily runs)"),
    fail_on_warning: bool = typer.Option(False, "--fail-on-warning", help="exit with status 4 when there is an "
                                         "early warning or a text-only disclosure match (for CI; 3 is a cascade folder that is altered or asks to "
                                         "run code, 2 bad input, 1 a failure)"),
    disclosure_check: bool = typer.Option(True, "--text-match/--no-text-match", help="compare flagged "
                                          "records that name no CVE/GHSA id with their package's advisories, and "
                                          "call a close match \"probably already disclosed\" (needs --osv or "
                                          "--osv-api)"),
    pair_model: Optional[Path] = typer.Option(None, "--pair-model", help="a pair scorer trained with TransferLab "
                                              "(with its threshold) for that comparison; default: frozen MiniLM "
                                              "cosine at the threshold chosen on VulCurator validation CVEs"),
):
    """Score what the store holds about your dependencies and write a ranked report per dependency."""
    from .advisories import AdvisoryIndex
    from .mapping import RepositoryMapper
    from .report import format_of, write
    from .scan import scan
    from .store import Store

    for path in report:
        format_of(path)  # a bad suffix fails before any work
    model = _cascade(cascade, trust_remote_code, runtime)
    mapper = RepositoryMapper(mapping, online=not offline)
    store = Store.open(db)
    advisories = None
    if osv:
        advisories = AdvisoryIndex.from_directory(osv)
    elif osv_api:
        from .dependencies import parse_manifest

        deps = [d for m in manifest for d in parse_manifest(m).dependencies]
        advisories = AdvisoryIndex.from_api(deps)
    if advisories and advisories.problems:
        err.print(escape(f"{advisories.origin}: {advisories.count} advisories read, {len(advisories.problems)} "
                         "skipped:"), highlight=False, soft_wrap=True)
        for problem in advisories.problems[:10]:
            err.print(escape(f"  skipped {problem}"), highlight=False, soft_wrap=True)
    check = None
    if disclosure_check and advisories is not None:
        from .disclosure import DisclosureCheck

        if pair_model:
            check = DisclosureCheck.from_folder(pair_model, trust_remote_code=trust_remote_code)
        else:
            try:
                check = DisclosureCheck.default()
            except TransferLabError as exc:  # MiniLM not installed (offline): scan without this comparison
                err.print(f"[yellow]warning:[/] no \"probably already disclosed\" check: {escape(str(exc))}",
                          highlight=False, soft_wrap=True)
    result = scan([str(m) for m in manifest], store, model, mapper, advisories, _since(since), disclosure=check)
    for path in report:
        write(result, path)
        err.print(f"wrote {escape(str(path))}")
    _print_result(result)
    if fail_on_warning and result.needs_attention:
        raise typer.Exit(ExitCode.EARLY_WARNING)


def _print_result(result) -> None:
    from rich.table import Table

    table = Table(title="flagged, per dependency", show_lines=False)
    for col in ("dependency", "projects", "records", "flagged", "early warnings", "known advisories"):
        table.add_column(col)
    for dep in result.dependencies:
        d = dep.dependency
        table.add_row(escape(f"{d.ecosystem} {d.name} {d.version or d.spec or ''}"),
                      escape(", ".join(dep.mapping.projects) or f"(not mapped: {dep.mapping.reason})"),
                      str(dep.records), str(len(dep.items)), str(len(dep.early_warnings)),
                      escape(", ".join(k["id"] for k in dep.known)))
    out.print(table)
    for problem in result.problems:
        err.print(escape(f"manifest problem: {problem}"), highlight=False)
    err.print(escape(result.summary()), highlight=False)


@vuln_app.command("backfill")
@friendly
def backfill_cmd(
    path: List[str] = typer.Option(..., "--path", help="GH Archive hour files, folders of them, or globs; repeatable"),
    repos: Optional[str] = typer.Option(None, "--repos", help="keep only these repositories (comma-separated "
                                        "owner/name, or @file with one per line); default: every repository"),
    db: str = DB,
    cascade: Optional[str] = typer.Option(None, "--cascade", help=CASCADE_HELP),
    runtime: str = RUNTIME,
    engine: str = typer.Option("ray", "--engine", help="ray (files and scoring spread over --workers) | local"),
    workers: int = typer.Option(2, "--workers", help="ray: workers (each ingests a file at a time, then scores "
                                "chunks of records with its own copy of the cascade)"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS", help="ray: a running "
                                              "cluster (auto, or ray://HOST:10001); default: a local instance"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
):
    """Read many GH Archive hours into the store and score every new record, in parallel on Ray; resumable per file
    (each hour has its own checkpoint) and per record (only unscored records are scored)."""
    from ..scale.ray_backfill import backfill

    repo_list = _repo_list(repos)
    result = backfill(path, db, _cascade_path(cascade), repos=repo_list, engine=engine, workers=workers, ray_address=ray_address,
                      runtime=runtime, announce=lambda m: err.print(escape(m), highlight=False, soft_wrap=True))
    if as_json:
        out.print_json(json.dumps(result, default=str), ensure_ascii=True)
    for f in result["files"]:
        if f["status"] != "ok":
            err.print(escape(f"failed: {f['path']}: {f['error']}"), highlight=False, soft_wrap=True)
    err.print(escape(f"{result['read']} record(s) read from {len(result['files'])} file(s) ({result['new']} new, "
                     f"{result['skipped']} skipped, {result['failed']} file(s) failed) in {result['ingest_seconds']}s; {result['scored']} scored "
                     f"in {result['score_seconds']}s; end to end {result['end_to_end_records_per_s']} records/s with "
                     f"{result['workers']} worker(s) ({result['engine']})"), highlight=False, soft_wrap=True)
    if result["failed"]:
        raise typer.Exit(ExitCode.FAILED)


def _repo_list(repos: Optional[str]) -> Optional[list[str]]:
    """--repos: comma-separated owner/name, or @file with one per line (# comments)."""
    if not repos:
        return None
    text = Path(repos[1:]).read_text(encoding="utf-8") if repos.startswith("@") else repos.replace(",", "\n")
    return [r.strip() for r in text.splitlines() if r.strip() and not r.startswith("#")]


@vuln_app.command("export")
@friendly
def export_cmd(
    cascade: Optional[str] = typer.Option(None, "--cascade", help=CASCADE_HELP),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="copy the cascade here and export the copy (needed "
                                           "for the shipped cascade); default: export in place"),
    fmt: str = typer.Option("onnx", "--format", help="onnx, openvino, bf16 (PyTorch in bf16) or several "
                            "(onnx,openvino,bf16); scans take the fastest that passed"),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="int8: also dynamically quantised graphs"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="the label sources (for each stage's "
                                            "validation part; default: the folder the cascade was trained from)"),
    max_drop: float = typer.Option(0.5, "--max-drop", help="accuracy points an int8, OpenVINO or bf16 stage may "
                                   "lose against eager on its validation part"),
    force: bool = typer.Option(False, "--force", help="keep a graph that failed its check (scans will not use it)"),
    trust_remote_code: bool = TRUST,
):
    """Export both stages of a cascade to faster runtimes (see `transferlab export`), each checked on its own
    validation part; `vuln scan --cascade` and `vuln benchmark` then score with them."""
    from .cascade import export_cascade

    target = export_cascade(_cascade_path(cascade), out_dir, quantize=quantize, data=data_dir, max_drop=max_drop, force=force,
                            formats=[f.strip() for f in fmt.split(",") if f.strip()],
                            trust_remote_code=trust_remote_code,
                            log=lambda m: err.print(escape(m), highlight=False, soft_wrap=True))
    out.print(escape(f"exported: {target} (scan with --cascade {target})"), highlight=False)


@vuln_app.command("watch")
@friendly
def watch_cmd(
    config: Path = typer.Option(..., "--config", help="watch.toml: interval, sources, manifests, channels (see the "
                                "README)"),
    db: Optional[str] = typer.Option(None, "--db", envvar="TRANSFERLAB_VULN_DB", help="the store (overrides the "
                                     "config's db)"),
    once: bool = typer.Option(False, "--once", help="one round, then exit (for cron)"),
):
    """Ingest, scan and notify every interval: each new early warning is sent once per channel (webhook, e-mail),
    across restarts; failing sources back off; Prometheus metrics on metrics_port."""
    import signal
    import threading

    from ..serve.vuln_api import VulnConfig, VulnService
    from .store import Store
    from .watch import Watch, WatchConfig, channels_of

    cfg = WatchConfig.load(config)
    store = Store.open(db or cfg.db or "sqlite:///transferlab-vuln.db")
    service = VulnService.open(store, VulnConfig(cascade=cfg.cascade, manifests=cfg.manifests, mapping=cfg.mapping,
                                                 osv=cfg.osv, offline=not cfg.online, runtime=cfg.runtime))
    watch = Watch(cfg, store, service, channels_of(cfg))
    say = lambda m: err.print(escape(m), highlight=False, soft_wrap=True)  # noqa: E731
    if once:
        r = watch.run_round()
        say(f"ingested {r.ingested}; {r.warnings} early warning(s); sent {r.sent}"
            + (f"; failed {r.failed}" if r.failed else ""))
        if r.failed or any(isinstance(v, str) for v in r.ingested.values()):
            raise typer.Exit(ExitCode.FAILED)
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    say(f"watching {len(cfg.sources)} source(s) every {cfg.interval:.0f}s; Ctrl-C stops")
    watch.run(stop, announce=say)


@vuln_app.command("triage")
@friendly
def triage_cmd(
    db: str = DB,
    cascade: Optional[str] = typer.Option(None, "--cascade", help="whose flags to list (default: the cascade "
                                          "version that scored most recently)"),
    record: Optional[int] = typer.Option(None, "--record", help="record id (first column of the queue) to judge"),
    verdict: Optional[str] = typer.Option(None, "--verdict", help="vulnerability | security-not-vuln | "
                                          "not-security"),
    comment: Optional[str] = typer.Option(None, "--comment", help="why (kept with the verdict)"),
    reviewer: Optional[str] = typer.Option(None, "--reviewer", envvar="TRANSFERLAB_REVIEWER",
                                           help="who judges (default: the login name)"),
    interactive: bool = typer.Option(False, "--interactive", "-i", help="go through the queue, one prompt each"),
    show_all: bool = typer.Option(False, "--all", help="list judged records too"),
    limit: int = typer.Option(50, "--limit", help="rows to list"),
):
    """List the triage queue (flagged, not yet judged, most probable first), or store a verdict."""
    import getpass

    from .inert import one_line  # a title's line breaks must not fake the lines printed after it
    from .store import VERDICTS, Store

    store = Store.open(db)
    who = reviewer or getpass.getuser()
    version = _cascade(cascade).version if cascade else store.latest_version()
    if record is not None or verdict is not None:
        if record is None or verdict is None:
            raise typer.BadParameter("--record and --verdict go together")
        vid = store.add_verdict(record, verdict, who, comment, version)
        err.print(f"verdict {vid}: record {record} = {verdict} by {escape(who)}")
        return
    if version is None:
        err.print("nothing scored yet: run `transferlab vuln scan` first")
        return
    rows = [r for r in store.scored(version, flagged_only=True) if show_all or r["verdict"] is None]
    rows.sort(key=lambda r: -(r["stage1"] * (r["stage2"] or 0)))
    if interactive:
        keys = {"v": VERDICTS[0], "s": VERDICTS[1], "n": VERDICTS[2]}
        for r in rows[:limit]:
            out.rule(escape(f"record {r['id']}: {r['project']} {r['kind']}"))
            out.print(escape(f"{one_line(r['title'])}\n{one_line(r['url'] or '')}\nstage 1 {r['stage1']:.3f}  "
                             f"stage 2 {r['stage2']:.3f}"))
            for s in (r["evidence"] or {}).get("sentences", []):
                out.print(escape(f"  > {one_line(s['sentence'][:300])}"))
            answer = typer.prompt("[v]ulnerability, [s]ecurity-not-vuln, [n]ot-security, s[k]ip, [q]uit",
                                  default="k").strip().lower()
            if answer == "q":
                break
            if answer in keys:
                note = typer.prompt("comment", default="", show_default=False) or None
                store.add_verdict(r["id"], keys[answer], who, note, version)
        return
    from rich.table import Table

    table = Table(title=f"triage queue ({len(rows)} record(s), cascade {version})")
    for col in ("id", "project", "kind", "stage 1", "stage 2", "title", "url") + (("verdict",) if show_all else ()):
        table.add_column(col, overflow="fold")
    for r in rows[:limit]:
        table.add_row(str(r["id"]), escape(r["project"]), escape(r["kind"]), f"{r['stage1']:.3f}",
                      f"{r['stage2']:.3f}", escape((r["title"] or "")[:80]), escape(r["url"] or ""),
                      *((escape(r["verdict"] or ""),) if show_all else ()))
    out.print(table)
    err.print("judge one: transferlab vuln triage --record ID --verdict vulnerability|security-not-vuln|not-security "
              "[--comment TEXT]; or go through them with --interactive")


@vuln_app.command("retrain")
@friendly
def retrain_cmd(
    out_dir: Path = typer.Option(..., "--out", help="folder for the retrained cascade"),
    db: str = DB,
    cascade: Optional[str] = typer.Option(None, "--cascade", help=CASCADE_HELP),
    trust_remote_code: bool = TRUST,
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="the original label sources"),
    holdout: float = typer.Option(0.3, "--holdout", help="share of the verdicts kept out of training to measure "
                                  "before/after"),
    verdict_weight: int = typer.Option(3, "--verdict-weight", help="each verdict counts this many times in "
                                       "training"),
    as_json: bool = typer.Option(False, "--json"),
):
    """Train the cascade again on the original data plus the triage verdicts; report before/after on held-out
    data (the original test parts, and verdicts kept out of training)."""
    from .retrain import retrain
    from .store import Store

    report = retrain(_cascade(cascade, trust_remote_code), Store.open(db), out_dir, data=data_dir, holdout=holdout,
                     verdict_weight=verdict_weight, log=lambda m: err.print(escape(m), highlight=False))
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        from .retrain import table

        out.print(table(report))
        err.print(f"retrained cascade {report['after_version']} in {escape(str(out_dir))} (report: retrain.json)")


@vuln_app.command("demo")
@friendly
def demo_cmd(
    out_dir: Path = typer.Option(Path("runs/vuln-demo"), "--out", help="folder for the database and the reports"),
    cascade: Optional[str] = typer.Option(None, "--cascade", help="use this cascade instead of the shipped one"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="label sources for training the demo cascade"),
    fixtures: Optional[Path] = typer.Option(None, "--fixtures", help="the fixtures folder (default "
                                            "../shared/data/fixtures)"),
    retrain_cascade: bool = typer.Option(False, "--retrain", help="train a cascade from the label sources (about "
                                         "15 minutes on 2 CPU cores) and use it from then on"),
):
    """Offline, end to end, on an embedded SQLite store: a demo manifest -> repositories -> the fixtures ingested
    -> scored -> reports (Markdown, HTML, CSV, JSON, SARIF) in --out."""
    from .demo import run_demo

    result = run_demo(out_dir, cascade=cascade, data=data_dir, fixtures=fixtures, retrain=retrain_cascade,
                      log=lambda m: err.print(escape(m), highlight=False))
    _print_result(result)
    err.print(f"reports: {escape(str(out_dir))}/report.{{md,html,csv,json,sarif}}")


@vuln_app.command("speed")
@friendly
def speed_cmd(
    cascade: Optional[str] = typer.Option(None, "--cascade", help=CASCADE_HELP),
    out_dir: Path = typer.Option(Path("benchmarks/vuln-speed"), "--out", help="where results.{json,md} go"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="the label sources (for the Matomo items)"),
    runtimes: str = typer.Option("torch,auto", "--runtimes", help="comma-separated, side by side; the first is the "
                                 "reference the others' flags are compared with (auto | onnx | bf16 | torch)"),
    max_items: Optional[int] = typer.Option(None, "--max-items", help="events (default: the whole test period)"),
):
    """`vuln scan` end to end (ingest a GH Archive hour, score every record) with each runtime side by side in one
    run, on the same hour and cores; each runtime's flags checked against the first's."""
    import shlex
    import sys

    from .benchmark import scan_speed

    names = [r.strip() for r in runtimes.split(",") if r.strip()]
    scan_speed(_cascade_path(cascade), out_dir, data=data_dir, runtimes=names, max_items=max_items,
               log=lambda m: err.print(escape(m), highlight=False),
               command=shlex.join(["transferlab", *sys.argv[1:]]))
    out.print((out_dir / "results.md").read_text(encoding="utf-8"), markup=False, highlight=False)


@vuln_app.command("benchmark")
@friendly
def benchmark_cmd(
    cascade: str = typer.Option(..., "--cascade", help="cascade folder from `transferlab vuln train`"),
    out_dir: Path = typer.Option(Path("benchmarks/vuln"), "--out", help="where results.{json,md} and the plot go"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="the label sources"),
    max_throughput: Optional[int] = typer.Option(None, "--max-throughput", help="items for the throughput run "
                                                 "(default: the whole test period)"),
    runtime: str = RUNTIME,
):
    """Held-out figures of both stages (Matomo by time for stage 1), the whole cascade on the test period, and
    ingest + scoring throughput on this machine."""
    from .benchmark import run

    import shlex
    import sys

    result = run(cascade, out_dir, data=data_dir, max_throughput=max_throughput, runtime=runtime,
                 log=lambda m: err.print(escape(m), highlight=False),
                 command=shlex.join(["transferlab", *sys.argv[1:]]))
    out.print((out_dir / "results.md").read_text(encoding="utf-8"), markup=False, highlight=False)
    for w in result.get("warnings", []):
        err.print(f"[yellow]warning:[/] {escape(w)}")
