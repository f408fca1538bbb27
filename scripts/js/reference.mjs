// reference.mjs runs transformers.js — the independent SigLIP implementation
// siglipd's parity tests compare against — on local model folders only.
//
//   node scripts/js/reference.mjs < request.json > response.json
//
// Requests (JSON):
//   {"op":"tokenize","model":DIR,"texts":[...]}
//       → {"raw":[[ids]...],"padded":[[ids]...]}
//         raw: tokenizer(text) with special tokens, no padding or truncation;
//         padded: what the zero-shot pipeline feeds SigLIP (padding
//         "max_length", truncation true).
//   {"op":"zeroshot","model":DIR,"images":[PATH...],"labels":[...],"template":"..."}
//       → {"results":[[{"label","score"}...]...]}   (pipeline order: by score)
//   {"op":"towers","model":DIR,"images":[PATH...],"texts":[...]}
//       → {"pixel_values":{dims,data},"image_pooler":{...},"text_pooler":{...},
//          "logits_per_image":{...}}   (the raw tensors, for debugging parity)
//
// Every op takes an optional "max_length": SigLIP 2's published
// tokenizer_config.json says model_max_length 1e30 ("no limit"), and
// transformers.js pads to model_max_length, so padding 'max_length' throws
// a RangeError unless the length is given. tokenize and towers pass it to
// the tokenizer; zeroshot, whose pipeline takes no tokenizer options, sets
// the tokenizer's model_max_length to it — what a transformers.js user has
// to do to run SigLIP 2's published files through the pipeline.
import { pipeline, AutoTokenizer, AutoProcessor, SiglipModel, SiglipTextModel,
  SiglipVisionModel, RawImage } from '@huggingface/transformers';
import { readRequest, localModel } from './local.mjs';

const req = await readRequest();
const model = localModel(req.model);
const opts = { dtype: 'fp32', device: 'cpu' };
const lengthOpts = req.max_length ? { max_length: req.max_length } : {};
const tensor = (t) => ({ dims: t.dims, data: Array.from(t.data, Number) });

let out;
switch (req.op) {
  case 'tokenize': {
    const tok = await AutoTokenizer.from_pretrained(model);
    const raw = req.texts.map((t) => Array.from(tok(t, { return_tensor: false }).input_ids));
    const padded = req.texts.map((t) =>
      Array.from(tok(t, { padding: 'max_length', truncation: true, ...lengthOpts, return_tensor: false }).input_ids));
    out = { raw, padded };
    break;
  }
  case 'zeroshot': {
    const clf = await pipeline('zero-shot-image-classification', model, opts);
    if (req.max_length) clf.tokenizer._tokenizerConfig.model_max_length = req.max_length;
    const results = [];
    for (const p of req.images) {
      const image = await RawImage.read(p);
      results.push(await clf(image, req.labels, { hypothesis_template: req.template }));
    }
    out = { results };
    break;
  }
  case 'towers': {
    const tok = await AutoTokenizer.from_pretrained(model);
    const proc = await AutoProcessor.from_pretrained(model);
    const images = await Promise.all(req.images.map((p) => RawImage.read(p)));
    const { pixel_values } = await proc(images);
    const textInputs = tok(req.texts, { padding: 'max_length', truncation: true, ...lengthOpts });
    const vision = await SiglipVisionModel.from_pretrained(model, opts);
    const text = await SiglipTextModel.from_pretrained(model, opts);
    const full = await SiglipModel.from_pretrained(model, opts);
    const v = await vision({ pixel_values });
    const t = await text(textInputs);
    const f = await full({ ...textInputs, pixel_values });
    out = {
      pixel_values: tensor(pixel_values),
      image_pooler: tensor(v.pooler_output),
      text_pooler: tensor(t.pooler_output),
      logits_per_image: tensor(f.logits_per_image),
    };
    break;
  }
  default:
    throw new Error(`unknown op ${req.op}`);
}
process.stdout.write(JSON.stringify(out));
