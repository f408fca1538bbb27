"""An MLServer runtime that serves a plain ONNX file through ONNX Runtime (CPU).

siglipd's remote-backend tests and benchmark start MLServer (pinned in
scripts/requirements-oip.txt, installed into .deps/oip by scripts/setup.sh)
with this module on PYTHONPATH and a model repository of model-settings.json
files naming it:

    {"name": "siglip_vision", "implementation": "onnx_runtime.OnnxModel",
     "parameters": {"uri": "/path/to/vision_model.onnx", "version": "1"}}

The model metadata (GET /v2/models/<name>, gRPC ModelMetadata) comes from the
ONNX graph itself, a symbolic dimension as -1, as Triton's ONNX Runtime
backend reports it. MLServer checks no request against it, so this runtime
does, and refuses a wrong name, datatype or shape with a 400 /
INVALID_ARGUMENT that says what the model wants.

Parameters (model-settings.json "parameters": {"extra": {...}}):
  intra_op_num_threads  ONNX Runtime's threads (default 0: ONNX Runtime chooses)
  delay_seconds         answer every request that much later: a slow server,
                        for the tests of siglipd's timeout (default 0)
  require_header        "name: value" every inference request must carry (as
                        gRPC metadata or an HTTP header), refused with 401
                        otherwise: a gateway's token, for the tests of
                        siglipd's inference.remote.headers (default none)
"""
import asyncio

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse, MetadataTensor, ResponseOutput
from mlserver.utils import get_model_uri

# ONNX Runtime's type names -> (protocol datatype, numpy dtype)
_TYPES = {
    "tensor(float)": ("FP32", np.float32), "tensor(float16)": ("FP16", np.float16),
    "tensor(double)": ("FP64", np.float64), "tensor(int64)": ("INT64", np.int64),
    "tensor(int32)": ("INT32", np.int32), "tensor(int8)": ("INT8", np.int8),
    "tensor(uint8)": ("UINT8", np.uint8), "tensor(bool)": ("BOOL", np.bool_),
}
_NUMPY = {v2: dt for v2, dt in _TYPES.values()}
_V2 = {np.dtype(dt): v2 for v2, dt in _TYPES.values()}


def _dims(shape):
    return [d if isinstance(d, int) else -1 for d in shape]


class OnnxModel(MLModel):
    async def load(self) -> bool:
        path = await get_model_uri(self._settings, wellknown_filenames=["model.onnx"])
        extra = (self._settings.parameters.extra or {}) if self._settings.parameters else {}
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(extra.get("intra_op_num_threads", 0))
        so.inter_op_num_threads = 1
        self._delay = float(extra.get("delay_seconds", 0))
        self._require = None
        if extra.get("require_header"):
            name, _, value = str(extra["require_header"]).partition(":")
            self._require = (name.strip().lower(), value.strip())
        self._sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        self._in = {i.name: i for i in self._sess.get_inputs()}
        self._out = [o.name for o in self._sess.get_outputs()]
        self.inputs = [MetadataTensor(name=i.name, datatype=_TYPES[i.type][0], shape=_dims(i.shape))
                       for i in self._sess.get_inputs()]
        self.outputs = [MetadataTensor(name=o.name, datatype=_TYPES[o.type][0], shape=_dims(o.shape))
                        for o in self._sess.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        if self._require:
            headers = (payload.parameters.headers or {}) if payload.parameters else {}
            got = {k.lower(): v for k, v in headers.items()}.get(self._require[0])
            if got != self._require[1]:
                raise MLServerError(f"header {self._require[0]!r} missing or wrong", status_code=401)
        if self._delay > 0:
            await asyncio.sleep(self._delay)
        feeds = {}
        for ri in payload.inputs:
            meta = self._in.get(ri.name)
            if meta is None:
                raise MLServerError(f"unexpected input '{ri.name}'; model inputs: {sorted(self._in)}", status_code=400)
            want = _TYPES[meta.type][0]
            got = getattr(ri.datatype, "value", ri.datatype)
            if got != want:
                raise MLServerError(f"input '{ri.name}': datatype {got}, want {want}", status_code=400)
            shape, exp = list(ri.shape), _dims(meta.shape)
            if len(shape) != len(exp) or any(e != -1 and e != s for e, s in zip(exp, shape)):
                raise MLServerError(f"input '{ri.name}': shape {shape}, want {exp}", status_code=400)
            arr = np.asarray(self.decode(ri), dtype=_NUMPY[want])
            if arr.size != int(np.prod(shape)):
                raise MLServerError(f"input '{ri.name}': {arr.size} elements for shape {shape}", status_code=400)
            feeds[ri.name] = arr.reshape(shape)
        missing = set(self._in) - set(feeds)
        if missing:
            raise MLServerError(f"missing inputs: {sorted(missing)}", status_code=400)
        wanted = [o.name for o in payload.outputs] if payload.outputs else self._out
        unknown = [n for n in wanted if n not in self._out]
        if unknown:
            raise MLServerError(f"unknown outputs {unknown}; model outputs: {self._out}", status_code=400)
        try:
            results = self._sess.run(wanted, feeds)
        except Exception as e:  # a bad token id, a shape the graph rejects
            raise MLServerError(f"onnxruntime: {e}", status_code=400)
        outputs = [ResponseOutput(name=n, datatype=_V2[a.dtype], shape=list(a.shape), data=a.flatten().tolist())
                   for n, a in zip(wanted, results)]
        return InferenceResponse(model_name=self.name, model_version=self.version, id=payload.id, outputs=outputs)
