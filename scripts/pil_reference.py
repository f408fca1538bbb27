#!/usr/bin/python3
"""pil_reference.py: SigLIP pixel_values computed the way Python transformers'
SiglipImageProcessor computes them (Pillow resize, numpy rescale and
normalize), for siglipd's preprocessing parity test.

Run with Debian's /usr/bin/python3 (python3-pil, python3-numpy):

    /usr/bin/python3 scripts/pil_reference.py request.json

request.json: {"images": [PNG paths], "width": W, "height": H, "resample": 3,
               "rescale_factor": 1/255, "mean": [3], "std": [3], "out": DIR}
For image i it writes DIR/i.u8 (the resized uint8 RGB pixels, H*W*3) and
DIR/i.f32 (pixel_values, float32 little-endian, 3*H*W, channels first).
"""
import json
import os
import sys

import numpy as np
from PIL import Image


def main():
    req = json.load(open(sys.argv[1]))
    w, h = req["width"], req["height"]
    mean = np.array(req["mean"], dtype=np.float32)
    std = np.array(req["std"], dtype=np.float32)
    for i, path in enumerate(req["images"]):
        # transformers: to_numpy_array, then image_transforms.resize, which
        # converts back to PIL and calls Image.resize(..., reducing_gap=None).
        arr = np.array(Image.open(path).convert("RGB"))
        resized = np.array(Image.fromarray(arr).resize((w, h), resample=req["resample"], reducing_gap=None))
        # rescale: float64 multiply, then astype(float32); normalize in float32.
        x = (resized.astype(np.float64) * req["rescale_factor"]).astype(np.float32)
        x = (x - mean) / std
        x = x.transpose(2, 0, 1).astype("<f4")
        resized.astype(np.uint8).tofile(os.path.join(req["out"], f"{i}.u8"))
        x.tofile(os.path.join(req["out"], f"{i}.f32"))


if __name__ == "__main__":
    main()
