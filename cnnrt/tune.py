"""Load-time tuning: where the shape rules are unsure which convolution algorithm is fastest for a layer, time the
candidates once on the layer's real input shape, on the session's own thread pool, and cache the choice per CPU and
shape.

Modes (Session(tune=...) or CNNRT_TUNE): "off" (the rules only), "cached" (the rules, except where the cache has a
timed choice for this exact shape; never times; the default), "on" (the cache, and time the unsure layers it lacks,
then write them to the cache).

Unsure (see `candidates`): the rules (src/ops/winograd.c cnn_wino_auto_tile, cnn_wino_use; the planner's auto-small
rule; src/ops/conv.c direct_auto) were set from a table of measured layers (tests/c/bench_winograd.c); where that table
shows close calls, the tuner times:
  * 3x3 stride-1 layers with 8..15 channels (the rule says GEMM below 16; F(4,3) won 2x on 8->8 @32 at 1 thread);
  * 3x3 stride-1 layers with few F(4,3) tiles (fewer than 64 in the batch: near the 16-tile rule, small images) or
    much F(4,3) border waste (tile grid > 1.25x the output): GEMM, F(2,3), F(4,3) (and F(6,3) where it has 16 tiles);
  * 3x3 stride-1 layers with outputs of 24 x 24 and larger: F(4,3) vs F(6,3) (F(6,3) won by 5-30% on several of
    them, lost on others);
  * few-input-channel layers the direct kernel takes with K = Cin*kh*kw >= 16 (RGB stems): direct vs GEMM (at K < 16
    the GEMM panels are mostly padding).
Everything else keeps the rule's choice untimed.

Timing: every candidate runs once to warm up, then in ROUNDS rounds (one run of each, the order reversed every round,
stopping after LAYER_SECONDS), on an input of the layer's shape (random normal, fixed seed), with its fused activation,
residual and, when every candidate can fuse it, the following 2x2 max-pool; a candidate's time is its minimum. A
candidate replaces the rule's choice only if it is faster by MARGIN (15%), and again in CONFIRM_ROUNDS further rounds
of just the two: timings on a shared machine vary by 10-20% (and by 10x under heavy load), the minimum of several
alternated runs much less. At 1 thread a run's time is the thread's CPU time; with more, the wall time, and a run
during which the calling thread was off the CPU for more than 20% of it (descheduled, or waiting for a descheduled
helper) does not count (see default_timer); when the rule's choice has no undisturbed run, the layer keeps the rule
and nothing is cached. The total tuning time of one plan (packing
candidates included) is bounded by CNNRT_TUNE_BUDGET seconds (default 3); layers met after the budget is spent keep
the rule (and are not cached, so a later load times them).
Winograd candidates go through the same accuracy guard as the rule's (probe vs GEMM, budget 1e-3): a tile over budget
falls back to a smaller tile or GEMM when its weights are packed, so it is never timed or chosen as that tile.

Cache: one JSON file per CPU (model string + ISA + cnnrt version) in $CNNRT_CACHE_DIR, else $XDG_CACHE_HOME/cnnrt, else
~/.cache/cnnrt; keyed by the layer's shape (Cin, Cout, kernel, stride, pads, dilation, groups, batch, H, W, fused
activation / pool / residual, threads). Written atomically (temp file + os.replace, merged with what is on disk just
before); a corrupt, foreign or unreadable file counts as empty, an unwritable directory skips the write. Nothing is
fetched from the network.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from . import _core

MODES = ("off", "cached", "on")
DEFAULT_MODE = "cached"
MARGIN = 0.15           # an alternative must take at most 1/1.15 of the rule's time, in both rounds of timing
ROUNDS = 5              # timing rounds (one run of every candidate each, alternating order), after a warm-up run
CONFIRM_ROUNDS = 4      # rounds of only the rule's choice and the winner before switching
MAX_ROUNDS = 15         # more rounds (up to this many) while a candidate has fewer than 2 undisturbed runs
LAYER_SECONDS = 0.5     # a layer's rounds stop once they took this long (at least 2 rounds)
CLEAN_CPU = 0.8         # several threads: a run counts only if the caller was on a CPU for >= 80% of its wall time
DEFAULT_BUDGET = 3.0    # seconds of tuning per plan (packing + timing), CNNRT_TUNE_BUDGET overrides
FORMAT = 1

# a timer: timer(candidate_name, bench, threads) -> seconds of one round (inf: the run was disturbed, it does not
# count); bench(reps, max_seconds) runs the candidate and returns (wall seconds, calling thread's CPU seconds) of each
# run. Tests inject one that makes a candidate slower.
Timer = Callable[[str, Callable[[int, float], List[tuple]], int], float]


def default_timer(name: str, bench, threads: int = 1) -> float:
    """One run. 1 thread: the calling thread's CPU time (it does all the work, and the time other processes take
    from it is not counted). Several threads: the wall time, or inf when the run was disturbed: the caller works on
    the run's tasks and spins while the helpers finish, so its CPU time drops well below the wall time only when it,
    or a helper it had to wait for, was descheduled by other processes (measured on the 2-core shared machine:
    undisturbed runs 0.87-1.02 of the wall time, disturbed ones down to 0.01; a busy second core delayed 2-thread
    runs of small layers 8x)."""
    wall, cpu = bench(1, 1e9)[0]
    if threads <= 1:
        return float(cpu)
    return float(wall) if cpu >= CLEAN_CPU * wall else math.inf


def resolve_mode(tune) -> str:
    """Session's tune argument (None: $CNNRT_TUNE, else the default; True/False: on/off) as one of MODES."""
    if tune is None:
        tune = os.environ.get("CNNRT_TUNE") or DEFAULT_MODE
    if tune is True:
        return "on"
    if tune is False:
        return "off"
    t = str(tune).strip().lower()
    t = {"1": "on", "0": "off", "true": "on", "false": "off", "yes": "on", "no": "off"}.get(t, t)
    if t not in MODES:
        raise ValueError(f"tune must be one of {MODES} (or CNNRT_TUNE), got {tune!r}")
    return t


def cache_dir() -> str:
    d = os.environ.get("CNNRT_CACHE_DIR")
    if d:
        return d
    x = os.environ.get("XDG_CACHE_HOME")
    if x:
        return os.path.join(x, "cnnrt")
    return os.path.join(os.path.expanduser("~"), ".cache", "cnnrt")


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            info = {}
            for line in f:
                k, _, v = line.partition(":")
                info.setdefault(k.strip().lower(), v.strip())
        for k in ("model name", "hardware", "cpu part", "processor"):
            if info.get(k):
                s = info[k]
                if k == "cpu part":
                    s = f"{info.get('cpu implementer', '')}:{s}"
                return s
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_identity(isa: str) -> Dict[str, str]:
    from . import __version__

    return {"cpu": cpu_model(), "machine": platform.machine(), "isa": isa, "version": __version__}


def cache_path(isa: str, directory: Optional[str] = None) -> str:
    ident = cpu_identity(isa)
    h = hashlib.sha1(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    return os.path.join(directory or cache_dir(), f"tune-{isa}-{h}.json")


def _read(path: str, ident) -> Dict[str, dict]:
    """The entries of the cache file, or {} when it is missing, unreadable, corrupt or another CPU's."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("identity") != ident:
        return {}
    ent = data.get("entries")
    if not isinstance(ent, dict):
        return {}
    return {k: v for k, v in ent.items() if isinstance(v, dict) and isinstance(v.get("algo"), str)}


def _write(path: str, ident, entries: Dict[str, dict]) -> bool:
    """Merge entries into the file (atomically: a temp file in the same folder, then os.replace). False on failure."""
    try:
        d = os.path.dirname(path)
        os.makedirs(d, exist_ok=True)
        merged = _read(path, ident)
        merged.update(entries)
        fd, tmp = tempfile.mkstemp(prefix=".tune-", suffix=".tmp", dir=d)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"format": FORMAT, "identity": ident, "entries": merged}, f, indent=0, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return True
    except (OSError, TypeError, ValueError):
        return False


@dataclass
class Layer:
    """What the tuner needs to know about one conv layer of one plan."""
    cin: int
    cout: int
    kh: int
    kw: int
    strides: tuple
    pads: tuple
    dils: tuple
    groups: int
    batch: int
    h: int
    w: int
    oh: int
    ow: int
    act: object
    residual: bool   # a residual fused into the epilogue
    pool: bool       # a following MaxPool(2x2, stride 2) that the plan fuses where the algorithm can
    threads: int

    def key(self) -> str:
        a = "none" if self.act is None else "{}({:g},{:g})".format(*self.act)
        return (f"cin{self.cin}-cout{self.cout}-k{self.kh}x{self.kw}-s{self.strides[0]}x{self.strides[1]}"
                f"-p{'.'.join(map(str, self.pads))}-d{self.dils[0]}x{self.dils[1]}-g{self.groups}-n{self.batch}"
                f"-{self.h}x{self.w}-act:{a}-pool{int(self.pool)}-res{int(self.residual)}-t{self.threads}")


def _tiles(L: Layer, m: int) -> int:
    return L.batch * -(-L.oh // m) * -(-L.ow // m)


def _waste(L: Layer, m: int) -> float:
    return (-(-L.oh // m) * m) * (-(-L.ow // m) * m) / float(L.oh * L.ow)


def winograd_allowed(prep_winograd: bool) -> bool:
    """The rules may pick a Winograd tile: not switched off, and no tile forced by CNNRT_WINOGRAD_TILE."""
    return prep_winograd and os.environ.get("CNNRT_WINOGRAD") != "0" and not os.environ.get("CNNRT_WINOGRAD_TILE")


def candidates(L: Layer, prep_winograd: bool = True) -> Optional[tuple]:
    """(candidate algorithm names, why the rule is unsure) when the layer should be timed, else None. The rule's own
    choice is added by the caller."""
    wino3 = (L.kh, L.kw) == (3, 3) and tuple(L.strides) == (1, 1) and tuple(L.dils) == (1, 1) and L.groups == 1
    direct_ok = (L.groups == 1 and L.cin <= 4 and tuple(L.dils) == (1, 1) and L.strides[1] in (1, 2)
                 and L.kh * L.kw <= 64 and os.environ.get("CNNRT_DIRECT") != "0")
    if direct_ok:
        if L.cin * L.kh * L.kw >= 16:
            return ["direct", "gemm"], f"few input channels, K = {L.cin * L.kh * L.kw} >= 16: direct vs GEMM"
        return None
    if not wino3 or not winograd_allowed(prep_winograd):
        return None
    c = min(L.cin, L.cout)
    if c < 8:
        return None
    t4 = _tiles(L, 4)
    names, why = [], []
    if c < 16:
        names += ["gemm", "winograd-f2", "winograd-f4"]
        why.append(f"{c} channels (rule: Winograd from 16)")
    if t4 < 64 or _waste(L, 4) > 1.25:
        names += ["gemm", "winograd-f2", "winograd-f4"]
        if _tiles(L, 6) >= 16:
            names.append("winograd-f6")
        why.append(f"{t4} F(4,3) tiles, grid {_waste(L, 4):.2f}x the output")
    if min(L.oh, L.ow) >= 24:
        names += ["winograd-f4", "winograd-f6"]
        why.append(f"{L.oh}x{L.ow} outputs: F(4,3) vs F(6,3)")
    if not names:
        return None
    return list(dict.fromkeys(names)), "; ".join(why)


@dataclass
class Decision:
    algo: str                 # what to pack: "auto"/"auto-small" (the rule's) or an explicit algorithm
    chosen: str               # the algorithm the plan runs (e.g. "winograd-f4")
    why: str                  # for layer_info / `cnnrt profile`
    weights: object = None    # packed weights of an explicit choice made while timing (reused by the plan)


def _fmt(t: float) -> str:
    return f"{t * 1e3:.3g} ms"


@dataclass
class Tuner:
    """One per session: mode, the session's thread pool, the cache file and the decisions made so far."""
    mode: str
    isa: str
    pool: object = None
    threads: int = 1
    winograd: bool = True
    timer: Optional[Timer] = None  # None: default_timer (looked up at each use, so tests can patch the module's)
    budget: Optional[float] = None  # None: CNNRT_TUNE_BUDGET, else DEFAULT_BUDGET
    directory: Optional[str] = None
    memo: Dict[str, dict] = field(default_factory=dict)     # key -> entry, this session
    pending: Dict[str, dict] = field(default_factory=dict)  # timed, not yet written
    spent: float = 0.0
    timed_layers: List[str] = field(default_factory=list)   # keys timed by this session (introspection)
    _cache: Optional[Dict[str, dict]] = None

    def __post_init__(self):
        if self.budget is None:
            try:
                self.budget = float(os.environ.get("CNNRT_TUNE_BUDGET", DEFAULT_BUDGET))
            except ValueError:
                self.budget = DEFAULT_BUDGET
        self.ident = cpu_identity(self.isa)
        self.path = cache_path(self.isa, self.directory)

    # ---- cache ---------------------------------------------------------------------------------------------
    def cached(self) -> Dict[str, dict]:
        if self._cache is None:
            self._cache = _read(self.path, self.ident)
        return self._cache

    def begin_plan(self):
        self.spent = 0.0

    def flush(self) -> bool:
        """Write the choices timed since the last flush (True if written or nothing to write)."""
        if not self.pending:
            return True
        ok = _write(self.path, self.ident, self.pending)
        if ok:
            self.cached().update(self.pending)
        self.pending = {}
        return ok

    # ---- the decision ----------------------------------------------------------------------------------------
    def choose(self, L: Layer, rule_algo: str, make: Callable[[str], object]) -> Optional[Decision]:
        """rule_algo: the rule's packing ("auto" / "auto-small"); make(algo) packs the weights for an algorithm.
        Returns None to keep the rule without comment (a layer the rules are sure about)."""
        if self.mode == "off":
            return None
        cand = candidates(L, self.winograd)
        if cand is None:
            return None
        names, unsure = cand
        key = L.key()
        ent = self.memo.get(key)
        src = "as an identical layer before" if ent is not None else None
        if ent is None:
            ent = self.cached().get(key)
            src = "from cache" if ent is not None else None
        if ent is not None and ent.get("disturbed") and src == "as an identical layer before":
            return Decision(rule_algo, ent["rule"], "rule (timing of an identical layer was disturbed)")
        if ent is not None and ent["algo"] not in names + ["rule"]:
            ent = None  # a choice this session may not make (Winograd off, CNNRT_DIRECT=0, ...)
        if ent is not None:
            self.memo[key] = ent
            return self._decision(ent, rule_algo, make, src)
        if self.mode != "on":
            return None
        if self.spent >= self.budget:
            return Decision(rule_algo, "", f"rule (tuning budget of {self.budget:g} s spent)")
        ent, cw = self._time(L, names, unsure, rule_algo, make)
        if ent is None:
            return None
        self.memo[key] = ent
        self.timed_layers.append(key)
        if ent.get("disturbed"):
            return Decision(rule_algo, ent["rule"], f"rule (timing disturbed by other processes: no undisturbed run "
                                                     f"of {', '.join(ent['disturbed'])})")
        self.pending[key] = ent
        d = self._decision(ent, rule_algo, make, "timed")
        d.weights = cw
        return d

    def _decision(self, ent, rule_algo, make, src) -> Decision:
        times = ent.get("times", {})
        algo = ent["algo"]
        rule = ent.get("rule", "")
        parts = [f"{n}{' (rule)' if n == rule else ''} {_fmt(t)}" for n, t in
                 sorted(times.items(), key=lambda kv: (kv[0] != (rule if algo == "rule" else algo), kv[1]))]
        chosen = rule if algo == "rule" else algo
        if src == "timed":
            why = f"timed: {parts[0]} vs " + ", ".join(parts[1:]) if len(parts) > 1 else f"timed: {parts[0]}"
        else:
            why = f"{src}: {chosen} (timed {', '.join(parts)})" if parts else f"{src}: {chosen}"
        if algo == "rule":
            return Decision(rule_algo, chosen, why)
        return Decision(algo, chosen, why)

    def _time(self, L: Layer, names, unsure, rule_algo, make) -> Optional[dict]:
        t_start = time.perf_counter()
        rng = np.random.default_rng(0)
        x = rng.standard_normal((L.batch, L.cin, L.h, L.w), dtype=np.float32)
        res = rng.standard_normal((L.batch, L.cout, L.oh, L.ow), dtype=np.float32) if L.residual else None
        packed = {}
        try:
            rule_cw = make(rule_algo)
            rule_name = rule_cw.plan_algo(L.batch, L.h, L.w, L.threads)
            packed[rule_name] = rule_cw
            for n in names:
                if n in packed:
                    continue
                cw = make(n)
                actual = cw.plan_algo(L.batch, L.h, L.w, L.threads)
                if actual not in packed:  # a tile over the accuracy budget fell back: timed under its real name
                    packed[actual] = cw
        except ValueError:
            return None, None
        if len(packed) < 2:
            self.spent += time.perf_counter() - t_start
            return None, None
        pool = L.pool and all(cw.can_fuse_maxpool2(L.batch, L.h, L.w, L.threads) for cw in packed.values())
        timer = self.timer or default_timer
        benches = {}
        for n, cw in packed.items():
            def bench(reps, max_seconds, cw=cw):
                return cw.bench(x, res, self.pool, L.threads, pool, reps, max_seconds)
            benches[n] = bench
            bench(1, 1e9)  # warm-up: caches, the output's and workspace's pages, the pool's threads waking up

        def rounds(names, k):
            # one run of each candidate per round, the order reversed every round, so that a burst of load from
            # other processes hits all of them alike; each candidate's minimum over its undisturbed runs counts
            # (inf: none); more rounds, up to MAX_ROUNDS, while a candidate has fewer than 2 undisturbed runs
            ts = {n: [] for n in names}
            t0 = time.perf_counter()
            r = 0
            while r < MAX_ROUNDS:
                for n in (names if r % 2 == 0 else names[::-1]):
                    ts[n].append(float(timer(n, benches[n], L.threads)))
                r += 1
                if r >= 2 and time.perf_counter() - t0 > LAYER_SECONDS:
                    break
                if r >= k and all(sum(math.isfinite(t) for t in v) >= 2 for v in ts.values()):
                    break
            return {n: min(v) for n, v in ts.items()}

        times = rounds(list(packed), ROUNDS)
        ok = {n: t for n, t in times.items() if math.isfinite(t)}
        best = min(ok, key=ok.get) if ok else rule_name
        disturbed = rule_name not in ok
        switch = not disturbed and best != rule_name and times[best] * (1.0 + MARGIN) <= times[rule_name]
        if switch:  # confirm: the winner must beat the rule's choice by the margin again, in rounds of only the two
            again = rounds([rule_name, best], CONFIRM_ROUNDS)
            disturbed = not all(math.isfinite(t) for t in again.values())
            switch = not disturbed and again[best] * (1.0 + MARGIN) <= again[rule_name]
            for n in again:
                times[n] = min(times[n], again[n])
        self.spent += time.perf_counter() - t_start
        ent = {"algo": best if switch else "rule", "rule": rule_name,
               "times": {n: round(t, 9) for n, t in times.items() if math.isfinite(t)}, "unsure": unsure}
        if disturbed:  # no comparison with the rule's choice: keep it, and cache nothing (a later load times again)
            ent["disturbed"] = sorted(n for n, t in times.items() if not math.isfinite(t))
        return ent, (packed[best] if switch else None)
