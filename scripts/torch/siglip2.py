"""siglip2.py: SigLIP 2 on its published files, the Python side of siglipd's
SigLIP 2 parity tests (infer/siglip2_test.go, infer/tokenizer/siglip2_test.go).

    .deps/torch/bin/python scripts/torch/siglip2.py REQUEST.json > RESPONSE.json

Each request names an "op":

make   {"reference": DIR, "out": DIR, "torch_out": DIR, "seed": N,
        "logit_scale": S, "logit_bias": B}
    A random-weight SigLIP 2 made by transformers itself: the published
    config.json with small widths (the real 256,000-token vocabulary, a narrow
    text tower so the embedding table stays small), saved with save_pretrained
    into torch_out, and exported with torch.onnx.export (TorchScript,
    dynamo=False) into out in the onnx-community layout:
    onnx/vision_model.onnx (pixel_values -> last_hidden_state, pooler_output),
    onnx/text_model.onnx (input_ids -> last_hidden_state, pooler_output) and
    onnx/model.onnx (input_ids, pixel_values -> logits_per_image,
    logits_per_text, text_embeds, image_embeds; logit_scale and logit_bias
    kept as initializers of those names), beside the published
    preprocessor_config.json and tokenizer files. The weights are random, the
    shapes and the files around them real.

score  {"model": TORCH_DIR, "images": [PNG...], "labels": [...], "template": T,
        "resized_out": DIR}
    The seed article's call, pipeline("zero-shot-image-classification"), on
    the folder make wrote; and the same model step by step (the image
    processor, the tokenizer with padding max_length 64, SiglipModel, sigmoid).
    Each image is also written as Pillow resizes it for the model, to
    resized_out/<i>.png, so transformers.js can be fed Pillow's pixels.

pretokenize {"pre_tokenizers": [tokenizer.json pre_tokenizer objects], "texts": [...]}
    The words each pre-tokenizer (Split, ...) cuts each text into, by HF
    tokenizers.

tokenize {"dir": DIR, "texts": [...]}
    Token ids of each text from HF tokenizers (Rust, tokenizer.json alone:
    without padding, and with the file's own padding block) and from
    transformers' AutoTokenizer (padding max_length, max_length 64,
    truncation), and bytes.lower() of each text (ASCII-only lower-casing,
    the oracle for model.lowercase: true on Gemma).

All ops print one JSON object with "versions".
"""
import json
import os
import shutil
import sys

PUBLISHED_FILES = ["preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def versions():
    import tokenizers

    out = {"tokenizers": tokenizers.__version__}
    if "torch" in sys.modules:  # the tokenizer ops do not load PyTorch
        import torch
        import transformers

        out.update(torch=torch.__version__, transformers=transformers.__version__)
    return out


def load_torch():
    import torch

    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    return torch


def centre(model, config, gen):
    """Subtracts each tower's mean embedding (over random inputs) through the
    last bias it adds, so embeddings point in different directions.

    Freshly initialized, every text embeds to nearly the same vector (cosine
    0.99 between any two): the pooled last position is <pad> for short
    texts and the random layers carry little of the words to it. Then every
    label scores alike and a test could not tell a wrong token from a right
    one. Centred, texts and images spread (cosines from about -0.3 to 0.4),
    and with exp(logit_scale) = 10 their probabilities span most of (0, 1).
    """
    torch = load_torch()
    n, length = 32, config.text_config.max_position_embeddings
    ids = torch.zeros(n, length, dtype=torch.long)  # <pad> is 0
    for i in range(n):
        k = int(torch.randint(2, 20, (1,), generator=gen))
        ids[i, :k] = torch.randint(1000, 200000, (k,), generator=gen)
        ids[i, k] = 1  # <eos>
    size = config.vision_config.image_size
    pixels = torch.rand(n, 3, size, size, generator=gen) * 2 - 1
    for i in range(n // 2):  # flat colours with a little noise, as well as noise
        pixels[i] = torch.rand(3, 1, 1, generator=gen) * 2 - 1 + 0.2 * pixels[i]
    model.text_model.head.bias -= model.get_text_features(input_ids=ids).pooler_output.mean(0)
    model.vision_model.head.mlp.fc2.bias -= model.get_image_features(pixel_values=pixels).pooler_output.mean(0)


def make(req):
    torch = load_torch()
    import onnx
    from transformers import SiglipConfig, SiglipModel

    ref, out, torch_out = req["reference"], req["out"], req["torch_out"]
    cfg = json.load(open(os.path.join(ref, "config.json")))
    cfg.pop("transformers_version", None)
    # Small widths; everything the published config sets (vocabulary, model
    # types) and every default it relies on (224 px, patch 16, 64 positions,
    # gelu_pytorch_tanh, layer_norm_eps) stays.
    cfg["text_config"].update(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              projection_size=64)
    cfg["vision_config"].update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
    config = SiglipConfig(**cfg)
    torch.manual_seed(req.get("seed", 0))
    model = SiglipModel(config).eval()
    centre(model, config, torch.Generator().manual_seed(req.get("seed", 0) + 1))
    # transformers initializes logit_scale and logit_bias to 0 (p = sigmoid(cos),
    # all near 0.5); these spread the centred cosines over the whole sigmoid.
    model.logit_scale.fill_(req["logit_scale"])
    model.logit_bias.fill_(req["logit_bias"])
    os.makedirs(torch_out, exist_ok=True)
    model.save_pretrained(torch_out)
    for name in PUBLISHED_FILES:
        shutil.copyfile(os.path.join(ref, name), os.path.join(torch_out, name))

    os.makedirs(os.path.join(out, "onnx"), exist_ok=True)
    shutil.copyfile(os.path.join(torch_out, "config.json"), os.path.join(out, "config.json"))
    for name in PUBLISHED_FILES:
        shutil.copyfile(os.path.join(ref, name), os.path.join(out, name))

    # Exported with eager attention, as the exporters' graphs have it: the
    # loaded model computes the same, op for op.
    model = SiglipModel.from_pretrained(torch_out, attn_implementation="eager").eval()
    size = config.vision_config.image_size
    pixels = torch.randn(2, 3, size, size)
    ids = torch.randint(0, config.text_config.vocab_size, (3, 64))

    class Vision(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            o = self.m(pixel_values=pixel_values)
            return o.last_hidden_state, o.pooler_output

    class Text(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids):
            o = self.m(input_ids=input_ids)
            return o.last_hidden_state, o.pooler_output

    class Full(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, pixel_values):
            o = self.m(input_ids=input_ids, pixel_values=pixel_values)
            return o.logits_per_image, o.logits_per_text, o.text_embeds, o.image_embeds

    def export(module, args, name, inputs, outputs, axes, fold=True):
        path = os.path.join(out, "onnx", name)
        torch.onnx.export(module, args, path, dynamo=False, opset_version=17, input_names=inputs,
                          output_names=outputs, dynamic_axes=axes, do_constant_folding=fold)
        # Name the weights as transformers does, without the wrapper's "m.".
        m = onnx.load(path)
        rename = {i.name: i.name[2:] for i in m.graph.initializer if i.name.startswith("m.")}
        for i in m.graph.initializer:
            i.name = rename.get(i.name, i.name)
        for n in m.graph.node:
            n.input[:] = [rename.get(x, x) for x in n.input]
        onnx.save(m, path)
        return path

    export(Vision(model.vision_model), (pixels,), "vision_model.onnx", ["pixel_values"],
           ["last_hidden_state", "pooler_output"],
           {"pixel_values": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"}, "pooler_output": {0: "batch_size"}})
    export(Text(model.text_model), (ids,), "text_model.onnx", ["input_ids"], ["last_hidden_state", "pooler_output"],
           {"input_ids": {0: "batch_size", 1: "sequence_length"},
            "last_hidden_state": {0: "batch_size", 1: "sequence_length"}, "pooler_output": {0: "batch_size"}})
    # Constant folding would fold exp(logit_scale) into an unnamed constant;
    # the exports keep both parameters as named initializers, where siglipd
    # (and anyone reading the file) finds them.
    full = export(Full(model), (ids, pixels), "model.onnx", ["input_ids", "pixel_values"],
                  ["logits_per_image", "logits_per_text", "text_embeds", "image_embeds"],
                  {"input_ids": {0: "text_batch_size", 1: "sequence_length"}, "pixel_values": {0: "image_batch_size"},
                   "logits_per_image": {0: "image_batch_size", 1: "text_batch_size"},
                   "logits_per_text": {0: "text_batch_size", 1: "image_batch_size"},
                   "text_embeds": {0: "text_batch_size"}, "image_embeds": {0: "image_batch_size"}}, fold=False)
    inits = {i.name for i in onnx.load(full, load_external_data=False).graph.initializer}
    missing = {"logit_scale", "logit_bias"} - inits
    if missing:
        raise SystemExit(f"model.onnx lacks initializers {sorted(missing)}")
    params = sum(p.numel() for p in model.parameters())
    return {"parameters": params, "logit_scale": float(model.logit_scale), "logit_bias": float(model.logit_bias),
            "files": sorted(os.listdir(out)) + sorted("onnx/" + f for f in os.listdir(os.path.join(out, "onnx")))}


def score(req):
    torch = load_torch()
    from PIL import Image
    from transformers import pipeline

    folder, labels, template = req["model"], req["labels"], req["template"]
    res = {}
    clf = pipeline("zero-shot-image-classification", model=folder, device="cpu")
    res["pipeline_classes"] = [type(clf.model).__name__, type(clf.tokenizer).__name__, type(clf.image_processor).__name__]
    pipe = []
    for p in req["images"]:
        out = clf(Image.open(p), candidate_labels=labels, hypothesis_template=template)
        by_label = {r["label"]: r["score"] for r in out}
        pipe.append([by_label[l] for l in labels])
    res["pipeline"] = pipe

    # The same, step by step, with the pipeline's own parts, to say which
    # step a difference comes from.
    model, proc, tok = clf.model, clf.image_processor, clf.tokenizer
    images = [Image.open(p).convert("RGB") for p in req["images"]]
    pixels = proc(images, return_tensors="pt")["pixel_values"]
    enc = tok([template.format(l) for l in labels], padding="max_length", max_length=64, truncation=True,
              return_tensors="pt")
    out = model(input_ids=enc["input_ids"], pixel_values=pixels)
    res["model"] = torch.sigmoid(out.logits_per_image).tolist()
    res["input_ids"] = enc["input_ids"].tolist()
    res["processor"] = {"class": type(proc).__name__, "resample": int(getattr(proc, "resample", -1))}

    # Pillow's resize as the processor does it (straight to size, the
    # processor's filter, no reducing_gap), saved for transformers.js.
    os.makedirs(req["resized_out"], exist_ok=True)
    size = (proc.size["width"], proc.size["height"])
    resized = []
    for i, img in enumerate(images):
        path = os.path.join(req["resized_out"], f"{i}.png")
        img.resize(size, resample=proc.resample, reducing_gap=None).save(path)
        resized.append(path)
    res["resized"] = resized
    return res


def tokenize(req):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer  # loads no PyTorch for a tokenizer

    folder, texts = req["dir"], req["texts"]
    rust = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    padded = [e.ids for e in rust.encode_batch(texts)]  # the file's own padding block
    rust.no_padding()
    raw = [e.ids for e in rust.encode_batch(texts)]
    tok = AutoTokenizer.from_pretrained(folder)
    enc = tok(texts, padding="max_length", max_length=64, truncation=True)
    return {"tokenizers_raw": raw, "tokenizers_padded": padded, "transformers": enc["input_ids"],
            "transformers_class": type(tok).__name__, "pad_token_id": tok.pad_token_id,
            "eos_token_id": tok.eos_token_id,
            "ascii_lower": [t.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass") for t in texts]}


def pretokenize(req):
    from tokenizers import Tokenizer

    out = []
    for spec in req["pre_tokenizers"]:
        # Read from tokenizer.json form, as siglipd reads it.
        tok = Tokenizer.from_str(json.dumps({
            "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
            "pre_tokenizer": spec, "post_processor": None, "decoder": None,
            "model": {"type": "WordLevel", "vocab": {"<unk>": 0}, "unk_token": "<unk>"}}))
        out.append([[w for w, _ in tok.pre_tokenizer.pre_tokenize_str(t)] for t in req["texts"]])
    return {"words": out}


def main():
    req = json.load(open(sys.argv[1]))
    ops = {"make": make, "score": score, "tokenize": tokenize, "pretokenize": pretokenize}
    res = ops[req["op"]](req)
    res["versions"] = versions()
    json.dump(res, sys.stdout)


if __name__ == "__main__":
    main()
