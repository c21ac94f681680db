"""benchmarks/gpu/carry.py: a model split into fp16 parts comes back whole, and a damaged part is refused."""

import importlib.util
from pathlib import Path

import pytest
from safetensors.torch import load_file

from transferlab.encoders.zoo import resolve

spec = importlib.util.spec_from_file_location("carry", Path(__file__).parents[1] / "benchmarks" / "gpu" / "carry.py")
carry = importlib.util.module_from_spec(spec)
spec.loader.exec_module(carry)


@pytest.mark.slow
def test_pack_unpack_round_trip_and_damage(tmp_path, monkeypatch):
    carry.pack("minilm", tmp_path / "packed", chunk_mb=8)
    parts = sorted((tmp_path / "packed" / "parts").rglob("*.part*"))
    assert max(p.stat().st_size for p in parts) <= 8 * 2**20 and len(parts) > 5
    carry.unpack(tmp_path / "packed", tmp_path / "model")
    original = load_file(str(Path(resolve("minilm").location) / "model.safetensors"))
    copy = load_file(str(tmp_path / "model" / "model.safetensors"))
    assert copy.keys() == original.keys()
    name = "embeddings.word_embeddings.weight"
    assert copy[name].dtype.is_floating_point and copy[name].element_size() == 2
    assert (copy[name].float() - original[name]).abs().max() < 1e-3
    monkeypatch.setenv("TRANSFERLAB_MODELS", f"minilm={tmp_path / 'model'}")
    assert resolve("minilm").location == str((tmp_path / "model").resolve())

    weights_part = next(p for p in parts if p.name.startswith("model.safetensors.part"))
    weights_part.write_bytes(b"x" + weights_part.read_bytes()[1:])
    with pytest.raises(SystemExit, match="SHA-256 differs"):
        carry.unpack(tmp_path / "packed", tmp_path / "again")
