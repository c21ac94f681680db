"""ONNX export (runtime/onnx.py): each family's graph scores as eager PyTorch does, at every text length; a graph
that fails its check is refused or, with --force, kept but never used by ``--runtime auto``; an altered graph or one
made from other weights is refused at load; the CLI's export, predict and evaluate agree across runtimes."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from transferlab.errors import ConfigError, ModelFileError  # noqa: E402
from transferlab.models.classifier import TextClassifier  # noqa: E402
from transferlab.runtime.onnx import OnnxNet, export_model  # noqa: E402

from conftest import sentiment_data, write_csv  # noqa: E402

# Texts of every length: one word (shorter than the CNN's widest filter), a few, and long ones that are cut.
PROBES = ["great", "dull film", "a wonderful moving film with superb acting",
          " ".join(["a terrible boring film and awful acting"] * 30), "i loved it , brilliant and touching"]


def _trained(tmp_path, name, **kw):
    texts, labels = sentiment_data(40)
    data = write_csv(tmp_path / "data.csv", list(zip(texts, labels)))
    clf = TextClassifier(**{"seed": 0, "patience": None, **kw}).fit(texts, labels)
    clf.save(tmp_path / name)
    return tmp_path / name, data


@pytest.mark.parametrize("kw", [dict(encoder="glove-50d", head="cnn", epochs=3, max_length=64),
                                dict(encoder="glove-50d", head="bigru", epochs=2, max_length=64),
                                dict(encoder="glove-50d", head="dan", epochs=2, max_length=64)],
                         ids=["cnn", "bigru", "dan"])
def test_word_vector_graphs_score_like_eager_at_every_length(tmp_path, kw):
    folder, data = _trained(tmp_path, "m", **kw)
    record = export_model(folder, data=str(data), announce=lambda m: None)
    assert record["check"]["fp32"]["ok"] and record["default"] == "fp32"
    onnx = TextClassifier.load(folder)  # auto: the checked export
    assert isinstance(onnx.runtime_, OnnxNet)
    eager = TextClassifier.load(folder, runtime="torch")
    assert eager.runtime_ is None
    # one batch mixing every length, then each text alone (a one-word batch: the CNN's short-text case, which a
    # traced length branch got wrong)
    np.testing.assert_allclose(onnx.predict_proba(PROBES), eager.predict_proba(PROBES), atol=1e-5)
    for text in PROBES:
        np.testing.assert_allclose(onnx.predict_proba([text]), eager.predict_proba([text]), atol=1e-5)


@pytest.mark.slow
def test_fine_tuned_transformer_exports_with_int8_and_the_record_says_what_was_checked(tmp_path):
    folder, data = _trained(tmp_path, "ft", encoder="minilm", strategy="finetune", epochs=2, max_length=32,
                            batch_size=8, lr=1e-4)
    record = export_model(folder, quantize="int8", data=str(data), max_drop=100.0, announce=lambda m: None)
    files = record["files"]
    assert set(files) == {"fp32", "int8"} and files["int8"]["bytes"] < files["fp32"]["bytes"] / 2
    assert record["check"]["rows"] == 40 and record["check"]["fp32"]["max_abs_proba_diff"] <= 1e-4
    # auto takes the faster of the two checked graphs, as timed on the check sample
    check = record["check"]
    assert record["default"] == max(("fp32", "int8"), key=lambda k: check[k]["docs_per_second"])
    assert "bert fusions" in record["optimisation"] and check["eager_docs_per_second"] > 0
    # traced with eager attention, every layer's attention fuses (the SDPA trace fused none of MiniLM's 6)
    assert "'Attention': 6" in record["optimisation"] and "EmbedLayerNormalization" in record["optimisation"]
    onnx, eager = TextClassifier.load(folder, runtime="onnx"), TextClassifier.load(folder, runtime="torch")
    assert onnx.runtime_.kind == record["default"]
    onnx.use_runtime(OnnxNet(folder / "onnx" / "model.int8.onnx", kind="int8"))
    # int8 is close, not equal: the labels of clear cases agree
    assert onnx.predict(PROBES[:3]) == eager.predict(PROBES[:3])
    assert np.abs(onnx.predict_proba(PROBES) - eager.predict_proba(PROBES)).max() < 0.2


@pytest.mark.slow
def test_frozen_encoder_graph_embeds_like_eager_and_caches_apart(tmp_path, monkeypatch):
    from transferlab.encoders import sentence

    folder, data = _trained(tmp_path, "frozen", encoder="minilm", strategy="frozen")

    def no_cache(*args, **kwargs):  # the export times each runtime encoding, never reading cached embeddings
        raise AssertionError("the export check read the embedding cache")

    with monkeypatch.context() as m:
        m.setattr(sentence.EmbeddingCache, "get", no_cache)
        record = export_model(folder, data=str(data), announce=lambda m: None)
    assert "'Attention': 6" in record["optimisation"]
    onnx, eager = TextClassifier.load(folder), TextClassifier.load(folder, runtime="torch")
    assert onnx.backend_._graph is not None and eager.backend_._graph is None
    np.testing.assert_allclose(onnx.predict_proba(PROBES), eager.predict_proba(PROBES), atol=1e-4)
    enc_onnx, enc_eager = onnx.backend_._encoder(), eager.backend_._encoder()
    assert enc_onnx.cache.path != enc_eager.cache.path  # a graph's vectors never land in PyTorch's cache
    np.testing.assert_allclose(enc_onnx.encode(PROBES, show_progress=False),
                               enc_eager.encode(PROBES, show_progress=False), atol=1e-4)


def test_failed_check_refuses_or_with_force_keeps_a_graph_auto_never_uses(tmp_path):
    folder, data = _trained(tmp_path, "m", encoder="glove-50d", head="cnn", epochs=2, max_length=32)
    with pytest.raises(ModelFileError, match="failed its check.*nothing was kept"):
        export_model(folder, data=str(data), tolerance=-1.0, announce=lambda m: None)
    assert not any((folder / "onnx").iterdir())
    with pytest.warns(UserWarning, match="failed its check"):
        record = export_model(folder, data=str(data), tolerance=-1.0, force=True, announce=lambda m: None)
    assert record["default"] is None and (folder / "onnx" / "model.onnx").is_file()
    assert TextClassifier.load(folder).runtime_ is None
    with pytest.raises(ModelFileError, match="no ONNX graph of this model passed its check"):
        TextClassifier.load(folder, runtime="onnx")


def test_altered_graph_or_retrained_weights_are_refused_at_load(tmp_path):
    folder, data = _trained(tmp_path, "m", encoder="glove-50d", head="dan", epochs=2, max_length=32)
    with pytest.raises(ModelFileError, match="no ONNX export"):
        TextClassifier.load(folder, runtime="onnx")
    export_model(folder, data=str(data), announce=lambda m: None)
    graph = folder / "onnx" / "model.onnx"
    original = graph.read_bytes()
    graph.write_bytes(original[:-4] + b"\0\0\0\0")
    with pytest.raises(ModelFileError, match="altered or corrupted"):
        TextClassifier.load(folder)
    graph.write_bytes(original)
    assert isinstance(TextClassifier.load(folder).runtime_, OnnxNet)
    # retrain into the same folder: the export describes other weights now
    texts, labels = sentiment_data(40)
    TextClassifier("glove-50d", "dan", epochs=1, max_length=32, seed=1).fit(texts, labels).save(folder)
    with pytest.raises(ModelFileError, match="other weights"):
        TextClassifier.load(folder)
    with pytest.raises(ConfigError, match="unknown runtime"):
        TextClassifier.load(folder, runtime="tensorrt")


def test_export_without_recorded_data_or_labels_says_what_to_pass(tmp_path):
    folder, _ = _trained(tmp_path, "m", encoder="glove-50d", head="dan", epochs=1, max_length=32)
    with pytest.raises(Exception, match="--data"):
        export_model(folder, announce=lambda m: None)
    with pytest.raises(ConfigError, match="unknown quantisation"):
        export_model(folder, quantize="int4", announce=lambda m: None)


def test_cli_export_then_predict_and_evaluate_agree_across_runtimes(tmp_path):
    from typer.testing import CliRunner

    from transferlab.cli import app

    texts, labels = sentiment_data(60)
    data = write_csv(tmp_path / "data.csv", list(zip(texts, labels)))
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--data", str(data), "--encoder", "glove-50d", "--head", "cnn", "--epochs",
                              "2", "--max-length", "32", "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    # no --data: the check re-reads the validation part of the training data recorded in config.json
    res = runner.invoke(app, ["export", str(tmp_path / "m"), "--format", "onnx", "--quantize", "int8",
                              "--max-drop", "100"])
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "m" / "onnx" / "export.json").read_text())
    assert "validation part" in record["check"]["data"] and record["check"]["rows"] == 6
    lines = "\n".join(json.dumps({"id": i, "text": t}) for i, t in enumerate(PROBES)) + "\n"
    outs = {}
    for runtime in ("onnx", "torch"):
        res = runner.invoke(app, ["predict", str(tmp_path / "m"), "--runtime", runtime], input=lines)
        assert res.exit_code == 0, res.output
        outs[runtime] = [json.loads(x) for x in res.stdout.splitlines()]
    assert [o["id"] for o in outs["onnx"]] == list(range(len(PROBES)))
    for a, b in zip(outs["onnx"], outs["torch"]):
        assert max(abs(a["scores"][k] - b["scores"][k]) for k in a["scores"]) < 0.05
    res = runner.invoke(app, ["evaluate", str(tmp_path / "m"), "--data", str(data), "--runtime", "onnx",
                              "--report", str(tmp_path / "eval.json")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["export", str(tmp_path / "m"), "--format", "tflite"])
    assert res.exit_code == 2 and "unknown export format tflite" in res.output
    res = runner.invoke(app, ["export", str(tmp_path / "m"), "--format", "bf16", "--quantize", "int8"])
    assert res.exit_code == 2 and "quantises the ONNX graph" in res.output


@pytest.mark.slow
@pytest.mark.skipif(not __import__("transferlab.runtime.onnx", fromlist=["x"]).bf16_supported(),
                    reason="this CPU has no native bf16 (AMX or AVX-512 BF16)")
def test_bf16_runtime_is_checked_timed_and_used_for_transformers_and_frozen_encoders(tmp_path):
    from transferlab.runtime.onnx import Bf16Net

    for name, kw in (("ft", dict(encoder="minilm", strategy="finetune", epochs=2, max_length=32, batch_size=8,
                                 lr=1e-4)),
                     ("frozen", dict(encoder="minilm", strategy="frozen"))):
        folder, data = _trained(tmp_path, name, **kw)
        record = export_model(folder, formats=["bf16"], data=str(data), max_drop=100.0, announce=lambda m: None)
        assert record["files"] == {} and record["default"] == "bf16"
        check = record["check"]["bf16"]
        assert check["ok"] and check["docs_per_second"] > 0 and 0 < check["max_abs_proba_diff"] < 0.05
        fast, eager = TextClassifier.load(folder), TextClassifier.load(folder, runtime="torch")
        runtime = fast.backend_._graph if name == "frozen" else fast.runtime_
        assert isinstance(runtime, Bf16Net)
        # a bf16 copy of the transformer's weights (its SDPA kernel runs in bf16), the float32 model untouched
        assert not runtime.autocast and next(runtime.module.parameters()).dtype == torch.bfloat16
        eager_module = eager.backend_._encoder().model if name == "frozen" else eager.module_
        assert next(eager_module.parameters()).dtype == torch.float32
        np.testing.assert_allclose(fast.predict_proba(PROBES), eager.predict_proba(PROBES), atol=0.05)
        if name == "frozen":  # bf16 embeddings are cached apart from float32's
            assert fast.backend_._encoder().cache.path != eager.backend_._encoder().cache.path


def test_export_traces_eager_attention_and_puts_the_setting_back():
    from transformers import BertConfig, BertModel

    from transferlab.runtime.onnx import _eager_attention

    model = BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                 vocab_size=100))
    model.config._attn_implementation = "sdpa"
    wrapper = torch.nn.Sequential(model)
    with _eager_attention(wrapper):
        assert model.config._attn_implementation == "eager"
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(RuntimeError), _eager_attention(wrapper):
        raise RuntimeError("an export that fails")
    assert model.config._attn_implementation == "sdpa"


def test_bf16_runtime_keeps_recurrent_networks_under_autocast():
    from transferlab.runtime.onnx import Bf16Net

    gru = torch.nn.Sequential(torch.nn.GRU(4, 4, batch_first=True))
    linear = torch.nn.Linear(4, 2)
    assert Bf16Net(gru).autocast and Bf16Net(gru).module is gru
    net = Bf16Net(linear)
    assert not net.autocast and net.module.weight.dtype == torch.bfloat16 and linear.weight.dtype == torch.float32
    out = net(input=torch.ones(3, 4))
    assert out.dtype == torch.float32 and out.shape == (3, 2)


# ------------------------------------------------------------------------------------------------------ OpenVINO
def _openvino():
    return pytest.importorskip("openvino")


def test_openvino_graph_is_the_plain_export_checked_and_chosen_like_the_others(tmp_path):
    _openvino()
    from transferlab.runtime.onnx import OvNet, openvino_precision

    folder, data = _trained(tmp_path, "m", encoder="glove-50d", head="cnn", epochs=3, max_length=64)
    record = export_model(folder, formats=["onnx", "openvino"], data=str(data), announce=lambda m: None)
    assert set(record["files"]) == {"fp32", "openvino"} and record["openvino_precision"] == openvino_precision()
    check = record["check"]["openvino"]
    assert check["ok"] and check["docs_per_second"] > 0 and check["accuracy"] >= record["check"]["eager_accuracy"] - 0.2
    # auto takes whichever checked runtime was fastest on the check sample
    assert record["default"] == max(("fp32", "openvino"), key=lambda k: record["check"][k]["docs_per_second"])
    ov, eager = TextClassifier.load(folder, runtime="openvino"), TextClassifier.load(folder, runtime="torch")
    assert isinstance(ov.runtime_, OvNet) and ov.runtime_.precision == openvino_precision()
    atol = 1e-3 if openvino_precision() == "f32" else 0.05
    np.testing.assert_allclose(ov.predict_proba(PROBES), eager.predict_proba(PROBES), atol=atol)
    for text in PROBES:  # every length alone, as for the ONNX Runtime graph
        np.testing.assert_allclose(ov.predict_proba([text]), eager.predict_proba([text]), atol=atol)
    # the OpenVINO file is checked against its SHA-256 like every graph
    graph = folder / "onnx" / "model.openvino.onnx"
    graph.write_bytes(graph.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ModelFileError, match="altered or corrupted"):
        TextClassifier.load(folder, runtime="openvino")


def test_openvino_that_cannot_run_fails_its_check_with_the_reason(tmp_path, monkeypatch):
    _openvino()
    from transferlab.runtime import onnx as rt

    folder, data = _trained(tmp_path, "m", encoder="glove-50d", head="dan", epochs=2, max_length=32)
    with pytest.raises(ModelFileError, match="no OpenVINO export"):
        TextClassifier.load(folder, runtime="openvino")

    def broken(*args, **kwargs):
        raise RuntimeError("Cannot create GRUSequence layer")

    monkeypatch.setattr(rt, "OvNet", broken)
    with pytest.raises(ModelFileError, match="openvino: RuntimeError: Cannot create GRUSequence"):
        export_model(folder, formats=["onnx", "openvino"], data=str(data), announce=lambda m: None)
    assert not any((folder / "onnx").iterdir())  # nothing half-written is left
    with pytest.warns(UserWarning, match="failed its check"):
        record = export_model(folder, formats=["onnx", "openvino"], data=str(data), force=True,
                              announce=lambda m: None)
    assert record["default"] == "fp32" and not record["check"]["openvino"]["ok"]
    assert isinstance(TextClassifier.load(folder).runtime_, OnnxNet)  # auto skips the failed runtime
    with pytest.raises(ModelFileError, match="no OpenVINO graph of this model passed its check"):
        TextClassifier.load(folder, runtime="openvino")


@pytest.mark.slow
def test_openvino_runs_fine_tuned_and_frozen_transformers_and_caches_apart(tmp_path):
    _openvino()
    import onnx

    from transferlab.runtime.onnx import OvNet

    for name, kw in (("ft", dict(encoder="minilm", strategy="finetune", epochs=2, max_length=32, batch_size=8,
                                 lr=1e-4)),
                     ("frozen", dict(encoder="minilm", strategy="frozen"))):
        folder, data = _trained(tmp_path, name, **kw)
        record = export_model(folder, formats=["onnx", "openvino"], data=str(data), max_drop=100.0,
                              announce=lambda m: None)
        # ONNX Runtime's copy is fused with its contrib operators; OpenVINO's is the plain graph it can read
        domains = lambda f: {n.domain for n in onnx.load(str(folder / "onnx" / f)).graph.node}  # noqa: E731
        assert "com.microsoft" in domains("model.onnx") and "com.microsoft" not in domains("model.openvino.onnx")
        assert record["check"]["openvino"]["ok"] and record["check"]["openvino"]["max_abs_proba_diff"] < 0.05
        ov, eager = TextClassifier.load(folder, runtime="openvino"), TextClassifier.load(folder, runtime="torch")
        runtime = ov.backend_._graph if name == "frozen" else ov.runtime_
        assert isinstance(runtime, OvNet)
        np.testing.assert_allclose(ov.predict_proba(PROBES), eager.predict_proba(PROBES), atol=0.05)
        if name == "frozen":  # OpenVINO's embeddings are cached apart from PyTorch's and ONNX Runtime's
            paths = {TextClassifier.load(folder, runtime=r).backend_._encoder().cache.path
                     for r in ("openvino", "onnx", "torch")}
            assert len(paths) == 3
