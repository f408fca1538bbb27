// bench.mjs measures siglipd's peers on the same model folder and frames:
// transformers.js, the JavaScript port of the Hugging Face pipeline, on
// onnxruntime-node (the same ONNX Runtime release siglipd loads).
//
//   node scripts/js/bench.mjs < request.json > response.json
//
// Request: {"model":DIR,"images":[PNG...],"labels":[...],"template":"...",
//           "batches":[1,4,8],"runs":N,"pipeline_runs":N,"dtype":"fp32"|"q8",
//           "scale":s,"bias":b}
//   (scale is exp(logit_scale), the multiplier itself)
// Response: {"pipeline_images_per_s":x,"batched":[{"batch":n,"images_per_s":x}...]}
//
// pipeline: zero_shot_image_classification as its documentation shows it,
//   one frame per call; every call runs the text tower on the labels again.
// batched: transformers.js written the fastest way: labels embedded once
//   (not timed), then per batch the processor (resize, normalise), the vision
//   tower and SigLIP's sigmoid on each label, as siglipd does.
// Frames are decoded before timing starts, for both.
import { pipeline, AutoTokenizer, AutoProcessor, SiglipTextModel, SiglipVisionModel, RawImage }
  from '@huggingface/transformers';
import { readRequest, localModel } from './local.mjs';

const req = await readRequest();
const model = localModel(req.model);
const opts = { dtype: req.dtype || 'fp32', device: 'cpu' };
const images = await Promise.all(req.images.map((p) => RawImage.read(p)));
const frame = (i) => images[i % images.length];
const now = () => Number(process.hrtime.bigint()) / 1e9;

// The pipeline.
const clf = await pipeline('zero-shot-image-classification', model, opts);
await clf(frame(0), req.labels, { hypothesis_template: req.template }); // warm-up
let t0 = now();
for (let i = 0; i < req.pipeline_runs; i++) {
  await clf(frame(i), req.labels, { hypothesis_template: req.template });
}
const pipelinePerSec = req.pipeline_runs / (now() - t0);
await clf.dispose();

// Batched, text once.
const tok = await AutoTokenizer.from_pretrained(model);
const proc = await AutoProcessor.from_pretrained(model);
const text = await SiglipTextModel.from_pretrained(model, opts);
const vision = await SiglipVisionModel.from_pretrained(model, opts);
const prompts = req.labels.map((l) => req.template.replace('{}', l));
const { pooler_output: textEmb } = await text(tok(prompts, { padding: 'max_length', truncation: true }));
const dim = textEmb.dims[1];
const unit = (data, row) => {
  const v = data.slice(row * dim, (row + 1) * dim);
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
};
const labels = req.labels.map((_, j) => unit(textEmb.data, j));
const scale = req.scale;
async function scoreBatch(batch) {
  const { pixel_values } = await proc(batch);
  const { pooler_output: imgEmb } = await vision({ pixel_values });
  const probs = [];
  for (let i = 0; i < batch.length; i++) {
    const img = unit(imgEmb.data, i);
    probs.push(labels.map((t) => {
      let cos = 0;
      for (let k = 0; k < dim; k++) cos += img[k] * t[k];
      return 1 / (1 + Math.exp(-(scale * cos + req.bias)));
    }));
  }
  return probs;
}
const batched = [];
for (const n of req.batches) {
  const batch = Array.from({ length: n }, (_, i) => frame(i));
  await scoreBatch(batch); // warm-up
  t0 = now();
  for (let r = 0; r < req.runs; r++) await scoreBatch(batch);
  batched.push({ batch: n, images_per_s: (n * req.runs) / (now() - t0) });
}
process.stdout.write(JSON.stringify({ pipeline_images_per_s: pipelinePerSec, batched }));
