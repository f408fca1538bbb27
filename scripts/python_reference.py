#!/usr/bin/env python3
"""python_reference.py: the Python Hugging Face stack on a siglipd test model,
for the parity test TestPythonPipelineParity (infer/python_test.go).

Needs transformers, torch, tokenizers and Pillow (not installable where
siglipd is developed — no PyPI — but present on the GPU machines; the test
skips without them).

    python3 scripts/python_reference.py request.json > response.json

request: {"model": DIR, "images": [PNG...], "labels": [...], "template": "...",
          "texts": [...], "tokenizer_json": PATH}
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

    # The Rust tokenizers library on tokenizer.json alone (no clean-up).
    if req.get("tokenizer_json"):
        rust = Tokenizer.from_file(req["tokenizer_json"])
        out["raw_ids"] = [rust.encode(t).ids for t in req["raw_texts"]]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
