"""Session: load once (parse, optimize, pack weights), plan per input shape (cached), run in C without the GIL."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from .errors import ModelError
from .ir import Graph
from .onnx_import import import_model, load_model
from .passes import optimize
from .planner import PlanInfo, Prepared, build_plan
from .tune import Tuner, resolve_mode


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (ints, or strings/None for dimensions that may change) and dtype of a model input or output."""
    name: str
    shape: Tuple
    dtype: np.dtype

    @property
    def type(self):  # onnxruntime's NodeArg spelling
        return "tensor(float)" if self.dtype == np.float32 else f"tensor({self.dtype})"


def _default_threads():
    return max(1, _core.num_cpus())


class Session:
    """A loaded, optimized model.

    Session(model, num_threads=None, isa=None, optimize=True, memory_limit=None)
      model: path, bytes or onnx.ModelProto. num_threads: threads this session's runs use (default: the CPU count).
      isa: force a kernel path ("scalar", "avx2", "avx512", "neon"); default: the best one (or CNNRT_ISA).
      winograd: False forces Winograd off (3x3 stride-1 layers then use GEMM; CNNRT_WINOGRAD=0 does the same).
      memory_limit: refuse (ModelError) a plan whose memory (arena + packed weights) would exceed this many bytes;
        default: half of the machine's physical memory (CNNRT_MEMORY_LIMIT overrides, in bytes).
      tune: "off" (rules only), "cached" (rules, or the choice timed earlier on this CPU for this exact layer shape,
        from the tuning cache; never times), "on" (also time the candidates of layers where the rules are unsure, once,
        and cache the result); default: CNNRT_TUNE, else "cached". See cnnrt/tune.py and the README.

    run() may be called from many threads: runs on one session are serialized (each session owns one arena and one
    thread pool); use several sessions for concurrent runs."""

    def __init__(self, model, num_threads: Optional[int] = None, *, isa: Optional[str] = None,
                 optimize_graph: bool = True, memory_limit: Optional[int] = None, winograd: bool = True,
                 tune: Optional[str] = None):
        if num_threads is not None and (not isinstance(num_threads, (int, np.integer)) or num_threads < 0):
            raise ValueError(f"num_threads must be a non-negative integer, got {num_threads!r}")
        proto = load_model(model)
        self._model_source = model if isinstance(model, (bytes, bytearray)) else None
        self._model_path = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
        if self._model_source is None and self._model_path is None:  # a ModelProto
            self._model_source = proto.SerializeToString()
        self._options = dict(num_threads=num_threads, isa=isa, optimize_graph=optimize_graph,
                             memory_limit=memory_limit, winograd=winograd, tune=tune)
        self.tune = resolve_mode(tune)
        self._model_bytes_len = proto.ByteSize()
        graph = import_model(proto)
        self.nodes_before = len(graph.nodes)
        if optimize_graph:
            optimize(graph)
        self._graph: Graph = graph
        self.metadata: Dict[str, str] = dict(graph.metadata)
        self.producer = f"{proto.producer_name} {proto.producer_version}".strip()
        self.opset = graph.opset
        self.num_threads = int(num_threads) if num_threads else _default_threads()
        isa_id = _core.isa_from_name(isa)
        if isa is not None:
            supported = _core.cpu_info()["supported_isas"]
            if _core.ISA_NAMES[isa_id] not in supported:
                raise ValueError(f"isa={isa!r} is not supported on this CPU / build (supported: "
                                 f"{', '.join(supported)})")
        self._prep = Prepared(isa=isa_id if isa_id >= 0 else _core.isa_from_name(_core.cpu_info()["isa"]),
                              winograd=bool(winograd))
        self.isa = _core.ISA_NAMES[self._prep.isa]
        self.memory_limit = memory_limit if memory_limit is not None else default_memory_limit()
        self._pool = _core.ThreadPool(self.num_threads)
        if self.tune != "off":
            self._prep.tuner = Tuner(self.tune, self.isa, pool=self._pool, threads=self.num_threads,
                                     winograd=bool(winograd))
        self._plans: Dict[tuple, PlanInfo] = {}
        self._arena = None
        self._lock = threading.Lock()
        self._fast = None  # _core.FastRun of the last shape run through the general path
        self.inputs: List[TensorInfo] = [TensorInfo(v.name, tuple(v.shape) if v.shape is not None else (), v.dtype)
                                         for v in graph.inputs]
        self.outputs: List[TensorInfo] = [TensorInfo(v.name, tuple(v.shape) if v.shape is not None else (), v.dtype)
                                          for v in graph.outputs]
        for vi in graph.inputs:
            if vi.dtype != np.float32:
                raise ModelError(f"input {vi.name!r} has dtype {vi.dtype}; cnnrt runs float32 models")
        # plan the default shape now so weights are packed and peak memory is known before the first run
        default = self._default_shapes()
        if default is not None:
            self._get_plan(default)

    # ---- shapes and plans ------------------------------------------------------------------------------------
    def _default_shapes(self):
        shapes = {}
        for vi in self.inputs:
            dims = []
            for k, d in enumerate(vi.shape):
                if isinstance(d, int) and d > 0:
                    dims.append(d)
                elif k == 0:
                    dims.append(1)  # a symbolic leading dimension is the batch: plan batch 1
                else:
                    return None
            shapes[vi.name] = tuple(dims)
        return shapes

    def _get_plan(self, shapes: Dict[str, tuple]) -> PlanInfo:
        key = tuple(shapes[vi.name] for vi in self.inputs)
        info = self._plans.get(key)
        if info is None:
            tuner = self._prep.tuner
            if tuner is not None:
                tuner.begin_plan()
            try:
                info = build_plan(self._graph, self._prep, shapes, self.num_threads)
            except (OverflowError, RecursionError) as e:
                raise ModelError(f"a size or attribute in the model is out of range: {e}") from None
            finally:
                if tuner is not None:
                    tuner.flush()
            total = info.peak_bytes + self._prep.weight_bytes
            if self.memory_limit and total > self.memory_limit:
                raise ModelError(f"planned memory {total} bytes (arena {info.peak_bytes}, weights "
                                 f"{self._prep.weight_bytes}) for input shapes {key} exceeds the limit of "
                                 f"{self.memory_limit} bytes")
            self._plans[key] = info
            need = info.peak_bytes + 64
            if self._arena is None or self._arena.nbytes < need:
                self._fast = None  # it holds the old arena
                self._arena = _core.Arena(need)
        return info

    def plan_info(self, shapes: Optional[Dict[str, tuple]] = None) -> PlanInfo:
        """The plan (nodes, algorithms, FLOPs, memory) for the given input shapes (default: batch 1)."""
        shapes = shapes or self._default_shapes()
        if shapes is None:
            raise ValueError("the model has symbolic input dimensions: give the input shapes")
        with self._lock:
            return self._get_plan({k: tuple(v) for k, v in shapes.items()})

    @property
    def peak_memory_bytes(self) -> int:
        """Bytes of the arena (intermediate tensors + workspace) planned so far: the largest of all planned shapes."""
        return self._arena.nbytes if self._arena is not None else 0

    @property
    def weight_bytes(self) -> int:
        return self._prep.weight_bytes

    def conv_algorithms(self, shapes: Optional[Dict[str, tuple]] = None):
        """Per convolution layer: the algorithm its plan runs for `shapes` (default batch 1), the Winograd tile
        chosen at load and the accuracy guard's measured relative error of that tile (None if no probe ran)."""
        info = self.plan_info(shapes)
        by_name = {}
        for key, cw in self._prep.conv.items():
            by_name[key[0]] = cw
        out = []
        for nd in info.nodes:
            if nd.kind != "conv":
                continue
            cw = nd.weights if nd.weights is not None else by_name.get(nd.name)
            out.append({"layer": nd.name, "algo": nd.algo, "winograd_tile": cw.tile if cw else 0,
                        "probe_error": cw.probe_error if cw else None, "gflop": nd.flops / 1e9,
                        "out_shape": tuple(nd.out_shape), "tune": nd.tune})
        return out

    def optimized_graph_summary(self):
        """Nodes of the optimized graph: name, op and what was fused into each."""
        return self._graph.summary()

    # ---- running ---------------------------------------------------------------------------------------------
    def _check_feed(self, feed) -> Dict[str, np.ndarray]:
        # fast path: one input, a C-contiguous float32 array of a shape that was already checked and planned
        if type(feed) is np.ndarray and len(self.inputs) == 1 and feed.dtype == np.float32 \
                and feed.flags.c_contiguous and (feed.shape,) in self._plans:
            return {self.inputs[0].name: feed}
        if isinstance(feed, np.ndarray) or not hasattr(feed, "keys"):
            if len(self.inputs) != 1:
                names = [i.name for i in self.inputs]
                raise ValueError(f"the model has {len(names)} inputs {names}: pass a dict of name -> array")
            feed = {self.inputs[0].name: feed}
        known = {vi.name: vi for vi in self.inputs}
        for name in feed:
            if name not in known:
                raise ValueError(f"unknown input {name!r}; the model's inputs are {list(known)}")
        arrays = {}
        for vi in self.inputs:
            if vi.name not in feed:
                raise ValueError(f"missing input {vi.name!r} (expected shape {_fmt_shape(vi.shape)}, float32)")
            a = feed[vi.name]
            if not isinstance(a, np.ndarray):
                a = np.asarray(a)
            if a.dtype != np.float32:
                raise TypeError(f"input {vi.name!r}: expected dtype float32, got {a.dtype}")
            if len(a.shape) != len(vi.shape):
                raise ValueError(f"input {vi.name!r}: expected shape {_fmt_shape(vi.shape)} (rank {len(vi.shape)}), "
                                 f"got {tuple(a.shape)} (rank {a.ndim})")
            for k, (want, got) in enumerate(zip(vi.shape, a.shape)):
                if isinstance(want, int) and want > 0 and want != got:
                    raise ValueError(f"input {vi.name!r}: expected shape {_fmt_shape(vi.shape)}, got "
                                     f"{tuple(a.shape)} (dimension {k} must be {want})")
            if a.size == 0:
                raise ValueError(f"input {vi.name!r}: empty array of shape {tuple(a.shape)}")
            arrays[vi.name] = np.ascontiguousarray(a)
        return arrays

    def run(self, feed, output_names: Optional[Sequence[str]] = None, *, profile: bool = False):
        """Run the model. feed: an array (single-input models) or a dict name -> float32 array.
        Returns the list of outputs (all, or those named), as new numpy arrays."""
        fast = self._fast
        if fast is not None and output_names is None and not profile:
            outs = fast(feed)  # None unless feed is one float32 array of the last shape run here
            if outs is not None:
                self.last_profile = None
                return outs
        arrays = self._check_feed(feed)
        shapes = {k: tuple(v.shape) for k, v in arrays.items()}
        with self._lock:
            try:
                info = self._get_plan(shapes)
            except ModelError as e:
                raise ValueError(f"the model cannot run on input shapes {shapes}: {e}") from None
            outs = [np.empty(s, np.float32) for s in info.output_shapes]
            for k, v in info.const_outputs.items():
                outs[k] = np.array(v, dtype=v.dtype, copy=True)
            times = info.plan.execute(self._arena, [arrays[n] for n in info.input_order], outs, self._pool, profile)
            if len(info.input_order) == 1 and not info.const_outputs:
                name = info.input_order[0]
                self._fast = _core.FastRun(info.plan, self._arena, self._pool, self._lock, name,
                                           tuple(arrays[name].shape), list(info.output_shapes))
        self.last_profile = times
        if output_names is None:
            return outs
        names = info.output_order
        res = []
        for n in output_names:
            if n not in names:
                raise ValueError(f"unknown output {n!r}; the model's outputs are {names}")
            res.append(outs[names.index(n)])
        return res

    # ---- pickling: a session travels as its model bytes and options and is rebuilt on the other side ----------
    def __reduce__(self):
        data = self._model_source
        if data is None:
            with open(self._model_path, "rb") as f:
                data = f.read()
        return (_rebuild_session, (bytes(data), self._options))

    def __repr__(self):
        ins = ", ".join(f"{i.name}{_fmt_shape(i.shape)}" for i in self.inputs)
        outs = ", ".join(f"{o.name}{_fmt_shape(o.shape)}" for o in self.outputs)
        return f"<cnnrt.Session inputs=[{ins}] outputs=[{outs}] threads={self.num_threads} isa={self.isa}>"


def _rebuild_session(data, options):
    return Session(data, **options)


def default_memory_limit() -> int:
    env = os.environ.get("CNNRT_MEMORY_LIMIT")
    if env:
        try:
            return int(env)
        except ValueError:
            raise ValueError(f"CNNRT_MEMORY_LIMIT must be a byte count, got {env!r}") from None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 0  # unknown: no limit


def _fmt_shape(shape):
    return "(" + ", ".join(str(d) if d is not None else "?" for d in shape) + ("," if len(shape) == 1 else "") + ")"


# ---- onnxruntime-compatible surface ---------------------------------------------------------------------------
class SessionOptions:
    """The subset of onnxruntime.SessionOptions that cnnrt honours (others are accepted and ignored)."""

    def __init__(self):
        self.intra_op_num_threads = 0
        self.inter_op_num_threads = 0
        self.graph_optimization_level = None
        self.execution_mode = None
        self.log_severity_level = 2
        self.enable_cpu_mem_arena = True
        self.enable_mem_pattern = True


class NodeArg:
    def __init__(self, info: TensorInfo):
        self.name = info.name
        self.shape = [d if isinstance(d, int) else (d if isinstance(d, str) else None) for d in info.shape]
        self.type = info.type

    def __repr__(self):
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"


class ModelMetadata:
    def __init__(self, sess: Session):
        self.custom_metadata_map = dict(sess.metadata)
        self.producer_name = sess.producer
        self.graph_name = sess._graph.name
        self.description = ""
        self.domain = ""
        self.version = 0


class InferenceSession:
    """Drop-in for onnxruntime.InferenceSession in the calls services use."""

    def __init__(self, path_or_bytes, sess_options: Optional[SessionOptions] = None, providers=None,
                 provider_options=None, **kwargs):
        if providers is not None:
            for p in providers:
                name = p[0] if isinstance(p, (tuple, list)) else p
                if name != "CPUExecutionProvider":
                    raise ValueError(f"cnnrt supports only CPUExecutionProvider, got {name!r}")
        threads = sess_options.intra_op_num_threads if sess_options is not None else 0
        self._sess = Session(path_or_bytes, num_threads=threads or None)

    def get_inputs(self):
        return [NodeArg(i) for i in self._sess.inputs]

    def get_outputs(self):
        return [NodeArg(o) for o in self._sess.outputs]

    def get_modelmeta(self):
        return ModelMetadata(self._sess)

    def get_providers(self):
        return ["CPUExecutionProvider"]

    def run(self, output_names, input_feed, run_options=None):
        if not isinstance(input_feed, dict):
            raise TypeError("input_feed must be a dict of input name -> numpy array")
        return self._sess.run(input_feed, output_names if output_names else None)
