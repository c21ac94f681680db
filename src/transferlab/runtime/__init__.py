"""Inference runtimes other than eager PyTorch: ONNX Runtime graphs exported from a saved model (``onnx.py``)."""
