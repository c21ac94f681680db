"""The sentence-transformers ONNX peer of ``transferlab bench speed``, run as a script by another Python.

sentence-transformers' ONNX backend needs optimum-onnx, which requires transformers < 4.58, and TransferLab runs on
transformers 5, so the peer lives in its own environment (``scripts/peer-venv.sh``) and the bench runs this file
there, on the same texts, with the same thread count.  It imports nothing from TransferLab.

stdin: JSON ``{"model": folder, "texts": [...], "lengths": [128, ...], "threads": 2, "batch_size": 32,
"work": folder, "repeats": 3}``; stdout: one JSON object with docs/s per length per variant (``st-onnx``, ``st-onnx-int8`` and the anchor ``st-torch``)
and the peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> None:
    job = json.load(sys.stdin)
    import torch

    torch.set_num_threads(job["threads"])
    from sentence_transformers import SentenceTransformer, __version__ as st_version
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    texts, out = job["texts"], {"versions": {"sentence-transformers": st_version}, "rows": {}}
    started = time.perf_counter()
    # The ONNX backend exports the checkpoint with optimum the first time (kept in the work folder, not the model's)
    model = SentenceTransformer(job["model"], backend="onnx", device="cpu",
                                model_kwargs={"provider": "CPUExecutionProvider", "export": True})
    model.save_pretrained(job["work"])
    out["export_seconds"] = round(time.perf_counter() - started, 1)
    # sentence-transformers' own int8 recipe: dynamic quantisation for the best instruction set this CPU has
    flags = open("/proc/cpuinfo").read().split() if sys.platform.startswith("linux") else []
    config = "avx512_vnni" if "avx512_vnni" in flags else "avx512" if "avx512f" in flags else "avx2"
    export_dynamic_quantized_onnx_model(model, config, job["work"])
    out["quantization"] = config
    variants = {"st-onnx": SentenceTransformer(job["work"], backend="onnx", device="cpu",
                                               model_kwargs={"file_name": "onnx/model.onnx"}),
                "st-onnx-int8": SentenceTransformer(job["work"], backend="onnx", device="cpu",
                                                    model_kwargs={"file_name": f"onnx/model_qint8_{config}.onnx"})}
    # sentence-transformers' own PyTorch float32 backend: the anchor, the peer's equivalent of our eager row, so that
    # its ONNX rows are a ratio measured side by side here, as ours are in the bench's process
    variants["st-torch"] = SentenceTransformer(job["model"], device="cpu")
    # The same timing rule as the bench's own rows (bench/speed.py `_timed_side_by_side`, not importable here: this
    # file runs in the peer's environment): texts sorted by length and batched; batch by batch every variant in
    # turn (order rotated), each (variant, batch) keeping its fastest of `repeats` passes.
    order = sorted(texts, key=len)
    size, names = job["batch_size"], list(variants)
    batches = [order[i:i + size] for i in range(0, len(order), size)]
    for length in job["lengths"]:
        best = {n: [float("inf")] * len(batches) for n in names}
        for st in variants.values():
            st.max_seq_length = length
            st.encode(texts[:16], batch_size=size)  # warm-up
        for rep in range(max(1, job.get("repeats", 1))):
            for i, batch in enumerate(batches):
                shift = (i + rep) % len(names)
                for name in names[shift:] + names[:shift]:
                    time.sleep(0.02)  # untimed: the previous variant's threads stop spinning
                    t = time.perf_counter()
                    variants[name].encode(batch, batch_size=size)
                    best[name][i] = min(best[name][i], time.perf_counter() - t)
        for name in names:
            out["rows"].setdefault(name, {})[str(length)] = len(texts) / sum(best[name])
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


if __name__ == "__main__":
    main()
