"""Carry a model to a GPU machine that has no network and no model packages, in pieces small enough to travel.

    python benchmarks/gpu/carry.py pack minilm carry/minilm      # fp16 safetensors + config/tokenizer, split
    python benchmarks/gpu/carry.py unpack carry/minilm /tmp/models/minilm   # on the GPU box: join, check, restore
    TRANSFERLAB_MODELS="minilm=/tmp/models/minilm" transferlab bench imdb-seed --out runs/gpu

``pack`` resolves the short name (so the upstream SHA-256 is checked first), writes every floating-point tensor as
fp16 (half the bytes), and splits any file over ``--chunk-mb`` into numbered parts, with a manifest of SHA-256 sums.
``unpack`` joins the parts, refuses any file whose hash differs, and leaves a folder that loads like the original.
TransferLab loads such a copy as float32 before training (fp16 master weights silently collapse to chance).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from transferlab.encoders.zoo import sha256_file as _sha256

WEIGHTS = "model.safetensors"


def pack(name: str, out: Path, chunk_mb: int) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from transferlab.encoders.zoo import resolve

    src = Path(resolve(name).location)
    if not (src / WEIGHTS).exists():
        sys.exit(f"{src}: no {WEIGHTS} to pack")
    stage = out / "stage"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(src, stage, ignore=shutil.ignore_patterns("*.bin", "*.h5", "*.onnx", "*.msgpack", "*.ot",
                                                              "onnx", "openvino", WEIGHTS))
    state = load_file(str(src / WEIGHTS))
    save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in state.items()},
              str(stage / WEIGHTS), metadata={"format": "pt", "transferlab": f"fp16 copy of {name}"})
    manifest = {"name": name, "files": {}}
    limit = chunk_mb * 2**20
    for path in sorted(p for p in stage.rglob("*") if p.is_file()):
        rel = path.relative_to(stage).as_posix()
        manifest["files"][rel] = {"sha256": _sha256(path), "parts": []}
        data = path.read_bytes()
        for i in range(0, max(len(data), 1), limit):
            part = out / "parts" / f"{rel}.part{i // limit:03d}"
            part.parent.mkdir(parents=True, exist_ok=True)
            part.write_bytes(data[i:i + limit])
            manifest["files"][rel]["parts"].append(part.relative_to(out).as_posix())
    shutil.rmtree(stage)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    parts = sorted((out / "parts").rglob("*.part*"))
    print(f"{name}: {len(manifest['files'])} files in {len(parts)} parts, largest "
          f"{max(p.stat().st_size for p in parts) / 2**20:.1f} MiB, total "
          f"{sum(p.stat().st_size for p in parts) / 2**20:.1f} MiB -> {out}")


def unpack(src: Path, dest: Path) -> None:
    manifest = json.loads((src / "manifest.json").read_text(encoding="utf-8"))
    dest.mkdir(parents=True, exist_ok=True)
    for rel, info in manifest["files"].items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as f:
            for part in info["parts"]:
                piece = src / part
                if not piece.exists():
                    sys.exit(f"{piece}: missing part; carry every part before unpacking")
                f.write(piece.read_bytes())
        if _sha256(target) != info["sha256"]:
            target.unlink()
            sys.exit(f"{target}: SHA-256 differs from the manifest; a part is damaged or from another pack")
    print(f"{manifest['name']}: {len(manifest['files'])} files restored and checked in {dest}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("name")
    p.add_argument("out", type=Path)
    p.add_argument("--chunk-mb", type=int, default=60)
    u = sub.add_parser("unpack")
    u.add_argument("src", type=Path)
    u.add_argument("dest", type=Path)
    args = ap.parse_args()
    if args.cmd == "pack":
        pack(args.name, args.out, args.chunk_mb)
    else:
        unpack(args.src, args.dest)


if __name__ == "__main__":
    main()
