"""Random-weight SigLIP models in the onnx-community combined layout, and
PyTorch's probabilities on them: the reference side of siglipd's tests of
combined graphs (infer/combined_test.go, infer/hub tests).

  export_combined.py make OUT --shape so400m|tiny --tokenizer-dir DIR [--mask]
      OUT/model       the layout onnx-community/siglip-so400m-patch14-384-ONNX
                      has: config.json, preprocessor_config.json, the
                      tokenizer files of DIR, and one combined graph
                      onnx/model.onnx (inputs input_ids, pixel_values
                      [, attention_mask with --mask]; outputs
                      logits_per_image, logits_per_text, text_embeds,
                      image_embeds) whose weights are in onnx/model.onnx_data
      OUT/checkpoint  the same weights saved by transformers (save_pretrained)
      prints {"params": N, "onnx_bytes": N, "data_bytes": N}

  export_combined.py score CHECKPOINT REQUEST.json
      REQUEST: {"pixel_values": FILE of float32 [n,3,H,W] (little-endian),
                "n": n, "input_ids": [[ids]...], "images": [PNG...],
                "tokenizer": tokenizer.json, "texts": [...]}
      prints {"probs": sigmoid(logits_per_image) on the given pixel_values
                and ids, "probs_processor": the same on pixel_values made
                from the PNGs by transformers' SiglipImageProcessorPil
                (Pillow resizing), "ids": HF tokenizers' ids of the texts
                padded to the model's 64 positions}

The model is SiglipModel from transformers itself, exported with the
TorchScript exporter (torch.onnx.export dynamo=False) and re-saved with
onnx.save_model(save_as_external_data=True), as the onnx-community exports
of models too big for one protobuf are.
"""

import json
import os
import shutil
import sys

import numpy as np
import torch

torch.set_num_threads(1)

SHAPES = {
    # google/siglip-so400m-patch14-384's widths, one layer per tower. Random
    # 1152-wide embeddings have cosines of a few hundredths: the trained
    # model's scale, exp(4.7), spreads them across the whole sigmoid.
    "so400m": dict(hidden=1152, mlp=4304, heads=16, patch=14, image=384, layers=1, scale=4.7, bias=-0.5),
    # Small enough to export in seconds, for the download tests; 64-wide
    # cosines are ten times wider, so exp(3) and -1 as infer/testmodel's tiny.
    "tiny": dict(hidden=64, mlp=128, heads=4, patch=14, image=56, layers=1, scale=3.0, bias=-1.0),
}


def build(shape, vocab, seed=7):
    from transformers import SiglipConfig, SiglipModel

    s = SHAPES[shape]
    tower = dict(hidden_size=s["hidden"], intermediate_size=s["mlp"], num_attention_heads=s["heads"],
                 num_hidden_layers=s["layers"])
    cfg = SiglipConfig(
        text_config=dict(vocab_size=vocab, max_position_embeddings=64, **tower),
        vision_config=dict(image_size=s["image"], patch_size=s["patch"], **tower),
    )
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = SiglipModel(cfg).eval()
    randomize(model, s["patch"], s["scale"], s["bias"])
    return model


@torch.no_grad()
def randomize(model, patch, scale, bias):
    """Weights that make a sensitive test: transformers' initialisation
    gives every image nearly the same embedding (zero biases, small
    position embeddings) and logit_scale 0, bias 0; these are drawn as
    infer/testmodel draws its weights — activations near unit scale, sharper
    attention (q and k ×3) — with a logit scale and bias that put the
    shape's cosines across the whole sigmoid."""
    g = torch.Generator().manual_seed(11)

    def normal(t, mean, std):
        t.copy_(mean + std * torch.randn(t.shape, generator=g))

    for name, p in sorted(model.named_parameters()):
        if name == "logit_scale":
            p.fill_(scale)
        elif name == "logit_bias":
            p.fill_(bias)
        elif "layer_norm" in name or "layernorm" in name:
            normal(p, 1.0 if name.endswith("weight") else 0.0, 0.1 if name.endswith("weight") else 0.02)
        elif name.endswith("patch_embedding.weight"):
            normal(p, 0, 1 / np.sqrt(3 * patch * patch))
        elif name.endswith("position_embedding.weight"):
            normal(p, 0, 0.5)
        elif name.endswith("token_embedding.weight") or name.endswith("probe"):
            normal(p, 0, 1)
        elif p.dim() >= 2:  # Linear [out, in], the pooling head's in_proj_weight [3·D, D]
            normal(p, 0, 1 / np.sqrt(p.shape[1]))
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                p.mul_(3)
        else:
            normal(p, 0, 0.02)


class Combined(torch.nn.Module):
    """SiglipModel with the combined graph's inputs and outputs."""

    def __init__(self, model, mask):
        super().__init__()
        self.model, self.mask = model, mask

    def forward(self, input_ids, pixel_values, attention_mask=None):
        o = self.model(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask)
        return o.logits_per_image, o.logits_per_text, o.text_embeds, o.image_embeds


def make(out, shape, tokenizer_dir, mask):
    import onnx

    vocab = len(json.load(open(os.path.join(tokenizer_dir, "tokenizer.json")))["model"]["vocab"])
    model = build(shape, vocab)
    s = SHAPES[shape]
    folder, ckpt = os.path.join(out, "model"), os.path.join(out, "checkpoint")
    os.makedirs(os.path.join(folder, "onnx"), exist_ok=True)
    model.save_pretrained(ckpt)
    shutil.copy(os.path.join(ckpt, "config.json"), folder)
    pre = {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
           "image_processor_type": "SiglipImageProcessor", "image_std": [0.5, 0.5, 0.5],
           "processor_class": "SiglipProcessor", "resample": 3, "rescale_factor": 1 / 255,
           "size": {"height": s["image"], "width": s["image"]}}
    for d in (folder, ckpt):
        with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
            json.dump(pre, f, indent=2)
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if os.path.exists(os.path.join(tokenizer_dir, name)):
                shutil.copy(os.path.join(tokenizer_dir, name), d)

    ids = torch.ones((2, 64), dtype=torch.int64)
    pixels = torch.zeros((3, 3, s["image"], s["image"]))
    names = ["input_ids", "pixel_values"] + (["attention_mask"] if mask else [])
    args = (ids, pixels) + ((torch.ones_like(ids),) if mask else ())
    axes = {"input_ids": {0: "text_batch_size", 1: "sequence_length"}, "pixel_values": {0: "image_batch_size"},
            "attention_mask": {0: "text_batch_size", 1: "sequence_length"},
            "logits_per_image": {0: "image_batch_size", 1: "text_batch_size"},
            "logits_per_text": {0: "text_batch_size", 1: "image_batch_size"},
            "text_embeds": {0: "text_batch_size"}, "image_embeds": {0: "image_batch_size"}}
    tmp = os.path.join(out, "export.onnx")
    torch.onnx.export(Combined(model, mask), args, tmp, dynamo=False, opset_version=17, do_constant_folding=True,
                      input_names=names, output_names=["logits_per_image", "logits_per_text", "text_embeds", "image_embeds"],
                      dynamic_axes={k: v for k, v in axes.items() if k in names or k.startswith(("logits", "text_", "image_"))})
    graph = onnx.load(tmp)
    os.remove(tmp)
    onnx.save_model(graph, os.path.join(folder, "onnx", "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="model.onnx_data")
    print(json.dumps({"params": sum(p.numel() for p in model.parameters()),
                      "onnx_bytes": os.path.getsize(os.path.join(folder, "onnx", "model.onnx")),
                      "data_bytes": os.path.getsize(os.path.join(folder, "onnx", "model.onnx_data"))}))


@torch.no_grad()
def score(ckpt, request):
    from PIL import Image
    from tokenizers import Tokenizer
    from transformers import SiglipImageProcessorPil, SiglipModel

    req = json.load(open(request))
    model = SiglipModel.from_pretrained(ckpt, attn_implementation="eager").eval()
    size = model.config.vision_config.image_size
    n = req["n"]
    pixels = torch.from_numpy(np.fromfile(req["pixel_values"], dtype="<f4").reshape(n, 3, size, size).copy())
    ids = torch.tensor(req["input_ids"], dtype=torch.int64)

    def probs(pv):
        return torch.sigmoid(model(input_ids=ids, pixel_values=pv).logits_per_image).tolist()

    out = {"probs": probs(pixels)}
    if req.get("images"):
        proc = SiglipImageProcessorPil.from_pretrained(ckpt)
        imgs = [Image.open(p).convert("RGB") for p in req["images"]]
        out["probs_processor"] = probs(proc(images=imgs, return_tensors="pt")["pixel_values"])
    if req.get("texts"):
        tok = Tokenizer.from_file(req["tokenizer"])
        tok.enable_padding(length=64, pad_id=tok.token_to_id("</s>"), pad_token="</s>")
        tok.enable_truncation(max_length=64)
        out["ids"] = [e.ids for e in tok.encode_batch(req["texts"])]
    print(json.dumps(out))


def main(argv):
    if len(argv) >= 2 and argv[0] == "make":
        import argparse

        ap = argparse.ArgumentParser()
        ap.add_argument("out")
        ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
        ap.add_argument("--tokenizer-dir", required=True)
        ap.add_argument("--mask", action="store_true", help="give the graph an attention_mask input")
        a = ap.parse_args(argv[1:])
        make(a.out, a.shape, a.tokenizer_dir, a.mask)
    elif len(argv) == 3 and argv[0] == "score":
        score(argv[1], argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
