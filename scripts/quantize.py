#!/usr/bin/env python3
"""quantize.py writes the int8 ("quantized") and float16 ("fp16") variants of
the ONNX files of a SigLIP model folder, next to them, named as the hub names
them: onnx/vision_model_quantized.onnx, onnx/text_model_fp16.onnx, ...

    .deps/py/bin/python scripts/quantize.py MODEL_DIR [--modes quantized fp16]

The settings are those transformers.js's conversion script (scripts/convert.py,
early 2024, when Xenova/siglip-base-patch16-224 was exported) used for the
hub's *_quantized.onnx files: ONNX Runtime dynamic quantization, per channel,
reduced range (7-bit weights), weights uint8 for a graph with a Conv (the
vision tower's patch embedding) and int8 otherwise, subgraphs included. fp16
is ONNX Runtime's float16 converter with float32 inputs and outputs kept, as
transformers.js's quantize script does.
"""
import argparse
import os
import sys

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.float16 import convert_float_to_float16

TOWERS = ("vision_model", "text_model", "model")


def operators(graph, out=None):
    """The op types of a graph and its subgraphs."""
    out = set() if out is None else out
    for node in graph.node:
        out.add(node.op_type)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                operators(attr.g, out)
    return out


def quantized(src, dst):
    weight_type = QuantType.QUInt8 if "Conv" in operators(onnx.load(src, load_external_data=False).graph) else QuantType.QInt8
    quantize_dynamic(
        model_input=src,
        model_output=dst,
        per_channel=True,
        reduce_range=True,
        weight_type=weight_type,
        extra_options={"EnableSubgraph": True},
    )
    return f"weights {weight_type.name}, per channel, reduced range"


def fp16(src, dst):
    model = convert_float_to_float16(onnx.load(src), keep_io_types=True)
    # When one output feeds several nodes it keeps in float32, the converter
    # can insert the same Cast twice (same name, same output), which ONNX
    # Runtime refuses ("Duplicate definition of name"): keep the first.
    made, keep = set(), []
    for node in model.graph.node:
        key = tuple(node.output)
        if node.op_type == "Cast" and key in made:
            continue
        made.add(key)
        keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    onnx.save(model, dst)
    return "float16, float32 inputs and outputs"


MODES = {"quantized": quantized, "fp16": fp16}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir")
    p.add_argument("--modes", nargs="+", default=["quantized"], choices=sorted(MODES))
    args = p.parse_args()
    onnx_dir = os.path.join(args.model_dir, "onnx")
    towers = [t for t in TOWERS if os.path.exists(os.path.join(onnx_dir, t + ".onnx"))]
    if not {"vision_model", "text_model"} <= set(towers):
        sys.exit(f"quantize.py: {onnx_dir} lacks vision_model.onnx or text_model.onnx")
    for mode in args.modes:
        for tower in towers:
            src = os.path.join(onnx_dir, tower + ".onnx")
            dst = os.path.join(onnx_dir, f"{tower}_{mode}.onnx")
            how = MODES[mode](src, dst)
            print(f"quantize.py: {dst}: {how} ({os.path.getsize(src) / 2**20:.1f} → {os.path.getsize(dst) / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
