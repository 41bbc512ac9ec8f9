"""The export variants of a trained cross-encoder: what each is, which file holds it and how sentence-transformers
builds it. Every variant lands in one model folder in the layout of the library's own hub export (`onnx/`,
`openvino/`), where ``CrossEncoder(folder, backend=variant.backend, model_kwargs={"file_name": variant.file_name})``
loads it.

Example::

    build_variants("data/model", "data/export", ["openvino", "openvino-int8"], calibration_folder, export_params)
    load_variant("data/export", VARIANTS["openvino-int8"]).predict([("query", "document")])
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

# Where each backend's packages come from: the export extra for OpenVINO; ONNX Runtime through optimum-onnx
BACKEND_MODULES = {"onnx": ("optimum.onnxruntime", "onnxruntime"), "openvino": ("optimum.intel", "openvino")}
# The column of the calibration folder: a [query, document] pair, which the tokenizer reads as a text pair
CALIBRATION_COLUMN = "pair"


@dataclass(frozen=True)
class Variant:
    name: str
    backend: str  # CrossEncoder's backend: "onnx" or "openvino"
    kind: str  # plain (the backend's fp32 export), optimized (ONNX Runtime's graph optimization) or quantized
    level: str | None = None  # optimized: O1-O3

    def file_name(self, quantization: str) -> str:
        """The file inside the model folder, as the library's export functions name it."""
        if self.backend == "onnx":
            suffix = {"plain": "", "optimized": f"_{self.level}", "quantized": f"_qint8_{quantization}"}[self.kind]
            return f"onnx/model{suffix}.onnx"
        return "openvino/openvino_model.xml" if self.kind == "plain" else "openvino/openvino_model_qint8_quantized.xml"

    def files(self, quantization: str) -> list[str]:
        """Every file the variant needs beside the model's config and tokenizer (OpenVINO keeps weights in .bin)."""
        name = self.file_name(quantization)
        return [name, name[: -len(".xml")] + ".bin"] if name.endswith(".xml") else [name]


VARIANTS = {variant.name: variant for variant in (
    Variant("onnx", "onnx", "plain"),
    Variant("onnx-O1", "onnx", "optimized", "O1"),
    Variant("onnx-O2", "onnx", "optimized", "O2"),
    Variant("onnx-O3", "onnx", "optimized", "O3"),
    Variant("onnx-int8", "onnx", "quantized"),
    Variant("openvino", "openvino", "plain"),
    Variant("openvino-int8", "openvino", "quantized"),
)}


def missing_backends(names: list[str]) -> dict[str, str]:
    """Backend -> the first module it needs that is not installed, for the backends of `names` (no import)."""
    missing = {}
    for backend in dict.fromkeys(VARIANTS[name].backend for name in names):
        for module in BACKEND_MODULES[backend]:
            try:
                found = importlib.util.find_spec(module)
            except (ImportError, ValueError):
                found = None
            if found is None:
                missing[backend] = module
                break
    return missing


def load_variant(folder: str | Path, variant: Variant, quantization: str, trust_remote_code: bool = False):
    """A CrossEncoder of one exported variant, loaded as a user loads it."""
    from sentence_transformers.cross_encoder import CrossEncoder

    return CrossEncoder(str(folder), backend=variant.backend, trust_remote_code=trust_remote_code,
                        model_kwargs={"file_name": variant.file_name(quantization)})


def build_variants(model_dir: Path, out_dir: Path, names: list[str], calibration: Path | None, export,
                   trust_remote_code: bool = False) -> dict[str, float]:
    """Export `names` of the trained model in `model_dir` into `out_dir` (a copy of the model folder that gains
    onnx/ and openvino/); returns each variant's build seconds. `calibration` is a folder the `datasets` library
    reads, with a `pair` column of [query, document] pairs (reranker/export/calibration.py), needed by
    openvino-int8; `export` is params.export."""
    import time

    from sentence_transformers.backend import (
        export_dynamic_quantized_onnx_model,
        export_optimized_onnx_model,
        export_static_quantized_openvino_model,
    )
    from sentence_transformers.cross_encoder import CrossEncoder

    shutil.copytree(model_dir, out_dir, ignore=shutil.ignore_patterns("README.md", "onnx", "openvino"))
    seconds, plain = {}, {}
    for name in names:
        variant, started = VARIANTS[name], time.perf_counter()
        if variant.backend not in plain:
            # The fp32 export every other variant of the backend starts from, saved where the library loads it
            plain[variant.backend] = CrossEncoder(str(out_dir), backend=variant.backend,
                                                  trust_remote_code=trust_remote_code)
            plain[variant.backend].save_pretrained(str(out_dir))
        model = plain[variant.backend]
        if variant.kind == "optimized":
            export_optimized_onnx_model(model, variant.level, str(out_dir))
        elif variant.kind == "quantized" and variant.backend == "onnx":
            export_dynamic_quantized_onnx_model(model, export.quantization, str(out_dir))
        elif variant.kind == "quantized":
            from optimum.intel import OVQuantizationConfig

            # In-domain calibration: the library's default calibrates on glue/sst2 sentences, one text each, while
            # a reranker sees (query, document) pairs; the tokenizer reads each [query, document] as a text pair
            export_static_quantized_openvino_model(
                model, OVQuantizationConfig(num_samples=export.calibration_pairs), str(out_dir),
                dataset_name=str(calibration), dataset_config_name="default", dataset_split="train",
                column_name=CALIBRATION_COLUMN)
        seconds[name] = round(time.perf_counter() - started, 1)
    return seconds
