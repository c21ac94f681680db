"""``transferlab vuln demo``: the whole application offline, on an embedded SQLite store.

A small project (``demo_project/requirements.txt``) -> its packages mapped to projects by the demo's mapping
file (offline: no registry is asked) -> the fixtures ingested (GH Archive events of the mapped repositories, the
oss-security and Perceval mailing-list archives) -> scored by the cascade -> checked against an OSV export
(``demo_project/osv``: one real advisory, GHSA-x84v-xcm2-53pg for requests < 2.20.0) -> reports in five formats.

The cascade is the one given, else the one shipped with TransferLab (``vuln/cascade_default``: two logistic-
regression heads over the frozen MiniLM encoder, stage 1's with a stacked TF-IDF score beside the embedding,
trained with ``transferlab vuln train`` on the label sources;
its held-out figures are in its ``cascade.json`` and benchmarks/vuln).  ``--retrain`` trains a fresh one from
the label sources instead (about 15 minutes on two CPU cores), cached in ``$TRANSFERLAB_CACHE/vuln-cascade-demo``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..encoders.zoo import cache_dir
from .scan import ScanResult

PROJECT = Path(__file__).parent / "demo_project"
REPORTS = ("report.md", "report.html", "report.csv", "report.json", "report.sarif")


SHIPPED = Path(__file__).parent / "cascade_default"


def cached_cascade() -> Path | None:
    """The cascade used when none is named: one trained by ``demo --retrain`` if there is one, else the shipped one."""
    folder = cache_dir() / "vuln-cascade-demo"
    if (folder / "cascade.json").is_file():
        return folder
    return SHIPPED if (SHIPPED / "cascade.json").is_file() else None


def fixtures_dir(path: str | Path | None = None) -> Path:
    from ..errors import DataError
    from .labels import shared_folder

    folder = shared_folder(path, "TRANSFERLAB_FIXTURES", "fixtures")
    if not (folder / "github_events").is_dir():
        raise DataError("the fixtures folder (with github_events/, mailing_lists/, perceval/) is not there",
                        where=str(folder), hint="pass --fixtures (../shared/data/fixtures in this project)")
    return folder


def run_demo(out: str | Path, *, cascade: str | Path | None = None, data=None, fixtures=None, retrain: bool = False,
             log: Callable[[str], None] = print, progress: bool = True) -> ScanResult:
    from . import report
    from .advisories import AdvisoryIndex
    from .cascade import Cascade, train_cascade
    from .dependencies import parse_manifest
    from .ingest import ingest
    from .mapping import RepositoryMapper, is_repository
    from .scan import scan
    from .sources import make_connector
    from .store import Store

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fx = fixtures_dir(fixtures)
    if cascade is not None:
        model = Cascade.load(cascade)
    elif cached_cascade() is not None and not retrain:
        model = Cascade.load(cached_cascade())
        log(f"cascade: {model.version} ({cached_cascade()}; --retrain trains one from the label sources)")
    else:
        log("cascade: training one from the label sources (cached for later runs)")
        model = train_cascade(cache_dir() / "vuln-cascade-demo", data=data, log=log)
    manifest = PROJECT / "requirements.txt"
    mapper = RepositoryMapper(PROJECT / "mapping.toml", cache_file=out / "mapping-cache.json", online=False)
    deps = parse_manifest(manifest).dependencies
    repos = sorted({p for d in deps for p in mapper.map(d).projects if is_repository(p)})
    log(f"manifest {manifest.name}: {len(deps)} dependencies; repositories to follow: {', '.join(repos)}")
    db = out / "vuln.db"
    if db.exists():
        db.unlink()  # each demo run starts from an empty store
    store = Store.open(f"sqlite:///{db}")
    for source, kwargs in (("gharchive", {"path": [str(fx / "github_events")], "repos": repos}),
                           ("mbox", {"path": [str(fx / "mailing_lists")]}),
                           ("mbox", {"path": [str(fx / "perceval" / "mbox")]}),
                           ("pipermail", {"path": [str(fx / "perceval" / "pipermail")]})):
        rep = ingest(make_connector(source, **kwargs), store, progress=progress)
        log(f"ingest {source}: {rep.summary()}")
    advisories = AdvisoryIndex.from_directory(PROJECT / "osv")
    result = scan([str(manifest)], store, model, mapper, advisories, progress=progress)
    for name in REPORTS:
        report.write(result, out / name)
    log(f"scored {result.scored_now} records in {result.scoring_seconds:.1f} s")
    return result
