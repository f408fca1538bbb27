// local.mjs: what reference.mjs and bench.mjs share — transformers.js on
// local model folders only, and the JSON request on stdin.
import { env } from '@huggingface/transformers';
import path from 'node:path';

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.useBrowserCache = false;
env.useFSCache = false;

// readRequest parses the JSON request on stdin.
export async function readRequest() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

// localModel points transformers.js at the folder dir and returns the id to
// load it by. transformers.js joins localModelPath and the model id, and
// misreads ids of more than two path segments: so the parent folder and the
// folder name.
export function localModel(dir) {
  env.localModelPath = path.dirname(path.resolve(dir)) + '/';
  return path.basename(path.resolve(dir));
}
