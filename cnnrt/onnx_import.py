"""ONNX -> cnnrt IR: parse, check, collect constants, list every unsupported op at once."""
from __future__ import annotations

import os
from typing import Dict, List, Union

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .errors import ModelError, UnsupportedModelError
from .ir import SHAPE_ONLY_OPS, Graph, Node, ValueInfo

# Ops executed by C kernels at run time (see planner.LOWER).
RUNTIME_OPS = {
    "Conv", "BatchNormalization", "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
    "Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Pow", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "ReduceMean", "ReduceMax", "ReduceSum", "Flatten", "Reshape", "Transpose", "Squeeze",
    "Unsqueeze", "Concat", "Split", "Slice", "Pad", "Gemm", "MatMul", "Softmax", "LogSoftmax", "LRN", "Dropout",
    "Identity", "Gather", "Cast",
}
# Ops that only compute constants (shapes, fills); they must fold away once input shapes are known.
CONST_OPS = {"Constant", "ConstantOfShape", "Shape", "Range", "Equal", "Where", "Expand", "Floor", "Ceil", "Sqrt",
             "Neg", "Abs", "Exp", "Log", "Reciprocal", "Not", "And", "Or", "Less", "Greater", "Size", "NonZero",
             "ReduceProd", "Tile", "Mod"}
SUPPORTED_OPS = RUNTIME_OPS | CONST_OPS

_ONNX_TO_NP = {
    onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64, onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32, onnx.TensorProto.BOOL: np.bool_, onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.UINT8: np.uint8, onnx.TensorProto.INT8: np.int8,
}

MAX_MODEL_BYTES = 2 ** 31


def _check_external_data(model: onnx.ModelProto, base_dir: str | None):
    """Refuse external-data locations that are absolute or leave the model's folder."""
    for t in onnx.external_data_helper._get_all_tensors(model):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        if base_dir is None:
            raise ModelError(f"tensor {t.name!r} keeps its data in an external file ({loc!r}); load the model "
                             "from a path, not bytes")
        if not loc or os.path.isabs(loc) or loc.startswith(("/", "\\")):
            raise ModelError(f"tensor {t.name!r}: external data location {loc!r} is absolute; refused")
        root = os.path.realpath(base_dir)
        target = os.path.realpath(os.path.join(root, loc))
        if os.path.commonpath([root, target]) != root:
            raise ModelError(f"tensor {t.name!r}: external data location {loc!r} leaves the model's folder; refused")


def load_model(model: Union[str, bytes, os.PathLike, onnx.ModelProto]) -> onnx.ModelProto:
    """Parse (path, bytes or ModelProto), load safe external data, and run onnx's checker."""
    base_dir = None
    if isinstance(model, onnx.ModelProto):
        proto = model
    else:
        if isinstance(model, (bytes, bytearray, memoryview)):
            data = bytes(model)
        else:
            path = os.fspath(model)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"model file not found: {path}")
            base_dir = os.path.dirname(os.path.abspath(path))
            with open(path, "rb") as f:
                data = f.read()
        proto = onnx.ModelProto()
        try:
            proto.ParseFromString(data)
        except Exception as e:  # protobuf's DecodeError and friends
            raise ModelError(f"not a valid ONNX model: {e}") from None
        if not proto.HasField("graph") or len(proto.graph.node) == 0:
            raise ModelError("not a valid ONNX model: no graph or no nodes")
    _check_external_data(proto, base_dir)
    if base_dir is not None and any(t.data_location == onnx.TensorProto.EXTERNAL
                                    for t in onnx.external_data_helper._get_all_tensors(proto)):
        try:
            onnx.external_data_helper.load_external_data_for_model(proto, base_dir)
        except Exception as e:
            raise ModelError(f"could not load the model's external data: {e}") from None
    try:
        onnx.checker.check_model(proto)
    except Exception as e:
        raise ModelError(f"the model fails onnx's checks: {str(e).strip().splitlines()[0]}") from None
    return proto


def _attrs(node_proto) -> Dict:
    out = {}
    for a in node_proto.attribute:
        v = helper.get_attribute_value(a)
        if a.type == onnx.AttributeProto.TENSOR:
            v = numpy_helper.to_array(v)
        elif isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list):
            v = [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in v]
        out[a.name] = v
    return out


def _value_info(vi) -> ValueInfo:
    tt = vi.type.tensor_type
    dtype = np.dtype(_ONNX_TO_NP.get(tt.elem_type, np.float32))
    if not tt.HasField("shape"):
        shape = None
    else:
        dims = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param") and d.dim_param:
                dims.append(d.dim_param)
            else:
                dims.append(None)
        shape = tuple(dims)
    return ValueInfo(vi.name, shape, dtype)


def _to_array(t) -> np.ndarray:
    try:
        a = numpy_helper.to_array(t)
    except Exception as e:
        raise ModelError(f"initializer {t.name!r}: unreadable tensor data ({e})") from None
    expected = int(np.prod(list(t.dims), dtype=np.int64)) if len(t.dims) else 1
    if a.size != expected:
        raise ModelError(f"initializer {t.name!r}: {a.size} values for dims {list(t.dims)}")
    return a


def import_model(proto: onnx.ModelProto) -> Graph:
    """Build the IR; raise UnsupportedModelError listing every unsupported node at once."""
    opset = None
    for imp in proto.opset_import:
        if imp.domain in ("", "ai.onnx"):
            opset = int(imp.version)
    if opset is None:
        raise ModelError("the model imports no default-domain opset")
    g = proto.graph
    consts: Dict[str, np.ndarray] = {}
    for t in g.initializer:
        consts[t.name] = _to_array(t)
    inputs = [_value_info(vi) for vi in g.input if vi.name not in consts]
    outputs = [_value_info(vi) for vi in g.output]
    if not inputs:
        raise ModelError("the model has no runtime inputs")
    nodes: List[Node] = []
    unsupported = []
    names = set()
    for i, np_ in enumerate(g.node):
        name = np_.name or f"{np_.op_type}_{i}"
        while name in names:
            name = f"{name}_{i}"
        names.add(name)
        if np_.domain not in ("", "ai.onnx"):
            unsupported.append((name, f"{np_.domain}.{np_.op_type}", "custom domain"))
            nodes.append(Node(name, f"{np_.domain}.{np_.op_type}", list(np_.input), list(np_.output), {}, proto=None))
            continue
        if np_.op_type not in SUPPORTED_OPS:
            unsupported.append((name, np_.op_type, "operator not implemented"))
            nodes.append(Node(name, np_.op_type, list(np_.input), list(np_.output), {}, proto=None))
            continue
        attrs = _attrs(np_)
        if np_.op_type == "Constant":
            if "value" in attrs:
                val = attrs["value"]
            elif "value_float" in attrs:
                val = np.array(attrs["value_float"], np.float32)
            elif "value_floats" in attrs:
                val = np.array(attrs["value_floats"], np.float32)
            elif "value_int" in attrs:
                val = np.array(attrs["value_int"], np.int64)
            elif "value_ints" in attrs:
                val = np.array(attrs["value_ints"], np.int64)
            else:
                unsupported.append((name, "Constant", "sparse or string constants"))
                nodes.append(Node(name, "Constant", [], list(np_.output), {}, proto=None))
                continue
            consts[np_.output[0]] = np.asarray(val)
            continue
        nodes.append(Node(name, np_.op_type, list(np_.input), list(np_.output), attrs, proto=np_))
    metadata = {p.key: p.value for p in proto.metadata_props}
    graph = Graph(_toposort(nodes, consts, inputs), inputs, outputs, consts, opset, metadata, g.name)
    unsupported += unsupported_forms(graph)
    if unsupported:
        raise UnsupportedModelError(unsupported)
    graph.check("import")
    return graph


# Inputs (by position) that cnnrt needs to be constant (initializers, or computed from constants and input shapes).
CONST_INPUTS = {
    "Conv": {1: "weights", 2: "bias"}, "BatchNormalization": {1: "scale", 2: "B", 3: "mean", 4: "var"},
    "Clip": {1: "min", 2: "max"}, "Reshape": {1: "shape"}, "Slice": {1: "starts", 2: "ends", 3: "axes", 4: "steps"},
    "Pad": {1: "pads", 2: "constant_value", 3: "axes"}, "Gather": {1: "indices"}, "Split": {1: "split"},
    "Squeeze": {1: "axes"}, "Unsqueeze": {1: "axes"}, "ReduceMean": {1: "axes"}, "ReduceMax": {1: "axes"},
    "ReduceSum": {1: "axes"}, "Dropout": {2: "training_mode"},
}
_FLOAT = onnx.TensorProto.FLOAT


def unsupported_forms(graph: Graph) -> List[tuple]:
    """Supported operators used in a form cnnrt does not run, found at load (before any input shape is known):
    (node name, op, reason) for each."""
    rt = graph.runtime_values()
    live = set(graph.output_names())
    for n in reversed(graph.nodes):
        if any(o in live for o in n.outputs if o):
            live.update(i for i in n.inputs if i)
    bad = []
    for n in graph.nodes:
        if n.proto is None:
            continue  # unsupported op type, already listed
        if not any(o in live for o in n.outputs if o):
            continue  # dead: removed by the passes
        op = n.op
        data_in = [i for i in n.inputs if i and i in rt]
        if op in CONST_OPS and op not in SHAPE_ONLY_OPS and data_in:
            bad.append((n.name, op, f"only evaluated on constants and shapes, but its input {data_in[0]!r} is "
                                    "computed from the model's input data"))
            continue
        for k, what in CONST_INPUTS.get(op, {}).items():
            if len(n.inputs) > k and n.inputs[k] and n.inputs[k] in rt:
                bad.append((n.name, op, f"{what} ({n.inputs[k]!r}) computed from run-time data (must be constant)"))
        if op == "Cast" and data_in and int(n.attr("to", _FLOAT)) != _FLOAT:
            bad.append((n.name, op, f"casts run-time data to {onnx.TensorProto.DataType.Name(int(n.attr('to')))} "
                                    "(only float32 tensors flow at run time)"))
        elif op == "BatchNormalization":
            if int(n.attr("training_mode", 0)) or any(o for o in n.outputs[1:]):
                bad.append((n.name, op, "training mode (batch statistics / running-mean outputs)"))
            elif graph.opset < 9 and int(n.attr("spatial", 1)) == 0:
                bad.append((n.name, op, "spatial=0 (per-activation statistics)"))
        elif op == "Dropout":
            if graph.opset >= 12 and len(n.inputs) > 2 and n.inputs[2] and n.inputs[2] not in rt:
                tm = graph.consts.get(n.inputs[2])
                ratio = graph.consts.get(n.inputs[1]) if len(n.inputs) > 1 and n.inputs[1] else np.array(0.5)
                if tm is None:
                    bad.append((n.name, op, f"training_mode ({n.inputs[2]!r}) is computed (must be constant)"))
                elif bool(np.asarray(tm).reshape(-1)[0]):
                    if ratio is None:
                        bad.append((n.name, op, f"training mode with a ratio ({n.inputs[1]!r}) that is computed "
                                                "(must be constant, and 0: random dropout is not supported)"))
                    elif float(np.asarray(ratio).reshape(-1)[0]) != 0.0:
                        bad.append((n.name, op, "training mode (random dropout)"))
            elif graph.opset < 7 and int(n.attr("is_test", 0)) == 0:
                bad.append((n.name, op, "training mode (is_test=0)"))
        elif op in ("MaxPool", "AveragePool"):
            if len(n.attr("kernel_shape", [])) not in (1, 2):
                bad.append((n.name, op, f"{len(n.attr('kernel_shape', []))}-D pooling (1-D and 2-D are supported)"))
            if op == "MaxPool" and len(n.outputs) > 1 and n.outputs[1]:
                bad.append((n.name, op, "the Indices output"))
        elif op == "Conv":
            w = graph.consts.get(n.inputs[1])
            if w is not None and w.ndim not in (3, 4):
                bad.append((n.name, op, f"{w.ndim - 2}-D convolution (1-D and 2-D are supported)"))
        elif op == "Pad" and n.attr("mode", "constant") != "constant":
            bad.append((n.name, op, f"mode {n.attr('mode')!r} (only 'constant')"))
    return bad


def _toposort(nodes: List[Node], consts, inputs) -> List[Node]:
    avail = set(consts) | {i.name for i in inputs} | {""}
    pending = list(nodes)
    out = []
    while pending:
        rest = []
        for n in pending:
            if all(i in avail for i in n.inputs):
                out.append(n)
                avail.update(n.outputs)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            n = rest[0]
            missing = [i for i in n.inputs if i not in avail]
            raise ModelError(f"node {n.name!r} ({n.op}) reads {missing}, never computed (dangling reference or "
                             "cycle)")
        pending = rest
    return out
