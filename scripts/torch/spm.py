"""SentencePiece references for infer/tokenizer's spiece.model reader.

  spm.py train DIR KIND   trains a small unigram spiece.model with the
                          sentencepiece library and saves it with
                          transformers' SiglipTokenizer.save_pretrained, as
                          google/siglip-* repositories ship it (spiece.model,
                          tokenizer_config.json, special_tokens_map.json).
  spm.py encode DIR TEXTS reads a JSON list of texts from the file TEXTS and prints
                          {"spm": ids from SentencePieceProcessor.encode,
                           "siglip": ids from SiglipTokenizer(text,
                               padding="max_length", max_length=64,
                               truncation=True), the whole Python path,
                           "hf": ids from HF tokenizers on DIR/tokenizer.json
                               (only when the file is there)}.

KIND is the SentencePiece setup:
  siglip    Google's SigLIP 1 layout as far as the published files show it:
            <pad>=0, </s>=1, <unk>=2, no <s>, byte pieces at 3..258 (so
            byte_fallback), nmt_nfkc, dummy prefix, extra whitespace removed.
  t5        the same without byte fallback (T5's own vocabularies).
  identity  no normalization rule, no dummy prefix, whitespace kept as is,
            and a user-defined piece.

The training text is generated here from a fixed seed, so a model is the
same on every run; it mixes common label words with a few non-Latin words so
that some characters are in the vocabulary and others (emoji, Thai) are not.
"""

import io
import json
import os
import random
import sys
import tempfile

import sentencepiece as spm
import torch
from tokenizers import Tokenizer
from transformers import SiglipTokenizer

WORDS = """a an the of in on at to with and or is are this photo picture image of car cars truck bus bicycle
person people man woman child dog cat bird animal package box delivery door garage driveway street road house
front back yard garden window light night day rain snow fog open closed parked moving walking running standing
sitting two three many one red blue green white black yellow big small old new busy empty quiet scene view camera
someone something nobody outside inside near far left right top bottom description very long short state art email
hashtag tilde quote double back slash tab separated line leading trailing multiple spaces caps label mixed case
cafe naive facade strasse istanbul fish flag cup bill off test under score brackets braces parenthesised raining
""".split()
UNICODE = ["café", "naïve", "façade", "straße", "İstanbul", "ΟΔΟΣ", "σοφία", "Ελληνικά", "汽车", "猫と犬", "자동차",
           "Ünïcödé", "ÄÖÜ", "½", "①", "ＦＵＬＬ", "ﬁsh", "سيارة", "מכונית", "कार"]


def corpus():
    rng = random.Random(0)
    lines = []
    for _ in range(20000):
        n = rng.randint(2, 12)
        words = [rng.choice(WORDS) for _ in range(n)]
        if rng.random() < 0.3:
            words[rng.randrange(n)] = rng.choice(UNICODE)
        if rng.random() < 0.2:
            words[rng.randrange(n)] = str(rng.randint(0, 2000))
        if rng.random() < 0.3:
            words = [w.capitalize() if rng.random() < 0.5 else w.upper() for w in words]
        if rng.random() < 0.1:
            words.insert(rng.randrange(n), "frontdoor")
        lines.append(" ".join(words) + rng.choice(["", ".", "!", "?", ","]))
    return lines


def train(out, kind):
    common = dict(
        sentence_iterator=iter(corpus()),
        model_type="unigram",
        vocab_size=1000,
        hard_vocab_limit=False,
        num_threads=1,
        seed_sentencepiece_size=20000,
        character_coverage=0.9995,
        minloglevel=2,
    )
    if kind in ("siglip", "t5"):
        extra = dict(pad_id=0, eos_id=1, unk_id=2, bos_id=-1, normalization_rule_name="nmt_nfkc",
                     byte_fallback=kind == "siglip")
    elif kind == "identity":
        extra = dict(pad_id=0, eos_id=1, unk_id=2, bos_id=-1, normalization_rule_name="identity",
                     add_dummy_prefix=False, remove_extra_whitespaces=False, user_defined_symbols=["frontdoor"])
    else:
        sys.exit(f"unknown kind {kind!r}")
    buf = io.BytesIO()
    common["model_writer"] = buf
    spm.SentencePieceTrainer.train(**common, **extra)
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "spiece.model")
        with open(path, "wb") as f:
            f.write(buf.getvalue())
        SiglipTokenizer(vocab_file=path).save_pretrained(out)


def encode(d, texts_path):
    with open(texts_path, encoding="utf-8") as f:
        texts = json.load(f)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "spiece.model"))
    tok = SiglipTokenizer.from_pretrained(d)
    out = {
        "spm": [sp.encode(t) for t in texts],
        "siglip": [tok(t, padding="max_length", max_length=64, truncation=True)["input_ids"] for t in texts],
    }
    path = os.path.join(d, "tokenizer.json")
    if os.path.exists(path):
        hf = Tokenizer.from_file(path)
        out["hf"] = [hf.encode(t).ids for t in texts]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    torch.set_num_threads(1)  # transformers imports torch; keep it off the other cores
    if sys.argv[1] == "train":
        train(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "encode":
        encode(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {sys.argv[1]!r}")
