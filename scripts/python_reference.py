#!/usr/bin/env python3
"""python_reference.py: the Python Hugging Face stack on a siglipd test model,
for the parity test TestPythonPipelineParity (infer/python_test.go).

Needs transformers, torch, tokenizers and Pillow (not installable where
siglipd is developed — no PyPI — but present on the GPU machines; the test
skips without them).

    python3 scripts/python_reference.py request.json > response.json

request: {"model": DIR, "images": [PNG...], "labels": [...], "template": "...",
          "texts": [...], "probe_texts": [...], "raw_texts": [...], "tokenizer_json": PATH}
response: {"versions": {...}, "pipeline": [[{"label","score"}...]...],
           "pipeline_path": "...", "padded_ids": [[...]...],
           "tokenizer_class": "...", "raw_ids": [[...]...]}
"""
import json
import sys
import traceback

import torch
import transformers
from PIL import Image
from tokenizers import Tokenizer
from transformers import AutoTokenizer, pipeline


def main():
    req = json.load(open(sys.argv[1]))
    torch.set_grad_enabled(False)
    out = {"versions": {"transformers": transformers.__version__, "torch": torch.__version__}}

    # The seed article's call: pipeline("zero-shot-image-classification").
    try:
        clf = pipeline("zero-shot-image-classification", model=req["model"], device="cpu")
        out["pipeline_path"] = "pipeline(model=dir)"
    except Exception:
        out["pipeline_error"] = traceback.format_exc(limit=3)
        from transformers import PreTrainedTokenizerFast, SiglipImageProcessor, SiglipModel
        tok = PreTrainedTokenizerFast(tokenizer_file=req["model"] + "/tokenizer.json", pad_token="</s>",
                                      eos_token="</s>", unk_token="<unk>", model_max_length=64)
        clf = pipeline("zero-shot-image-classification", model=SiglipModel.from_pretrained(req["model"]),
                       tokenizer=tok, image_processor=SiglipImageProcessor.from_pretrained(req["model"]), device="cpu")
        out["pipeline_path"] = "pipeline(SiglipModel, PreTrainedTokenizerFast)"
    out["pipeline_tokenizer_class"] = type(clf.tokenizer).__name__
    out["pipeline"] = [
        clf(Image.open(p), candidate_labels=req["labels"], hypothesis_template=req["template"])
        for p in req["images"]
    ]

    # What the pipeline's tokenizer feeds the text tower for each text.
    tok = clf.tokenizer
    out["tokenizer_class"] = type(tok).__name__
    out["padded_ids"] = [tok(t, padding="max_length", max_length=64, truncation=True)["input_ids"] for t in req["texts"]]
    # The same for uncleaned text: does this transformers lower-case and
    # strip punctuation as SiglipTokenizer did in transformers 4?
    out["probe_ids"] = [tok(t, padding="max_length", max_length=64, truncation=True)["input_ids"] for t in req.get("probe_texts", [])]

    # The model itself, step by step, as transformers 4's pipeline used it:
    # SiglipImageProcessor (PIL) for pixels, input_ids alone (SigLIP's text
    # tower was trained without an attention mask), sigmoid of the logits.
    from transformers import SiglipImageProcessor, SiglipModel
    model, info = SiglipModel.from_pretrained(req["model"], output_loading_info=True)
    model.eval()
    out["loading_info"] = {k: sorted(map(str, v)) for k, v in info.items()}
    proc = SiglipImageProcessor.from_pretrained(req["model"])
    pixels = proc([Image.open(p).convert("RGB") for p in req["images"]], return_tensors="pt")["pixel_values"]
    enc = tok([req["template"].replace("{}", l) for l in req["labels"]], padding="max_length", max_length=64, return_tensors="pt")
    out["tokenizer_keys"] = sorted(enc.keys())

    def features(o):
        return getattr(o, "pooler_output", o)

    txt = features(model.get_text_features(input_ids=enc["input_ids"]))
    txt = txt / txt.norm(dim=-1, keepdim=True)

    def probs(pix):
        img = features(model.get_image_features(pixel_values=pix))
        img = img / img.norm(dim=-1, keepdim=True)
        return torch.sigmoid(img @ txt.T * model.logit_scale.exp() + model.logit_bias).tolist()

    out["model_probs"] = probs(pixels)
    # transformers 4's SiglipImageProcessor resized with Pillow; compute
    # that path explicitly too, whatever this version's processor does.
    import PIL
    import numpy as np
    cfg = json.load(open(req["model"] + "/preprocessor_config.json"))
    h, w = cfg["size"]["height"], cfg["size"]["width"]
    pil = []
    for p in req["images"]:
        a = np.array(Image.open(p).convert("RGB").resize((w, h), resample=cfg["resample"]))
        x = (a.astype(np.float64) * cfg["rescale_factor"]).astype(np.float32)
        x = (x - np.array(cfg["image_mean"], dtype=np.float32)) / np.array(cfg["image_std"], dtype=np.float32)
        pil.append(torch.from_numpy(x.transpose(2, 0, 1).copy()))
    pil = torch.stack(pil)
    out["model_probs_pil"] = probs(pil)
    out["processor"] = {"class": type(proc).__name__, "pillow": PIL.__version__,
                        "max_pixel_diff_vs_pillow": float((pixels - pil).abs().max())}
    if "attention_mask" in enc:
        masked = features(model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]))
        masked = masked / masked.norm(dim=-1, keepdim=True)
        out["text_mask_changes_embeddings_by"] = float((masked - txt).abs().max())

    # The Rust tokenizers library on tokenizer.json alone (no clean-up).
    if req.get("tokenizer_json"):
        rust = Tokenizer.from_file(req["tokenizer_json"])
        out["raw_ids"] = [rust.encode(t).ids for t in req["raw_texts"]]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
