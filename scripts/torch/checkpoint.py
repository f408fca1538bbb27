"""Random-weight SigLIP checkpoints saved by transformers itself, and
PyTorch's probabilities on them: the reference side of infer/convert's tests.

  checkpoint.py make OUT --shape small|small-gelu|so400m|siglip2 --reference DIR [--dtypes fp32,fp16,bf16] [--seed N] [--layers N]
      writes OUT/<dtype>/ for each dtype: SiglipModel.save_pretrained (safetensors in that
      dtype, the same random weights rounded; so400m's fp32 in shards with
      model.safetensors.index.json), preprocessor_config.json, and the tokenizer
      files of DIR (a published SigLIP or SigLIP 2 repository's files, or a
      SentencePiece spiece.model with its configs, as Google's SigLIP 1 repositories). so400m and siglip2
      get a config.json in Google's style: only the keys that differ from SiglipConfig's
      defaults, as google/siglip-so400m-patch14-384 and google/siglip2-base-patch16-224
      publish it, so loading it exercises transformers' defaults.
  checkpoint.py score --images FILE --ids FILE CKPT...
      FILE of images: raw RGB uint8, N x H x W x 3, at the checkpoint's input size (JSON
      sidecar FILE.json gives n, height, width); ids: JSON [[id, ...], ...]. Loads each
      CKPT in float32 (whatever its dtype on disk), runs its image processor and SiglipModel,
      and prints {"versions": ..., "probs": {CKPT: sigmoid(logits_per_image)}} as JSON.
  checkpoint.py export CKPT OUT.onnx [--optimize clip|vit|none] [--attn eager|sdpa]
      torch.onnx.export of the checkpoint's vision tower (pixel_values -> pooler_output),
      then ONNX Runtime's transformer optimizer: the exporter's graph siglipd's own is
      timed against (siglipd bench --compare).
"""

import argparse
import copy
import json
import os
import shutil
import sys

import numpy as np
import torch

torch.set_num_threads(1)

import transformers  # noqa: E402
from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel  # noqa: E402

# Shapes: (vision, text) tower sizes, image and patch size. "small" is
# base-like (224 px, patch 16) but narrow and shallow, with a text width
# that differs from its projection size; "so400m" has the real widths of
# google/siglip-so400m-patch14-384 with one layer per tower.
SHAPES = {
    "small": dict(
        vision=dict(hidden_size=96, intermediate_size=192, num_attention_heads=4, num_hidden_layers=2,
                    image_size=224, patch_size=16),
        text=dict(hidden_size=64, intermediate_size=160, num_attention_heads=4, num_hidden_layers=2,
                  projection_size=96),
        resample=3, google_style=False, logit_scale=3.0, logit_bias=2.0, gain=3.0),
    # small with the erf GELU ("gelu") that siglipd also builds.
    "small-gelu": dict(
        vision=dict(hidden_size=96, intermediate_size=192, num_attention_heads=4, num_hidden_layers=2,
                    image_size=224, patch_size=16, hidden_act="gelu"),
        text=dict(hidden_size=64, intermediate_size=160, num_attention_heads=4, num_hidden_layers=2,
                  projection_size=96, hidden_act="gelu"),
        # A larger logit scale than small's: the tanh and erf GELUs differ by
        # less than 1e-3, and the test must tell them apart.
        resample=3, google_style=False, logit_scale=4.0, logit_bias=6.0, gain=3.0),
    # google/siglip-base-patch16-224's dimensions (12 layers of width 768
    # per tower), for benchmarks: its speed and memory are the real model's.
    "base": dict(
        vision=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                    image_size=224, patch_size=16),
        text=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12),
        resample=3, google_style=True, logit_scale=4.7, logit_bias=-12.9, gain=1.0),
    "so400m": dict(
        vision=dict(hidden_size=1152, intermediate_size=4304, num_attention_heads=16, num_hidden_layers=1,
                    image_size=384, patch_size=14),
        text=dict(hidden_size=1152, intermediate_size=4304, num_attention_heads=16, num_hidden_layers=1),
        # The trained model's logit scale (exp(4.7)); random 1152-wide
        # embeddings have cosines of a few hundredths, which it spreads
        # across the sigmoid.
        resample=3, google_style=True, logit_scale=4.7, logit_bias=0.0, gain=3.0, shard_fp32="150MB"),
    "siglip2": dict(
        vision=dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_hidden_layers=2),
        text=dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_hidden_layers=2,
                  vocab_size=256000),
        resample=2, google_style=True, logit_scale=3.0, logit_bias=-1.0, gain=3.0),
}

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def make(args):
    shape = SHAPES[args.shape]
    if os.path.exists(os.path.join(args.reference, "tokenizer.json")):
        tok = json.load(open(os.path.join(args.reference, "tokenizer.json")))
        vocab = len(tok["model"]["vocab"])
    else:  # Google's SigLIP 1 repositories: only the SentencePiece model
        import sentencepiece
        vocab = sentencepiece.SentencePieceProcessor(model_file=os.path.join(args.reference, "spiece.model")).vocab_size()
    text = dict(shape["text"])
    text.setdefault("vocab_size", vocab)
    if text["vocab_size"] != vocab:
        sys.exit(f"{args.reference}/tokenizer.json has {vocab} tokens, the {args.shape} shape wants {text['vocab_size']}")
    vision = dict(shape["vision"])
    if args.layers:
        text["num_hidden_layers"] = vision["num_hidden_layers"] = args.layers
    config = SiglipConfig(text_config=text, vision_config=vision)
    torch.manual_seed(args.seed)
    model = SiglipModel(config).eval()
    with torch.no_grad():
        # Random weights give nearly uniform attention, so the pooled
        # embeddings barely depend on the input; sharper q and k (and
        # logit scale and bias that put random cosines across the sigmoid)
        # make the probabilities, and so the parity test, sensitive.
        for name, p in model.named_parameters():
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                p.mul_(shape["gain"])
            if name == "vision_model.head.attention.in_proj_weight":
                d = p.shape[1]
                p[: 2 * d].mul_(shape["gain"])
        model.logit_scale.fill_(shape["logit_scale"])
        model.logit_bias.fill_(shape["logit_bias"])
    size = config.vision_config.image_size
    proc = SiglipImageProcessor(size={"height": size, "width": size}, resample=shape["resample"],
                                image_mean=[0.5] * 3, image_std=[0.5] * 3)
    for name in args.dtypes.split(","):
        out = os.path.join(args.out, name)
        # so400m's float32 checkpoint is saved in shards with an index, as
        # transformers saves every checkpoint over its max_shard_size.
        shard = shape.get("shard_fp32") if name == "fp32" else None
        copy.deepcopy(model).to(DTYPES[name]).save_pretrained(out, safe_serialization=True, **({"max_shard_size": shard} if shard else {}))
        proc.save_pretrained(out)
        for f in ("tokenizer.json", "spiece.model", "tokenizer_config.json", "special_tokens_map.json"):
            if os.path.exists(os.path.join(args.reference, f)):
                shutil.copyfile(os.path.join(args.reference, f), os.path.join(out, f))
        if shape["google_style"]:
            google_config(out, config, name)
    print(json.dumps({"versions": versions(), "vocab_size": vocab}))


def google_config(out, config, dtype):
    """Rewrites config.json with only what differs from SiglipConfig's
    defaults, as Google's repositories publish it."""
    defaults = {"text_config": transformers.SiglipTextConfig().to_dict(),
                "vision_config": transformers.SiglipVisionConfig().to_dict()}
    doc = {"architectures": ["SiglipModel"], "initializer_factor": 1.0, "model_type": "siglip",
           "torch_dtype": str(DTYPES[dtype]).removeprefix("torch.")}
    for key, sub in (("text_config", config.text_config), ("vision_config", config.vision_config)):
        d = {"model_type": sub.model_type}
        for k, v in sub.to_dict().items():
            if k in ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers", "patch_size",
                     "image_size", "vocab_size", "projection_size") and v != defaults[key].get(k):
                if k == "projection_size" and v == sub.hidden_size:
                    continue  # transformers' default: the text width
                d[k] = v
        doc[key] = d
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(doc, f, indent=2)


def score(args):
    meta = json.load(open(args.images + ".json"))
    raw = np.fromfile(args.images, dtype=np.uint8).reshape(meta["n"], meta["height"], meta["width"], 3)
    from PIL import Image
    images = [Image.fromarray(a, "RGB") for a in raw]
    ids = torch.tensor(json.load(open(args.ids)), dtype=torch.long)
    out = {}
    for ckpt in args.checkpoints:
        model = SiglipModel.from_pretrained(ckpt, dtype=torch.float32).eval()
        proc = SiglipImageProcessor.from_pretrained(ckpt)
        pixels = proc(images=images, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            logits = model(input_ids=ids, pixel_values=pixels.to(torch.float32)).logits_per_image
        out[ckpt] = torch.sigmoid(logits.double()).tolist()
    print(json.dumps({"versions": versions(), "probs": out}))


def export(args):
    from transformers import SiglipVisionModel
    model = SiglipVisionModel.from_pretrained(args.checkpoint, dtype=torch.float32, attn_implementation=args.attn).eval()
    c = model.config
    x = torch.zeros(1, 3, c.image_size, c.image_size)
    raw = args.out + ".raw.onnx"
    torch.onnx.export(model, (x,), raw, input_names=["pixel_values"], output_names=["last_hidden_state", "pooler_output"],
                      dynamic_axes={"pixel_values": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"},
                                    "pooler_output": {0: "batch_size"}}, opset_version=17, dynamo=False)
    if args.optimize == "none":
        os.replace(raw, args.out)
    else:
        from onnxruntime.transformers.optimizer import optimize_model
        m = optimize_model(raw, model_type=args.optimize, num_heads=c.num_attention_heads, hidden_size=c.hidden_size,
                           opt_level=0, use_gpu=False)
        m.save_model_to_file(args.out)
        os.remove(raw)
    import onnx
    g = onnx.load(args.out, load_external_data=False).graph
    ops = {}
    for n in g.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    print(json.dumps({"versions": versions(), "ops": ops}))


def versions():
    import onnxruntime
    return {"torch": torch.__version__, "transformers": transformers.__version__, "onnxruntime": onnxruntime.__version__}


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out")
    m.add_argument("--shape", choices=sorted(SHAPES), required=True)
    m.add_argument("--reference", required=True)
    m.add_argument("--dtypes", default="fp32,fp16,bf16")
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--layers", type=int, default=0, help="layers per tower instead of the shape's (27: so400m's real depth)")
    s = sub.add_parser("score")
    s.add_argument("--images", required=True)
    s.add_argument("--ids", required=True)
    s.add_argument("checkpoints", nargs="+")
    e = sub.add_parser("export")
    e.add_argument("checkpoint")
    e.add_argument("out")
    e.add_argument("--optimize", default="clip", choices=["clip", "vit", "bert", "none"])
    e.add_argument("--attn", default="eager", choices=["eager", "sdpa"])
    args = p.parse_args()
    {"make": make, "score": score, "export": export}[args.cmd](args)


if __name__ == "__main__":
    main()
