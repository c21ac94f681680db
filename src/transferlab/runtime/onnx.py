"""``transferlab export MODEL --format onnx [--quantize int8]``: a saved classifier as an ONNX Runtime graph.

What is exported is the part that costs: for a fine-tuned transformer the encoder, pooling and classifier in one
graph; for word vectors the embedding, the CNN/RNN/DAN pooler and the classifier; for a frozen sentence encoder the
encoder with its pooling and normalisation (its embeddings then go through the same cache, kept apart from
PyTorch's, and the head over them, one small matrix product, stays in PyTorch, as do TF-IDF blocks).
Tokenisation, length-sorted batching padded per batch and the decision rule stay in Python and are shared with
the eager path, so the two runtimes differ only in the arithmetic.

Files, in ``MODEL/onnx/``: ``model.onnx`` (float32, graph-optimised: ONNX Runtime's transformer fusions for a
BERT-type encoder), ``model.int8.onnx`` with ``--quantize int8`` (dynamic quantisation: int8 weights for every
MatMul/Gemm, activations quantised per batch), and ``export.json`` (each file's SHA-256, the opset, the library
versions, the check's figures and which file ``--runtime auto`` loads).

An export checks itself before it is kept, on a sample of the model's own validation data (re-read from the data
spec that ``transferlab train`` recorded, or ``--data``): the float32 graph's probabilities must match eager
PyTorch within ``tolerance`` (largest absolute difference), and the int8 graph's accuracy may fall at most
``max_drop`` points below eager's.  A failed check refuses the export (the files are removed) unless ``force``,
which keeps them, warns, and records the failure in ``export.json`` (``--runtime auto`` then stays on PyTorch).

Loading: ``TextClassifier.load(path, runtime="auto")`` uses the graph when the folder holds a checked export and
the model runs on the CPU (ONNX Runtime's CPU provider is what this is for); ``runtime="onnx"`` insists,
``runtime="torch"`` ignores it.  Each graph file is checked against its SHA-256 at load, as the weights are.
ONNX files are protobuf (no pickle), and the graph never runs Python.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError, DataError, ModelFileError

SUBDIR = "onnx"
RECORD = "export.json"
FP32, INT8 = "model.onnx", "model.int8.onnx"
RUNTIMES = ("auto", "onnx", "torch")
OPSET = 17


def cpu_threads() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _require_ort():
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("ONNX Runtime is not installed", hint="pip install 'transferlab[onnx]' (onnx, onnxruntime)") \
            from None
    return onnxruntime


def session(path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session with every graph optimisation on and one intra-op thread per usable core."""
    ort = _require_ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or cpu_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are not the user's
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxNet:
    """Stands in for the PyTorch network at inference: the same keyword tensors in, logits (a tensor) out, so the
    shared length-sorted batching (``training.trainer.predict_logits``) drives either runtime."""

    def __init__(self, path: Path, threads: int | None = None, *, kind: str = "fp32"):
        from ..encoders.zoo import sha256_file

        self.path, self.kind = Path(path), kind
        self.sha256 = sha256_file(self.path)  # what a frozen encoder's embedding cache is keyed by
        self.session = session(self.path, threads)
        self.inputs = [i.name for i in self.session.get_inputs()]

    def eval(self) -> "OnnxNet":
        return self

    def __call__(self, **batch: torch.Tensor) -> torch.Tensor:
        missing = [k for k in self.inputs if k not in batch]
        if missing:
            raise ModelFileError(f"the ONNX graph expects inputs {missing} that this model's batches lack",
                                 where=str(self.path), hint="re-export the model (`transferlab export`)")
        feeds = {k: batch[k].detach().cpu().numpy() for k in self.inputs}
        return torch.from_numpy(self.session.run(None, feeds)[0])


# ------------------------------------------------------------------------------------------------------ export
class _SentenceGraph(torch.nn.Module):
    """A sentence-transformers model (transformer, pooling, normalisation) as one module from token ids to the
    sentence embedding: what the frozen family exports."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        features = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            features["token_type_ids"] = token_type_ids
        return self.model(features)["sentence_embedding"]


def _graph_source(clf, probe):
    """(module to export, an example batch, the transformer's config or None, output name) for the model's family.
    A fine-tuned transformer or a word-vector model exports its whole network; a frozen-encoder model its encoder
    (the costly part: the head over the embedding is one small matrix product and stays in PyTorch)."""
    from ..config import FROZEN_FEATURES

    if clf.model_config.family == FROZEN_FEATURES:
        enc = clf.backend_._encoder()
        model = enc.model.cpu().eval()
        texts = probe.texts + (probe.pairs or [])
        batch = dict(model.tokenizer.pad(enc.tokenise(texts), return_tensors="pt"))
        return _SentenceGraph(model).eval(), batch, getattr(model[0], "auto_model", None), "sentence_embedding"
    module = clf.module_.cpu().eval()
    batch = clf.backend_.collate(clf.backend_.prepare(probe))
    backbone = getattr(module, "backbone", None)
    return module, batch, backbone, "logits"


def _export_graph(module: torch.nn.Module, batch: dict[str, torch.Tensor], path: Path, opset: int,
                  output: str = "logits") -> None:
    # The exporter binds keyword inputs in the order of forward()'s parameters, and input_names name them in that
    # order: a batch dict in another order would give a graph whose "attention_mask" is the token types.
    import inspect

    order = [p for p in inspect.signature(module.forward).parameters if p in batch]
    if sorted(order) != sorted(batch):
        raise ConfigError(f"the network takes {order}, the batch holds {sorted(batch)}", where=type(module).__name__)
    batch = {k: batch[k] for k in order}
    names = order
    axes = {k: ({0: "batch", 1: "sequence"} if v.dim() >= 2 else {0: "batch"}) for k, v in batch.items()}
    axes[output] = {0: "batch"}
    # The TorchScript-based exporter: it needs no onnxscript and handles the transformers 5 encoders and the
    # word-vector poolers here; the graph it writes is checked against eager below, whatever exporter wrote it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (), str(path), kwargs=dict(batch), input_names=names, output_names=[output],
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)


@contextlib.contextmanager
def _quiet():
    """ONNX Runtime's optimiser and quantiser log advice and dump tensor protos to stderr through Python's logging
    and print; none of it is for the user (the check below says whether the graph is right)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _optimise_transformer(path: Path, backbone_config) -> str:
    """ONNX Runtime's transformer optimiser (attention, LayerNorm, GELU fusions) for encoders it knows; others
    keep the exporter's graph and get ORT's generic optimisations when the session starts."""
    kind = getattr(backbone_config, "model_type", "")
    known = {"bert": "bert", "roberta": "bert", "distilbert": "bert", "xlm-roberta": "bert", "electra": "bert"}
    if kind not in known:
        return f"generic (no fusion recipe for {kind or 'this encoder'})"
    from onnxruntime.transformers.optimizer import optimize_model

    with _quiet():
        model = optimize_model(str(path), model_type=known[kind], num_heads=backbone_config.num_attention_heads,
                               hidden_size=backbone_config.hidden_size, opt_level=1, use_gpu=False)
        model.save_model_to_file(str(path))
    fused = {k: v for k, v in model.get_fused_operator_statistics().items() if v}
    return f"{known[kind]} fusions {fused}"


def _quantise(src: Path, dst: Path) -> None:
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The fused graph holds contrib operators whose outputs ONNX shape inference cannot type: they are float.
    with _quiet():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=False,
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})


def check_sample(clf, data: str | None = None, *, text_col: str = "text", label_col: str = "label",
                 split: str = "all", max_rows: int = 1000):
    """The labelled examples an export is checked on: ``data`` (a part of it) or, by default, the validation part
    of the data the model was trained on, re-read from the spec ``transferlab train`` recorded."""
    from ..data.loading import DataSpec, load_parts, needed_columns, subsample
    from ..data.readers import read_examples
    from ..data.splits import select_split

    if data is not None:
        examples, _ = read_examples(data, text_col=text_col, label_col=label_col, keep_cols=needed_columns(split))
        part = select_split(examples, split, seed=clf.train_config.seed)
        source = f"{data} ({split})"
    else:
        spec = (clf.fit_info_ or {}).get("data")
        if not spec:
            raise DataError("this model does not record the data it was trained on, so there is no validation data "
                            "to check the export against", where="config.json fit.data",
                            hint="pass labelled data: --data FILE [--text-col ... --label-col ... --split ...]")
        spec = DataSpec(**spec)
        if not Path(spec.path).exists() and "/" in spec.path and Path(spec.path).suffix:
            raise DataError("the training data recorded in the model is not here", where=spec.path,
                            hint="pass labelled data with --data")
        parts, _ = load_parts(spec, seed=clf.train_config.seed)
        name = "validation" if len(parts.get("validation") or ()) else "train"
        part = parts[name]
        source = f"{spec.path} ({name} part)"
    if len(part) == 0:
        raise DataError("no rows to check the export on", where=source)
    if part.labels is None:
        raise DataError("the check needs labels", where=source, hint="name the label column with --label-col")
    if len(part) > max_rows:
        part = subsample(part, max_rows, seed=13)
    return part, source


def _accuracy(clf, examples) -> float:
    predicted = clf.predict(examples.texts if examples.pairs is None else list(zip(examples.texts, examples.pairs)))
    gold = examples.labels
    return float(np.mean([p == g for p, g in zip(predicted, gold)]))


def _inputs(examples):
    return examples.texts if examples.pairs is None else list(zip(examples.texts, examples.pairs))


def export_model(model_dir: str | Path, *, quantize: str | None = None, data: str | None = None,
                 text_col: str = "text", label_col: str = "label", split: str = "all", max_rows: int = 1000,
                 examples=None, tolerance: float = 1e-4, max_drop: float = 0.5, force: bool = False,
                 opset: int = OPSET, trust_remote_code: bool = False,
                 announce: Callable[[str], None] = print) -> dict:
    """Export a saved classifier to ``MODEL/onnx/`` and check it (see the module docstring); returns the record
    written to ``export.json``.  ``max_drop`` is in accuracy points (0.5 = half a point).  ``examples``: labelled
    :class:`Examples` to check on (a caller that knows the model's validation part, like ``vuln export``) instead
    of ``data`` or the recorded data spec."""
    from ..models.base import environment, saved_task
    from ..models.classifier import TextClassifier

    if quantize not in (None, "int8"):
        raise ConfigError(f"unknown quantisation {quantize!r}", hint="--quantize int8, or leave it out")
    folder = Path(model_dir)
    if saved_task(folder) != "classification":
        raise ConfigError("only text classifiers can be exported so far", where=str(folder),
                          hint="export a model written by `transferlab train` on a classification task")
    _require_ort()
    clf = TextClassifier.load(folder, device="cpu", runtime="torch", trust_remote_code=trust_remote_code)
    if examples is not None:
        from ..data.loading import subsample

        sample, source = (subsample(examples, max_rows, seed=13) if len(examples) > max_rows else examples,
                          examples.source or "the given examples")
    else:
        sample, source = check_sample(clf, data, text_col=text_col, label_col=label_col, split=split,
                                      max_rows=max_rows)
    out = folder / SUBDIR
    out.mkdir(exist_ok=True)
    for stale in (FP32, INT8, RECORD):
        (out / stale).unlink(missing_ok=True)

    announce(f"exporting {folder} ({clf.model_config.family}) to ONNX (opset {opset})")
    t0 = time.perf_counter()
    probe = sample.subset(range(min(8, len(sample))))
    module, batch, backbone, output = _graph_source(clf, probe)
    _export_graph(module, batch, out / FP32, opset, output)
    optimisation = _optimise_transformer(out / FP32, backbone.config) if backbone is not None else "generic"
    export_seconds = time.perf_counter() - t0

    X = _inputs(sample)
    eager_proba = clf.predict_proba(X)
    eager_acc = _accuracy(clf, sample)
    clf.use_runtime(OnnxNet(out / FP32, kind="fp32"))
    fp32_proba = clf.predict_proba(X)
    fp32_diff = float(np.abs(fp32_proba - eager_proba).max())
    fp32_acc = _accuracy(clf, sample)
    checks = {"fp32": {"max_abs_proba_diff": fp32_diff, "tolerance": tolerance, "accuracy": fp32_acc,
                       "ok": fp32_diff <= tolerance}}
    announce(f"float32 graph: largest probability difference from eager {fp32_diff:.2e} (tolerance {tolerance:g}); "
             f"accuracy {100 * fp32_acc:.2f} vs eager {100 * eager_acc:.2f} on {len(sample)} rows of {source}")
    if quantize == "int8":
        t0 = time.perf_counter()
        _quantise(out / FP32, out / INT8)
        export_seconds += time.perf_counter() - t0
        clf.use_runtime(OnnxNet(out / INT8, kind="int8"))
        int8_acc = _accuracy(clf, sample)
        drop = 100 * (eager_acc - int8_acc)
        checks["int8"] = {"accuracy": int8_acc, "drop_points": drop, "max_drop_points": max_drop,
                          "ok": drop <= max_drop}
        announce(f"int8 graph: accuracy {100 * int8_acc:.2f} ({drop:+.2f} points below eager; at most {max_drop:g} "
                 "allowed)")
    clf.use_runtime(None)

    failed = [k for k, c in checks.items() if not c["ok"]]
    if failed and not force:
        for f in (FP32, INT8):
            (out / f).unlink(missing_ok=True)
        why = "; ".join(f"{k}: " + (f"probabilities differ by up to {checks[k]['max_abs_proba_diff']:.2e}"
                                    if k == "fp32" else f"accuracy falls {checks[k]['drop_points']:.2f} points")
                        for k in failed)
        raise ModelFileError(f"the exported graph failed its check ({why}); nothing was kept", where=str(folder),
                             hint=("export without --quantize for the float32 graph alone; " if failed == ["int8"]
                                   else "") + "--force keeps it anyway (and `--runtime auto` stays on PyTorch)")
    if failed:
        warnings.warn(f"{folder}: the exported graph failed its check ({', '.join(failed)}); kept because of --force, "
                      "and `--runtime auto` will not use it", stacklevel=2)
    from ..encoders.zoo import sha256_file

    files = {kind: {"file": name, "sha256": sha256_file(out / name), "bytes": (out / name).stat().st_size}
             for kind, name in (("fp32", FP32), ("int8", INT8)) if (out / name).is_file()}
    usable = [k for k in ("int8", "fp32") if k in files and checks[k]["ok"]]
    env = environment()
    record = {"format": "onnx", "opset": opset, "family": clf.model_config.family, "files": files,
              "default": usable[0] if usable else None, "optimisation": optimisation,
              "check": {"data": source, "rows": len(sample), "eager_accuracy": eager_acc, **checks},
              "export_seconds": round(export_seconds, 1),
              "model_weights_sha256": _weights_sha(folder),
              "versions": env["versions"]}
    (out / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


# ------------------------------------------------------------------------------------------------------ loading
def _weights_sha(folder: Path) -> str | None:
    """The SHA-256 of the PyTorch weights an export was made from, as config.json records it."""
    from ..models.base import WEIGHTS

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return (config.get("weights") or {}).get(WEIGHTS)


def attach(folder: Path, runtime: str, device: str) -> OnnxNet | None:
    """The graph a loaded model should run on, or None for PyTorch (see the module docstring for the rule)."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}", hint=f"choose one of {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return None
    record_path = folder / SUBDIR / RECORD
    if not record_path.is_file():
        if runtime == "onnx":
            raise ModelFileError("this model has no ONNX export", where=str(folder),
                                 hint=f"run `transferlab export {folder} --format onnx` first, or --runtime torch")
        return None
    if device != "cpu":
        if runtime == "onnx":
            raise ConfigError(f"the ONNX runtime here runs on the CPU, and this model was asked to run on {device}",
                              hint="--device cpu, or --runtime torch")
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{RECORD} is not valid JSON ({exc})", where=str(record_path)) from None
    kind = record.get("default")
    if kind is None:
        if runtime == "onnx":
            raise ModelFileError("the ONNX export failed its check when it was made (kept with --force)",
                                 where=str(record_path), hint="re-export, or --runtime torch")
        return None
    if runtime == "auto":
        try:
            _require_ort()
        except ConfigError:
            return None  # an export made elsewhere; without ONNX Runtime here, PyTorch does the work
    entry = (record.get("files") or {}).get(kind) or {}
    path = folder / SUBDIR / str(entry.get("file", ""))
    if not entry or Path(entry["file"]).name != entry["file"] or not path.is_file():
        raise ModelFileError(f"the {kind} ONNX graph named in {RECORD} is missing", where=str(folder / SUBDIR),
                             hint="re-export the model, or --runtime torch")
    from ..encoders.zoo import sha256_file

    if sha256_file(path) != entry.get("sha256"):
        raise ModelFileError(f"{path.name} was altered or corrupted (SHA-256 differs from {RECORD})", where=str(path),
                             hint="re-export the model, or --runtime torch")
    if record.get("model_weights_sha256") != _weights_sha(folder):
        raise ModelFileError("the ONNX export was made from other weights than this folder's (the model was "
                             "retrained or replaced after the export)", where=str(record_path),
                             hint="re-export the model, or --runtime torch")
    return OnnxNet(path, kind=kind)
