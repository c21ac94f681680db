"""Issue 13: a model or cascade folder never runs its own code on its say-so, and every encoder's weights are checked.

The encoders here are tiny randomly initialised BERTs (hidden 32, 2 layers) with a WordPiece vocabulary of a few
words, so a frozen model trains in a second.  A "hostile" folder ships a Python file that writes a marker file if it
is ever imported; no test may see the marker.
"""

import json
import os
import shutil
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from transferlab.cli import app
from transferlab.encoders import zoo
from transferlab.errors import ModelFileError
from transferlab.models.classifier import TextClassifier
from transferlab.vuln.cascade import Cascade

from conftest import sentiment_data, serve_as_mpnet_parts

WORDS = "a the film story acting great terrible wonderful boring i loved hated it number and".split()
runner = CliRunner()


def make_encoder(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


def plant_code(folder: Path, marker: Path, module: str = "custom_code") -> None:
    """A Python file that proves it ran by writing ``marker``, plus classes transformers can load from it."""
    (folder / f"{module}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import BertConfig, BertModel\n"
        "class CustomConfig(BertConfig):\n    pass\n"
        "class CustomModel(BertModel):\n    config_class = CustomConfig\n"
        "class CustomModule:\n    pass\n", encoding="utf-8")


def add_auto_map(folder: Path, module: str = "custom_code") -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": f"{module}.CustomConfig", "AutoModel": f"{module}.CustomModel"}
    (folder / "config.json").write_text(json.dumps(cfg))


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def encoder_base(tmp_path_factory):
    return make_encoder(tmp_path_factory.mktemp("enc") / "tiny")


@pytest.fixture
def encoder(encoder_base, tmp_path):
    return Path(shutil.copytree(encoder_base, tmp_path / "encoder"))


@pytest.fixture
def marker(tmp_path, monkeypatch):
    # if transformers ever imports the planted code, its copy goes to this test's folder, not the user's cache
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "hf-modules"))
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "code shipped in a model folder ran"


def train(encoder: Path, out: Path, strategy: str = "frozen") -> Path:
    texts, labels = sentiment_data(16)
    options = {"head": "logreg", "epochs": 2} if strategy == "frozen" else {"epochs": 1, "max_length": 16}
    # a fixed threshold (fitted on nothing) is what a cascade stage needs
    clf = TextClassifier(encoder=str(encoder), strategy=strategy, validation_fraction=0, device="cpu",
                         batch_size=8, threshold="0.5", positive="positive", **options)
    clf.fit(texts, labels, out_dir=out)
    return out


@pytest.fixture
def frozen_model(encoder, tmp_path):
    return train(encoder, tmp_path / "model")


# ---------------------------------------------------------------------- remote code: never on the folder's say-so
def test_config_asking_for_remote_code_is_refused_and_names_the_folder(frozen_model, encoder, marker):
    plant_code(encoder, marker)
    add_auto_map(encoder)
    edit_json(frozen_model / "config.json", lambda c: c["model"].update(trust_remote_code=True))
    with pytest.raises(ModelFileError) as exc:
        TextClassifier.load(frozen_model, device="cpu")
    assert exc.value.where == str(frozen_model) and "--trust-remote-code" in exc.value.hint


def test_predict_cli_refuses_a_folder_that_asks_for_remote_code(frozen_model, encoder, marker):
    plant_code(encoder, marker)
    add_auto_map(encoder)
    edit_json(frozen_model / "config.json", lambda c: c["model"].update(trust_remote_code=True))
    result = runner.invoke(app, ["predict", str(frozen_model)], input='{"text": "a great film"}\n')
    assert result.exit_code == 3, result.output
    assert str(frozen_model) in result.output and "--trust-remote-code" in result.output
    result = runner.invoke(app, ["evaluate", str(frozen_model), "--data", "x.csv"])
    assert result.exit_code == 3 and "--trust-remote-code" in result.output


def test_the_users_flag_at_load_time_is_what_enables_remote_code(frozen_model):
    """A folder that asked (but ships no code) loads when the user says so, and the user's flag is what is used."""
    edit_json(frozen_model / "config.json", lambda c: c["model"].update(trust_remote_code=True))
    clf = TextClassifier.load(frozen_model, device="cpu", trust_remote_code=True)
    assert clf.model_config.trust_remote_code is True and len(clf.predict(["a great film"])) == 1
    result = runner.invoke(app, ["predict", str(frozen_model), "--trust-remote-code"],
                           input='{"text": "a great film"}\n')
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["label"] in ("positive", "negative")


def test_encoder_folder_with_auto_map_is_refused_without_the_flag(frozen_model, encoder, marker):
    plant_code(encoder, marker)
    add_auto_map(encoder)  # the model's own config.json still says trust_remote_code: false
    with pytest.raises(ModelFileError) as exc:
        TextClassifier.load(frozen_model, device="cpu")
    assert exc.value.where == str(encoder) and "auto_map" in exc.value.message
    assert "--trust-remote-code" in exc.value.hint


def test_training_on_an_encoder_that_ships_code_is_refused(encoder, marker, tmp_path):
    plant_code(encoder, marker)
    add_auto_map(encoder)
    for strategy in ("frozen", "finetune"):
        with pytest.raises(ModelFileError) as exc:
            train(encoder, tmp_path / strategy, strategy)
        assert exc.value.where == str(encoder)


@pytest.mark.parametrize("peer", ["run_hf_trainer", "run_setfit"])
def test_benchmark_peers_refuse_an_encoder_folder_that_ships_code(peer, encoder, marker, tmp_path):
    """The peers load encoders with their own libraries (SetFit has no trust switch at all): the same check first."""
    from transferlab.bench import peers
    from transferlab.data.records import Examples

    plant_code(encoder, marker, module="custom_module")
    (encoder / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "",
                                                       "type": "custom_module.CustomModule"}]))
    add_auto_map(encoder, module="custom_module")
    texts, labels = sentiment_data(8)
    data = Examples(texts=texts, labels=labels)
    with pytest.raises(ModelFileError) as exc:
        getattr(peers, peer)({"encoder": str(encoder)}, {}, {}, data, None, data, tmp_path / "row", "cpu")
    assert exc.value.where == str(encoder)


def test_sentence_transformers_modules_naming_custom_code_are_refused(frozen_model, encoder, marker):
    plant_code(encoder, marker, module="custom_module")
    (encoder / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "",
                                                       "type": "custom_module.CustomModule"}]))
    with pytest.raises(ModelFileError) as exc:
        TextClassifier.load(frozen_model, device="cpu")
    assert exc.value.where == str(encoder) and "custom_module.CustomModule" in exc.value.message


def test_finetuned_model_folder_with_auto_map_is_refused(encoder, marker, tmp_path):
    model = train(encoder, tmp_path / "ft", strategy="finetune")
    assert TextClassifier.load(model, device="cpu").predict(["a great film"])
    plant_code(model / "encoder", marker)
    add_auto_map(model / "encoder")
    with pytest.raises(ModelFileError) as exc:
        TextClassifier.load(model, device="cpu")
    assert exc.value.where == str(model / "encoder")


def test_cascade_loading_passes_the_users_flag_down(frozen_model, tmp_path, marker):
    cascade = tmp_path / "cascade"
    for stage in ("stage1", "stage2"):
        shutil.copytree(frozen_model, cascade / stage)
    (cascade / "cascade.json").write_text("{}")
    edit_json(cascade / "stage1" / "config.json", lambda c: c["model"].update(trust_remote_code=True))
    with pytest.raises(ModelFileError) as exc:
        Cascade.load(cascade)
    assert exc.value.where == str(cascade / "stage1")
    # with the user's flag the stage loads and the cascade gets as far as comparing its record
    with pytest.raises(ModelFileError, match="not the ones this cascade.json describes"):
        Cascade.load(cascade, trust_remote_code=True)
    (tmp_path / "requirements.txt").write_text("requests==2.31.0\n")
    commands = (["scan", "--manifest", str(tmp_path / "requirements.txt")], ["retrain", "--out", str(tmp_path / "new")])
    for command in commands:
        result = runner.invoke(app, ["vuln", *command, "--db", f"sqlite:///{tmp_path / 'v.db'}",
                                     "--cascade", str(cascade)])
        assert result.exit_code == 3 and str(cascade / "stage1") in result.output, result.output
        assert "--trust-remote-code" in result.output
        result = runner.invoke(app, ["vuln", *command, "--db", f"sqlite:///{tmp_path / 'v.db'}",
                                     "--cascade", str(cascade), "--trust-remote-code"])
        assert "not the ones this cascade.json describes" in result.output, result.output


# ---------------------------------------------------------------------- the hash of a local encoder
def test_swapped_local_encoder_weights_are_refused_naming_file_and_hashes(frozen_model, encoder, tmp_path):
    config = json.loads((frozen_model / "config.json").read_text())
    recorded = config["encoder"]["files"]["model.safetensors"]
    assert recorded == zoo.sha256_file(encoder / "model.safetensors")
    before = TextClassifier.load(frozen_model, device="cpu").predict_proba(["a great film"])
    other = make_encoder(tmp_path / "other", seed=1)  # same architecture and size, other weights
    shutil.copyfile(other / "model.safetensors", encoder / "model.safetensors")
    actual = zoo.sha256_file(encoder / "model.safetensors")
    with pytest.raises(ModelFileError) as exc:
        TextClassifier.load(frozen_model, device="cpu")
    assert exc.value.where == str(encoder / "model.safetensors")
    assert recorded in exc.value.message and actual in exc.value.message
    assert before.shape == (1, 2)


def test_model_saved_without_an_encoder_hash_still_loads_with_a_warning(frozen_model, encoder):
    def as_saved_by_older_versions(c):
        c["encoder"].pop("files", None)
        c["encoder"]["sha256"] = None

    edit_json(frozen_model / "config.json", as_saved_by_older_versions)
    with pytest.warns(UserWarning, match="no SHA-256 of its encoder"):
        clf = TextClassifier.load(frozen_model, device="cpu")
    assert len(clf.predict(["a great film"])) == 1


def test_a_missing_weights_file_of_the_encoder_is_named(frozen_model, encoder):
    (encoder / "model.safetensors").rename(encoder / "elsewhere.bin")
    with pytest.raises(ModelFileError) as exc:
        TextClassifier.load(frozen_model, device="cpu")
    assert "model.safetensors" in exc.value.message and "missing" in exc.value.message


def test_packaged_encoder_is_checked_against_the_hash_recorded_at_training(tmp_path):
    up = zoo.ZOO["minilm"].sha256
    saved = zoo.Resolved("minilm", zoo.TRANSFORMER, "/site-packages/minilm", True, "rev", up,
                         files={"model.safetensors": up})
    zoo.check_same_encoder(saved, zoo.Resolved("minilm", zoo.TRANSFORMER, "org/minilm", False, "rev", up))  # hub
    copy = zoo.Resolved("minilm", zoo.TRANSFORMER, str(tmp_path), True, files={"model.safetensors": "ab" * 32})
    with pytest.raises(ModelFileError) as exc:  # TRANSFERLAB_MODELS pointing at other weights
        zoo.check_same_encoder(saved, copy)
    assert exc.value.where == str(tmp_path / "model.safetensors") and up in exc.value.message


# ---------------------------------------------------------------------- packaged weights: always re-hashed
def test_edited_packaged_weights_with_same_size_and_mtime_are_refused(tmp_path, monkeypatch):
    fake = tmp_path / "model"
    fake.mkdir()
    weights = fake / "model.safetensors"
    weights.write_bytes(b"the upstream weights, honestly")
    entry = zoo.ZOO["minilm"]
    monkeypatch.setitem(zoo.ZOO, "minilm", zoo.ZooEntry(**{**entry.__dict__, "sha256": zoo.sha256_file(weights)}))
    monkeypatch.setattr(zoo, "_local_minilm", lambda: fake)
    assert zoo.resolve("minilm").location == str(fake)
    stat = weights.stat()
    weights.write_bytes(b"THE upstream weights, honestly")  # same size
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same mtime
    with pytest.raises(ModelFileError, match="SHA-256"):
        zoo.resolve("minilm")


# ---------------------------------------------------------------------- the MPNet zip parts
def _extracted(tmp_path) -> list[Path]:
    target = tmp_path / "cache" / "models"
    return [p for p in target.rglob("*") if p.is_file()] if target.exists() else []


@pytest.mark.parametrize("lowered_by", ["constant", "environment"])
def test_zip_whose_declared_size_exceeds_the_limit_is_refused_before_extracting(tmp_path, monkeypatch, lowered_by):
    archive = tmp_path / "whole.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("all-mpnet-base-v2/config.json", b"{}")
        zf.writestr("all-mpnet-base-v2/model.safetensors", os.urandom(4096))
    serve_as_mpnet_parts(monkeypatch, tmp_path, archive)
    if lowered_by == "constant":
        monkeypatch.setattr(zoo, "MAX_UNPACKED_BYTES", 2048)
    else:
        monkeypatch.setenv("TRANSFERLAB_MAX_UNPACKED_BYTES", "2048")
    with pytest.raises(ModelFileError, match="uncompressed") as exc:
        zoo._local_mpnet()
    assert "TRANSFERLAB_MAX_UNPACKED_BYTES" in exc.value.hint
    assert _extracted(tmp_path) == []


def test_zip_bomb_of_zeros_is_refused_by_its_ratio(tmp_path, monkeypatch):
    archive = tmp_path / "whole.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("all-mpnet-base-v2/config.json", b"{}")
        zf.writestr("all-mpnet-base-v2/model.safetensors", bytes(4 << 20))
    serve_as_mpnet_parts(monkeypatch, tmp_path, archive)
    with pytest.raises(ModelFileError, match="ratio"):
        zoo._local_mpnet()
    assert _extracted(tmp_path) == []


def test_zip_that_lies_about_a_size_is_refused_and_cleaned_up(tmp_path, monkeypatch):
    archive = tmp_path / "whole.zip"
    data = os.urandom(64 << 10)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("all-mpnet-base-v2/model.safetensors", data)
    blob = bytearray(archive.read_bytes())
    central = blob.index(b"PK\x01\x02")
    struct.pack_into("<I", blob, central + 24, 1000)  # the central directory claims 1000 bytes
    archive.write_bytes(bytes(blob))
    serve_as_mpnet_parts(monkeypatch, tmp_path, archive)
    with pytest.raises(ModelFileError):
        zoo._local_mpnet()
    assert _extracted(tmp_path) == []


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "link"])
def test_zip_members_that_escape_or_are_links_are_refused(tmp_path, monkeypatch, name):
    archive = tmp_path / "whole.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo(name)
        if name == "link":
            info.external_attr = (0o120777 << 16)  # a symbolic link to /etc/passwd
        zf.writestr(info, b"/etc/passwd" if name == "link" else b"x")
    serve_as_mpnet_parts(monkeypatch, tmp_path, archive)
    with pytest.raises(ModelFileError):
        zoo._local_mpnet()
    assert _extracted(tmp_path) == [] and not (tmp_path / "cache" / "evil.txt").exists()


def test_a_sound_archive_still_unpacks(tmp_path, monkeypatch):
    archive = tmp_path / "whole.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("all-mpnet-base-v2/model.safetensors", os.urandom(1 << 20))
        zf.writestr("all-mpnet-base-v2/config.json", b'{"model_type": "mpnet"}')
    serve_as_mpnet_parts(monkeypatch, tmp_path, archive)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder = zoo._local_mpnet()
    assert (folder / "config.json").read_bytes() == b'{"model_type": "mpnet"}'
    assert not list((tmp_path / "cache" / "models").glob("*.partial"))
