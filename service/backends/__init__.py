"""Inference backends for a bundle: the PyTorch model (``torch``) or its ONNX Runtime int8
export (``onnx``). Modeling stays in ``service/modeling.py``; export in ``training/export.py``."""

from __future__ import annotations

ONNX_DIR = "onnx"
ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
