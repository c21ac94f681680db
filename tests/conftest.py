import os
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IMDB = SHARED_DATA / "imdb" / "movie_reviews.csv.bz2"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Embedding caches and verification stamps go to a per-session folder, never the user's home."""
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def security_data(tmp_path_factory):
    """The learnable stand-in for ../shared/data/security (tests/vuln_data.py)."""
    from vuln_data import write_security_data

    return write_security_data(tmp_path_factory.mktemp("security"))


@pytest.fixture(scope="session")
def cascade_dir(security_data, tmp_path_factory):
    """A real (small) glove-dan cascade, trained once per session and shared by the vuln and service tests."""
    from transferlab.vuln.cascade import train_cascade

    out = tmp_path_factory.mktemp("cascade")
    train_cascade(out, data=security_data, stage1_recipe="glove-dan", stage2_recipe="glove-dan", log=lambda m: None)
    return out


@pytest.fixture(scope="session")
def imdb_path() -> Path:
    if not IMDB.exists():
        pytest.skip("../shared/data/imdb is not beside the repository")
    return IMDB


def write_csv(path: Path, rows, header=("text", "label")) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def sentiment_data(n: int = 40):
    """A tiny, learnable sentiment set: the label is carried by obvious words."""
    good = ["a wonderful moving film", "great acting and a superb story", "i loved it , brilliant",
            "excellent , touching and funny", "a delightful masterpiece"]
    bad = ["a terrible boring film", "awful acting and a dull story", "i hated it , dreadful",
           "poor , tedious and stupid", "a horrible waste of time"]
    texts, labels = [], []
    for i in range(n):
        src, lab = (good, "positive") if i % 2 == 0 else (bad, "negative")
        texts.append(f"{src[(i // 2) % len(src)]} number {i}")
        labels.append(lab)
    return texts, labels


def serve_as_mpnet_parts(monkeypatch, tmp_path, archive: Path) -> list[Path]:
    """Cut ``archive`` into five files and make the zoo take them for the installed MPNet zip parts."""
    from transferlab.encoders import zoo

    blob = archive.read_bytes()
    parts = []
    for i in range(5):
        part = tmp_path / f"part{i}"
        part.write_bytes(blob[i * len(blob) // 5: (i + 1) * len(blob) // 5])
        parts.append(part)
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(zoo, "_mpnet_parts", lambda: parts)
    return parts


def drain(connector, checkpoint=None):
    """Everything a vuln connector yields from ``checkpoint`` on, summed over its batches."""
    from transferlab.vuln.sources.base import Batch

    total = Batch()
    for batch in connector.batches(checkpoint):
        total.records += batch.records
        total.skips += batch.skips
        total.filtered += batch.filtered
        total.unchanged += batch.unchanged
        total.checkpoint = batch.checkpoint
    return total


def _postgres_url():
    url = os.environ.get("TRANSFERLAB_TEST_PG_URL")
    if not url:
        if os.environ.get("TRANSFERLAB_REQUIRE_PG") == "1":
            pytest.fail("TRANSFERLAB_REQUIRE_PG=1 but TRANSFERLAB_TEST_PG_URL is not set")
        pytest.skip("no PostgreSQL server (set TRANSFERLAB_TEST_PG_URL; scripts/postgres.sh start gives one)")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    admin = sa.create_engine(_postgres_url(), isolation_level="AUTOCOMMIT")
    name = f"tl_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))  # a generated name: identifiers cannot be bound
    url = admin.url.set(database=name)
    yield url.render_as_string(hide_password=False)
    sa.create_engine(url).dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def skewed_security(n_pos=12, n_neg=108, seed=0):
    """Texts about security bugs (the rare class) among everyday issues: a learnable, skewed set."""
    import numpy as np

    from transferlab.data.records import Examples

    rng = np.random.default_rng(seed)
    pos = ["buffer overflow in the parser", "xss in the login form", "remote code execution via upload",
           "sql injection in search", "use after free crash exploit", "csrf token missing on settings"]
    neg = ["button colour is wrong", "typo in the docs", "page loads slowly", "add dark mode",
           "translation missing", "crash when window resized", "sorting order is odd", "update the logo"]
    texts = [f"{pos[i % len(pos)]} case {i}" for i in range(n_pos)] + [f"{neg[i % len(neg)]} item {i}"
                                                                       for i in range(n_neg)]
    labels = ["security"] * n_pos + ["other"] * n_neg
    order = rng.permutation(len(texts))
    return Examples([texts[i] for i in order], [labels[i] for i in order])
