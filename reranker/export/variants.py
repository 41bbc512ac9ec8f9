"""The export variants of a trained cross-encoder: one table of what each is, which file holds it, which packages
build and serve it, and the function that builds it. Every variant starts from one fp32 ONNX graph that
`torch.onnx.export` (the dynamo exporter, dynamic batch and sequence axes) writes from the trained model, and lands
in a copy of the model folder where sentence-transformers' backends look (`onnx/model*.onnx`,
`openvino/openvino_model*.xml`): ``CrossEncoder(folder, backend="onnx", model_kwargs={"file_name": ...})`` loads it
wherever optimum is installed, and `ExportedCrossEncoder(folder, file_name)` loads it with nothing but the runtime.

To add a variant: write its build function (the plain ONNX graph, its target path, the calibration inputs, the export
params) and add one row to VARIANTS; the check stage, the export stage and the card read this table.

Example::

    build_variants(Path("data/model"), Path("data/export"), ["openvino-int8"], calibration_pairs, params.export)
    ExportedCrossEncoder("data/export", VARIANTS["openvino-int8"].file_name).rank("query", ["a", "b"])
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reranker.export.loader import load_tokenizer, tokenize_pairs

# The graph every variant starts from, inside the build's scratch folder
PLAIN_ONNX = "model_plain.onnx"
# Tokenized calibration pairs, one feed (input name -> int64 array) per pair
Feeds = list[dict[str, np.ndarray]]


def build_onnx(plain: Path, target: Path, calibration: Feeds, export) -> None:
    """fp32 ONNX with ONNX Runtime's graph optimizations (fused layer norms, GELU and attention where the graph
    allows) applied once and saved, instead of at every session start. EXTENDED, not ALL: ALL adds layout changes
    for the CPU it runs on, and the file must load on others."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    onnxruntime.InferenceSession(str(plain), options, providers=["CPUExecutionProvider"])


# Dynamic quantization on x86 multiplies u8 activations by s8 weights with VPMADDUBSW, whose 16-bit sums can
# saturate unless the weights use 7 bits (ONNX Runtime's quantization docs); VNNI and ARM have no such limit
REDUCE_RANGE = {"avx2": True, "avx512": True, "avx512_vnni": False, "arm64": False}


def build_onnx_int8_dynamic(plain: Path, target: Path, calibration: Feeds, export) -> None:
    """int8 weights (per channel), activations quantized at run time: no calibration data."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(plain), str(target), weight_type=QuantType.QInt8, per_channel=True,
                     reduce_range=REDUCE_RANGE[export.quantization])


def build_onnx_int8_static(plain: Path, target: Path, calibration: Feeds, export) -> None:
    """int8 weights and activations, the activations' ranges calibrated on in-domain (query, document) pairs; the
    matrix products only, in QDQ form, which ONNX Runtime fuses into integer kernels."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Pairs(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter(calibration)

        def get_next(self):
            return next(self.feeds, None)

    quantize_static(str(plain), str(target), Pairs(), quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=REDUCE_RANGE[export.quantization], activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gather"])


def build_openvino(plain: Path, target: Path, calibration: Feeds, export) -> None:
    import openvino

    openvino.save_model(openvino.convert_model(str(plain)), str(target), compress_to_fp16=False)


def build_openvino_int8(plain: Path, target: Path, calibration: Feeds, export) -> None:
    """NNCF's post-training quantization in its transformer mode (SmoothQuant, bias correction), calibrated on
    in-domain (query, document) pairs."""
    import nncf
    import openvino

    quantized = nncf.quantize(openvino.convert_model(str(plain)), nncf.Dataset(calibration),
                              model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration))
    openvino.save_model(quantized, str(target), compress_to_fp16=False)


@dataclass(frozen=True)
class Variant:
    name: str
    file_name: str  # inside the model folder, where sentence-transformers' backends look
    backend: str  # CrossEncoder's backend name: onnx or openvino
    precision: str  # fp32 or int8
    calibration: str  # none, dynamic (weights only, no data) or static (activations calibrated on pairs)
    packages: tuple[str, ...]  # the modules its build imports, besides torch's ONNX exporter
    build: Callable[[Path, Path, Feeds, object], None]

    def files(self, folder: Path) -> list[str]:
        """Its files inside `folder`: OpenVINO keeps the weights in a .bin beside the .xml."""
        files = [self.file_name]
        if self.file_name.endswith(".xml"):
            files.append(self.file_name[: -len(".xml")] + ".bin")
        return [file for file in files if (folder / file).exists()]


ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
VARIANTS = {variant.name: variant for variant in (
    Variant("onnx", "onnx/model.onnx", "onnx", "fp32", "none", ONNX_PACKAGES, build_onnx),
    Variant("onnx-int8", "onnx/model_qint8_dynamic.onnx", "onnx", "int8", "dynamic", ONNX_PACKAGES,
            build_onnx_int8_dynamic),
    Variant("onnx-int8-static", "onnx/model_qint8_static.onnx", "onnx", "int8", "static", ONNX_PACKAGES,
            build_onnx_int8_static),
    Variant("openvino", "openvino/openvino_model.xml", "openvino", "fp32", "none", (*ONNX_PACKAGES, "openvino"),
            build_openvino),
    Variant("openvino-int8", "openvino/openvino_model_qint8_quantized.xml", "openvino", "int8", "static",
            (*ONNX_PACKAGES, "openvino", "nncf"), build_openvino_int8),
)}


def missing_packages(names: list[str]) -> dict[str, str]:
    """Variant -> the first package it needs that is not installed, for `names` (found without importing)."""
    missing = {}
    for name in names:
        for module in VARIANTS[name].packages:
            try:
                found = importlib.util.find_spec(module)
            except (ImportError, ValueError):
                found = None
            if found is None:
                missing[name] = module
                break
    return missing


def export_plain_onnx(model_dir: Path, path: Path, trust_remote_code: bool = False) -> list[str]:
    """The trained model's fp32 ONNX graph by `torch.onnx.export` (dynamo), with dynamic batch and sequence axes and
    the input and output names ONNX Runtime's transformers models use (input_ids, attention_mask, token_type_ids;
    logits); returns the input names."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, trust_remote_code=trust_remote_code).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    # Two pairs of different lengths, so that the traced graph has padding in it
    example = tokenizer(["a question", "another question here"], ["a document to score", "a document"],
                        padding=True, return_tensors="pt")
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in example]
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with torch.no_grad():
        torch.onnx.export(model, args=(), kwargs={name: example[name] for name in names}, f=str(path), dynamo=True,
                          input_names=names, output_names=["logits"], external_data=False, verbose=False,
                          dynamic_shapes={name: {0: batch, 1: sequence} for name in names})
    return names


def build_variants(model_dir: Path, out_dir: Path, names: list[str], calibration_pairs: list[tuple[str, str]],
                   export, trust_remote_code: bool = False) -> dict[str, float]:
    """Export `names` of the trained model in `model_dir` into `out_dir` (a copy of the model folder that gains
    onnx/ and openvino/); returns each variant's build seconds, the shared ONNX export counted in each.
    `calibration_pairs` are (query, document) pairs for the statically calibrated variants, tokenized here one
    pair a feed, as they are served; `export` is params.export."""
    shutil.copytree(model_dir, out_dir, ignore=shutil.ignore_patterns("README.md", "onnx", "openvino"))
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        plain = Path(scratch) / PLAIN_ONNX
        input_names = export_plain_onnx(model_dir, plain, trust_remote_code)
        tokenizer = load_tokenizer(model_dir)
        calibration = [tokenize_pairs(tokenizer, [pair], input_names) for pair in calibration_pairs]
        shared = time.perf_counter() - started
        seconds = {}
        for name in names:
            variant, started = VARIANTS[name], time.perf_counter()
            (out_dir / variant.file_name).parent.mkdir(exist_ok=True)
            variant.build(plain, out_dir / variant.file_name, calibration, export)
            seconds[name] = round(shared + time.perf_counter() - started, 1)
    return seconds
