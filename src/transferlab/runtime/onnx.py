"""``transferlab export MODEL --format onnx[,openvino][,bf16] [--quantize int8]``: faster runtimes for a saved
classifier, each checked and timed before ``--runtime auto`` uses it.

Runtimes: ONNX Runtime graphs (float32, and int8 with ``--quantize int8``), OpenVINO (``openvino``: its CPU plugin
compiling the exporter's plain graph, in bf16 where the CPU has it natively, else float32), and PyTorch in bf16
(``bf16``: no file, a bf16 copy of the weights made at load; native on CPUs with AMX or AVX-512 BF16 and on recent
GPUs, emulated and slow elsewhere, so refused there).  Which is fastest depends on the machine: on a 2-core Sapphire
Rapids VM, bf16 ran MiniLM about 2.6x faster than float32 PyTorch and OpenVINO's bf16 faster still, while ONNX
Runtime's float32 graph ran slower than PyTorch, so every checked runtime is timed on the check sample and
``auto`` takes the fastest that passed and runs here.

What is exported is the part that costs: for a fine-tuned transformer the encoder, pooling and classifier in one
graph; for word vectors the embedding, the CNN/RNN/DAN pooler and the classifier; for a frozen sentence encoder the
encoder with its pooling and normalisation (its embeddings then go through the same cache, kept apart from
PyTorch's, and the head over them, one small matrix product, stays in PyTorch, as do TF-IDF blocks).
Tokenisation, length-sorted batching padded per batch and the decision rule stay in Python and are shared with
the eager path, so the runtimes differ only in the arithmetic.

Files, in ``MODEL/onnx/``: ``model.onnx`` (float32, graph-optimised: ONNX Runtime's transformer fusions for a
BERT-type encoder), ``model.int8.onnx`` with ``--quantize int8`` (dynamic quantisation: int8 weights for every
MatMul/Gemm with one scale per output channel, activations quantised per batch), ``model.openvino.onnx`` with
``--format openvino`` (the exporter's graph before ONNX Runtime's fusions, which OpenVINO cannot read), and
``export.json`` (each file's SHA-256, the opset, the library versions, the check's figures and which runtime
``--runtime auto`` loads).

An export checks itself before it is kept, on a sample of the model's own validation data (re-read from the data
spec that ``transferlab train`` recorded, or ``--data``): the float32 graph's probabilities must match eager
PyTorch within ``tolerance`` (largest absolute difference), and the int8 graph's, OpenVINO's in bf16 and PyTorch
bf16's accuracy may each fall at most ``max_drop`` points below eager's.  A failed check refuses the export (the files are removed) unless ``force``,
which keeps them, warns, and records the failure in ``export.json`` (``--runtime auto`` then stays on PyTorch).

Loading: ``TextClassifier.load(path, runtime="auto")`` uses the fastest checked runtime that runs here (graphs on
the CPU with their library installed, bf16 where native), else float32 PyTorch; ``runtime="onnx"`` insists on an
ONNX Runtime graph, ``"openvino"`` on OpenVINO, ``"bf16"`` on bf16, ``"torch"`` ignores the export.  Each graph file is checked against its SHA-256 at load, as the weights are.
ONNX files are protobuf (no pickle), and the graph never runs Python.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import ConfigError, DataError, ModelFileError

SUBDIR = "onnx"
RECORD = "export.json"
FP32, INT8, OPENVINO = "model.onnx", "model.int8.onnx", "model.openvino.onnx"
GRAPHS = (("fp32", FP32), ("int8", INT8), ("openvino", OPENVINO))  # runtime kind -> its file in MODEL/onnx/
RUNTIMES = ("auto", "onnx", "openvino", "bf16", "torch")
OPSET = 17


def cpu_threads() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count), or ``TRANSFERLAB_THREADS`` where
    a caller shares the cores between workers (the Ray scorers set it to their share)."""
    if os.environ.get("TRANSFERLAB_THREADS", "").isdigit() and int(os.environ["TRANSFERLAB_THREADS"]) > 0:
        return int(os.environ["TRANSFERLAB_THREADS"])
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


class _GraphNet:
    """What every exported graph's runtime shares: it stands in for the PyTorch network at inference (the same keyword
    tensors in, logits or embeddings as a tensor out), so the shared length-sorted batching
    (``training.trainer.predict_logits``) drives any runtime."""

    library = "graph"
    path: Path
    inputs: list[str]

    def eval(self):
        return self

    def feeds(self, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        missing = [k for k in self.inputs if k not in batch]
        if missing:
            raise ModelFileError(f"the {self.library} graph expects inputs {missing} that this model's batches lack",
                                 where=str(self.path), hint="re-export the model (`transferlab export`)")
        return {k: batch[k].detach().cpu().numpy() for k in self.inputs}


class OnnxNet(_GraphNet):
    """An ONNX Runtime session standing in for the network (see :class:`_GraphNet`)."""

    library = "ONNX"

    def __init__(self, path: Path, threads: int | None = None, *, kind: str = "fp32"):
        from ..encoders.zoo import sha256_file

        self.path, self.kind = Path(path), kind
        self.sha256 = sha256_file(self.path)  # what a frozen encoder's embedding cache is keyed by
        self.session = session(self.path, threads)
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, **batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, self.feeds(batch))[0])


def _require_openvino():
    try:
        import openvino
    except ImportError:
        raise ConfigError("OpenVINO is not installed", hint="pip install 'transferlab[openvino]'") from None
    return openvino


def openvino_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def openvino_precision() -> str:
    """The arithmetic OpenVINO's CPU plugin is asked for: bf16 where the CPU has it natively (AMX, AVX-512 BF16),
    else float32."""
    return "bf16" if bf16_supported("cpu") else "f32"


class OvNet(_GraphNet):
    """OpenVINO's CPU plugin standing in for the network, like :class:`OnnxNet`: it compiles the exporter's plain
    ONNX graph (``model.openvino.onnx``: before ONNX Runtime's fusions, whose contrib operators OpenVINO cannot
    read) with bf16 inference where the CPU has it natively.

    Why a second graph runtime: on a 2-core Sapphire Rapids VM, OpenVINO's bf16 (AMX) kernels ran MiniLM at 256
    tokens about 1.2-1.3x faster than PyTorch's bf16 and about 3.5x float32 PyTorch, where ONNX Runtime's float32
    graph was slower than PyTorch (benchmarks/speed).  Only ``Core.read_model`` and ``compile_model`` are used: the
    ONNX file is read by OpenVINO's C++ frontend, never converted through ``openvino.convert_model``/ovc, the path
    that carries OpenVINO's telemetry."""

    library = "OpenVINO"

    def __init__(self, path: Path, threads: int | None = None, *, kind: str = "openvino"):
        from ..encoders.zoo import sha256_file

        ov = _require_openvino()
        self.path, self.kind = Path(path), kind
        self.precision = openvino_precision()
        # what a frozen encoder's embedding cache is keyed by: the graph and the arithmetic it ran with
        self.sha256 = f"{sha256_file(self.path)}-openvino-{self.precision}"
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(self.path)), "CPU", {
            "INFERENCE_PRECISION_HINT": self.precision, "INFERENCE_NUM_THREADS": threads or cpu_threads(),
            "PERFORMANCE_HINT": "LATENCY"})
        self.inputs = [i.get_any_name() for i in self.compiled.inputs]
        self.request = self.compiled.create_infer_request()  # one per network: scoring here is one batch at a time

    def __call__(self, **batch: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.array(self.request.infer(self.feeds(batch))[0], dtype=np.float32, copy=True))


def graph_net(path: Path, kind: str, threads: int | None = None) -> "OnnxNet | OvNet":
    """The runtime of one exported graph file: OpenVINO for ``openvino``, ONNX Runtime for the others."""
    return OvNet(path, threads, kind=kind) if kind == "openvino" else OnnxNet(path, threads, kind=kind)


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
    with warnings.catch_warnings(), _eager_attention(module):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (), str(path), kwargs=dict(batch), input_names=names, output_names=[output],
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)


@contextlib.contextmanager
def _eager_attention(module: torch.nn.Module):
    """Trace transformers' eager attention (matmul, scale, mask, softmax, matmul) instead of its default
    scaled-dot-product attention: ONNX Runtime's transformer optimiser recognises the eager pattern and fuses each
    layer's attention into one Attention operator (and the embeddings into EmbedLayerNormalization), while the
    traced SDPA graph gets no attention fusion (MiniLM: 6 Attention fusions against none; about 1.3x faster on one
    core).  The setting is put back afterwards, so the PyTorch runtime keeps SDPA."""
    from transformers import PretrainedConfig

    configs = {id(c): c for m in module.modules() if isinstance(c := getattr(m, "config", None), PretrainedConfig)}
    saved = [(c, c._attn_implementation) for c in configs.values()]
    try:
        for c, _ in saved:
            c._attn_implementation = "eager"
        yield
    finally:
        for c, impl in saved:
            c._attn_implementation = impl


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
    """Dynamic int8 quantisation with one scale per output channel of each weight matrix: on MiniLM it kept the
    logits 3x closer to float32 than one scale per matrix, and ran no slower."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The fused graph holds contrib operators whose outputs ONNX shape inference cannot type: they are float.
    with _quiet():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
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


def bf16_supported(device: str = "cpu") -> bool:
    """Whether bf16 arithmetic is native here: a CUDA device that supports it, or a CPU with AMX or AVX-512 BF16
    (elsewhere PyTorch emulates it, far slower than float32)."""
    if str(device).startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # pragma: no cover - not Linux
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


class Bf16Net:
    """PyTorch in bf16, standing in for the network like an ONNX graph: the matrix products in bf16 (AMX on recent
    Intel CPUs, tensor cores on GPUs), the logits or embeddings back as float32.

    A bf16 copy of the weights, not autocast, for networks without recurrent layers: autocast re-casts every weight
    at every call, and its attention falls back to float32 arithmetic, while a bf16 copy takes PyTorch's bf16
    scaled-dot-product attention kernel (on a 2-core Sapphire Rapids, MiniLM at 256 tokens on one thread: float32
    16.7 docs/s, autocast 49.4, bf16 weights 54.3).  GRU/LSTM networks stay under autocast, which keeps the
    recurrent cells in float32 where PyTorch has no bf16 kernel on every CPU.  Either way the export check measures
    the accuracy it costs."""

    kind = "bf16"
    sha256 = "torch-bf16"  # keys a frozen encoder's embedding cache apart from float32's

    def __init__(self, module: torch.nn.Module, device: str = "cpu"):
        import copy

        self.device_type = "cuda" if str(device).startswith("cuda") else "cpu"
        self.autocast = any(isinstance(m, torch.nn.RNNBase) for m in module.modules())
        self.module = (module if self.autocast else copy.deepcopy(module).to(torch.bfloat16)).eval()

    def eval(self) -> "Bf16Net":
        return self

    def __call__(self, **batch: torch.Tensor) -> torch.Tensor:
        if not self.autocast:  # float inputs (masks, features) meet bf16 weights as bf16; token ids stay integers
            batch = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in batch.items()}
        with torch.no_grad(), torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.autocast):
            return self.module(**batch).float()


def bf16_runtime(clf) -> Bf16Net:
    """The bf16 runtime of a loaded classifier: its network, or a frozen model's sentence encoder."""
    from ..config import FROZEN_FEATURES

    if clf.model_config.family == FROZEN_FEATURES:
        enc = clf.backend_._encoder()
        return Bf16Net(_SentenceGraph(enc.model), clf.device_)
    return Bf16Net(clf.module_, clf.device_)


def _timed_proba(clf, X) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    proba = clf.predict_proba(X)
    return proba, len(X) / max(time.perf_counter() - started, 1e-9)


FORMATS = ("onnx", "openvino", "bf16")


def export_model(model_dir: str | Path, *, quantize: str | None = None, formats: Sequence[str] = ("onnx",),
                 data: str | None = None, text_col: str = "text", label_col: str = "label", split: str = "all",
                 max_rows: int = 1000, examples=None, tolerance: float = 1e-4, max_drop: float = 0.5,
                 force: bool = False, opset: int = OPSET, trust_remote_code: bool = False,
                 announce: Callable[[str], None] = print) -> dict:
    """Export a saved classifier and check it (see the module docstring); returns the record written to
    ``export.json``.  ``formats``: ``onnx`` (the float32 graph, and the int8 one with ``quantize="int8"``) and/or
    ``bf16`` (PyTorch in bf16: no file, the same check).  ``max_drop`` is in accuracy points.
    ``examples``: labelled :class:`Examples` to check on (a caller that knows the model's validation part, like
    ``vuln export``) instead of ``data`` or the recorded data spec.  Every checked runtime is timed on the check
    sample, and ``--runtime auto`` later takes the fastest one that passed."""
    from ..models.base import environment, saved_task
    from ..models.classifier import TextClassifier

    formats = list(dict.fromkeys(formats))
    bad = [f for f in formats if f not in FORMATS] or ([] if formats else ["(none)"])
    if bad:
        raise ConfigError(f"unknown export format {', '.join(bad)}",
                          hint="--format onnx, openvino, bf16, or several: onnx,openvino,bf16")
    if quantize not in (None, "int8"):
        raise ConfigError(f"unknown quantisation {quantize!r}", hint="--quantize int8, or leave it out")
    if quantize and "onnx" not in formats:
        raise ConfigError("--quantize int8 quantises the ONNX graph", hint="add onnx to --format")
    folder = Path(model_dir)
    if saved_task(folder) != "classification":
        raise ConfigError("only text classifiers can be exported so far", where=str(folder),
                          hint="export a model written by `transferlab train` on a classification task")
    if "onnx" in formats:
        _require_ort()
    if "openvino" in formats:
        _require_openvino()
    if "bf16" in formats and not bf16_supported("cpu"):
        raise ConfigError("this CPU has no native bf16 (AMX or AVX-512 BF16): PyTorch would emulate it, slower than "
                          "float32", hint="export onnx instead")
    clf = TextClassifier.load(folder, device="cpu", runtime="torch", trust_remote_code=trust_remote_code)
    from ..config import FROZEN_FEATURES

    if clf.model_config.family == FROZEN_FEATURES:
        # every runtime is timed encoding, never reading embeddings cached by an earlier run (eager PyTorch read
        # its cache and looked 10-40x faster than it is); this check's embeddings are not cached either
        enc = clf.backend_._encoder()
        if enc.cache is not None:
            enc.cache.close()
        enc.cache = None
    if examples is not None:
        from ..data.loading import subsample

        sample, source = (subsample(examples, max_rows, seed=13) if len(examples) > max_rows else examples,
                          examples.source or "the given examples")
    else:
        sample, source = check_sample(clf, data, text_col=text_col, label_col=label_col, split=split,
                                      max_rows=max_rows)
    out = folder / SUBDIR
    out.mkdir(exist_ok=True)
    for stale in (FP32, INT8, OPENVINO, RECORD):
        (out / stale).unlink(missing_ok=True)

    X, gold = sample, list(sample.labels)  # predict_proba takes Examples as they are

    def accuracy(proba) -> float:
        return float(np.mean([p == g for p, g in zip(clf.decode(proba), gold)]))

    eager_proba, eager_speed = _timed_proba(clf, X)
    eager_acc = accuracy(eager_proba)
    checks: dict[str, dict] = {}
    export_seconds, optimisation = 0.0, None

    def check(kind: str, make_runtime: Callable[[], object], exact: bool) -> None:
        try:
            clf.use_runtime(make_runtime())
            proba, speed = _timed_proba(clf, X)
        except Exception as exc:  # noqa: BLE001 - a runtime that cannot run this graph fails its check, with why
            checks[kind] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500], "docs_per_second": 0.0}
            announce(f"{kind}: could not run ({checks[kind]['error']}) -- FAILED its check")
            return
        finally:
            clf.use_runtime(None)
        acc, diff = accuracy(proba), float(np.abs(proba - eager_proba).max())
        drop = 100 * (eager_acc - acc)
        ok = diff <= tolerance if exact else drop <= max_drop
        checks[kind] = {"max_abs_proba_diff": diff, "accuracy": acc, "drop_points": drop, "docs_per_second": speed,
                        "ok": ok, **({"tolerance": tolerance} if exact else {"max_drop_points": max_drop})}
        announce(f"{kind}: accuracy {100 * acc:.2f} vs eager {100 * eager_acc:.2f} ({drop:+.2f} points below), "
                 f"largest probability difference {diff:.2e}, {speed:.1f} docs/s vs eager {eager_speed:.1f} "
                 f"on {len(sample)} rows of {source}" + ("" if ok else " -- FAILED its check"))

    if "onnx" in formats or "openvino" in formats:
        announce(f"exporting {folder} ({clf.model_config.family}) to ONNX (opset {opset})")
        t0 = time.perf_counter()
        probe = sample.subset(range(min(8, len(sample))))
        module, batch, backbone, output = _graph_source(clf, probe)
        # OpenVINO reads the exporter's plain graph; ONNX Runtime's copy is then fused for ONNX Runtime alone
        plain = out / (OPENVINO if "openvino" in formats else FP32)
        _export_graph(module, batch, plain, opset, output)
        if "onnx" in formats:
            if plain != out / FP32:
                shutil.copyfile(plain, out / FP32)
            optimisation = (_optimise_transformer(out / FP32, backbone.config) if backbone is not None
                            else "generic")
        export_seconds += time.perf_counter() - t0
        if "onnx" in formats:
            check("fp32", lambda: OnnxNet(out / FP32, kind="fp32"), exact=True)
        if quantize == "int8":
            t0 = time.perf_counter()
            _quantise(out / FP32, out / INT8)
            export_seconds += time.perf_counter() - t0
            check("int8", lambda: OnnxNet(out / INT8, kind="int8"), exact=False)
        if "openvino" in formats:  # its own kernels (bf16 where native): judged like int8, by the accuracy it costs
            check("openvino", lambda: OvNet(out / OPENVINO), exact=False)
    if "bf16" in formats:
        check("bf16", lambda: bf16_runtime(clf), exact=False)

    failed = [k for k, c in checks.items() if not c["ok"]]
    if failed and not force:
        for _, f in GRAPHS:
            (out / f).unlink(missing_ok=True)
        why = "; ".join(f"{k}: " + (checks[k]["error"] if "error" in checks[k] else
                                    f"probabilities differ by up to {checks[k]['max_abs_proba_diff']:.2e}"
                                    if "tolerance" in checks[k] else
                                    f"accuracy falls {checks[k]['drop_points']:.2f} points")
                        for k in failed)
        raise ModelFileError(f"the export failed its check ({why}); nothing was kept", where=str(folder),
                             hint=("export without --quantize for the float32 graph alone; " if failed == ["int8"]
                                   else "") + "--force keeps it anyway (and `--runtime auto` does not use it)")
    if failed:
        warnings.warn(f"{folder}: the export failed its check ({', '.join(failed)}); kept because of --force, "
                      "and `--runtime auto` will not use it", stacklevel=2)
    from ..encoders.zoo import sha256_file

    files = {kind: {"file": name, "sha256": sha256_file(out / name), "bytes": (out / name).stat().st_size}
             for kind, name in GRAPHS if (out / name).is_file()}
    usable = sorted((k for k, c in checks.items() if c["ok"]), key=lambda k: -checks[k]["docs_per_second"])
    env = environment()
    record = {"format": "+".join(formats), "opset": opset if {"onnx", "openvino"} & set(formats) else None,
              **({"openvino_precision": openvino_precision()} if "openvino" in formats else {}),
              "family": clf.model_config.family, "files": files,
              "default": usable[0] if usable else None, "optimisation": optimisation,
              "check": {"data": source, "rows": len(sample), "eager_accuracy": eager_acc,
                        "eager_docs_per_second": eager_speed, **checks},
              "export_seconds": round(export_seconds, 1),
              "model_weights_sha256": _weights_sha(folder),
              "versions": env["versions"], "hardware": env["hardware"]}
    (out / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


# ------------------------------------------------------------------------------------------------------ loading
def _weights_sha(folder: Path) -> str | None:
    """The SHA-256 of the PyTorch weights an export was made from, as config.json records it."""
    from ..models.base import WEIGHTS

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return (config.get("weights") or {}).get(WEIGHTS)


def attach(folder: Path, runtime: str, device: str) -> "OnnxNet | str | None":
    """What a loaded model should score with: an exported graph (:class:`OnnxNet`, :class:`OvNet`), ``"bf16"``
    (PyTorch in bf16; the caller builds it, see :func:`bf16_runtime`), or None for PyTorch float32.  ``auto``: the
    fastest runtime that passed the export's check and runs here (graphs on the CPU with their library installed,
    bf16 where it is native), else PyTorch; ``onnx``: the fastest checked ONNX Runtime graph, or an error;
    ``openvino``: the checked OpenVINO graph, or an error; ``bf16``: PyTorch in bf16, checked or not (your call),
    where it is native; ``torch``: float32 PyTorch."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}", hint=f"choose one of {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return None
    if runtime == "bf16":
        if not bf16_supported(device):
            raise ConfigError(f"bf16 is not native on {device} here (no AMX or AVX-512 BF16, or a GPU without it)",
                              hint="--runtime torch or onnx")
        return "bf16"
    record_path = folder / SUBDIR / RECORD
    if not record_path.is_file():
        if runtime in ("onnx", "openvino"):
            raise ModelFileError(f"this model has no {'OpenVINO' if runtime == 'openvino' else 'ONNX'} export",
                                 where=str(folder),
                                 hint=f"run `transferlab export {folder} --format {runtime}` first, or --runtime torch")
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{RECORD} is not valid JSON ({exc})", where=str(record_path)) from None
    if record.get("model_weights_sha256") != _weights_sha(folder):
        raise ModelFileError("the export was made from other weights than this folder's (the model was retrained "
                             "or replaced after the export)", where=str(record_path),
                             hint="re-export the model, or --runtime torch")
    check = record.get("check") or {}
    passed = sorted((k for k in ("fp32", "int8", "openvino", "bf16") if (check.get(k) or {}).get("ok")),
                    key=lambda k: -float(check[k].get("docs_per_second") or 0))
    if runtime in ("onnx", "openvino"):
        wanted = ("openvino",) if runtime == "openvino" else ("fp32", "int8")
        passed = [k for k in passed if k in wanted]
        what = "OpenVINO graph" if runtime == "openvino" else "ONNX graph"
        if not passed:
            raise ModelFileError(f"no {what} of this model passed its check (kept with --force, or none exported)",
                                 where=str(record_path), hint=f"re-export with --format {runtime}, or --runtime torch")
        if device != "cpu":
            raise ConfigError(f"the {what} here runs on the CPU, and this model was asked to run on {device}",
                              hint="--device cpu, or --runtime torch")
        _require_openvino() if runtime == "openvino" else _require_ort()
    for kind in passed:
        if kind == "bf16":
            if bf16_supported(device):
                return "bf16"
            continue
        if device != "cpu":
            continue
        try:
            _require_openvino() if kind == "openvino" else _require_ort()
        except ConfigError:
            continue  # an export made elsewhere; without that library here, another runtime does the work
        return _graph(folder, record, kind)
    return None


def _graph(folder: Path, record: dict, kind: str) -> "OnnxNet | OvNet":
    """The checked graph of ``kind``, verified against its SHA-256, in its runtime."""
    from ..encoders.zoo import sha256_file

    entry = (record.get("files") or {}).get(kind) or {}
    path = folder / SUBDIR / str(entry.get("file", ""))
    if not entry or Path(entry["file"]).name != entry["file"] or not path.is_file():
        raise ModelFileError(f"the {kind} ONNX graph named in {RECORD} is missing", where=str(folder / SUBDIR),
                             hint="re-export the model, or --runtime torch")
    if sha256_file(path) != entry.get("sha256"):
        raise ModelFileError(f"{path.name} was altered or corrupted (SHA-256 differs from {RECORD})", where=str(path),
                             hint="re-export the model, or --runtime torch")
    return graph_net(path, kind)
