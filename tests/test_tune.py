"""Load-time tuning (cnnrt/tune.py): the timer is injected (no timing thresholds here), so each test decides which
candidate is "faster" and checks what the tuner does with it: picks it only past the margin (and again in the
confirmation rounds), caches it per CPU and shape, ignores a corrupt or foreign cache, survives an unwritable one, and
leaves the rules alone with tune off.

Outputs are compared with the C naive reference convolution (cnnrt._core.conv2d_reference; + numpy 2x2 max-pool) with
the tolerance of tests/test_ops.py: max |got - ref| <= 5e-5 * max(1, max |ref|). Every candidate sums the same float32
products in another order (GEMM blocking, SIMD lanes) or, for Winograd, through the transforms, whose error the
accuracy guard bounds at ~1e-5 of the output scale on ordinary weights (probe errors of F(6,3) up to 1.5e-5, see
src/ops/winograd.c); a wrong algorithm wiring (padding, tile border, residual, pool) gives errors of the output's own
size."""
import json
import os

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import cnnrt
from cnnrt import _core, tune
from cnnrt.tools import profile

TOL = 5e-5


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("CNNRT_CACHE_DIR", str(d))
    for v in ("CNNRT_TUNE", "CNNRT_TUNE_BUDGET", "CNNRT_WINOGRAD", "CNNRT_WINOGRAD_TILE", "CNNRT_DIRECT"):
        monkeypatch.delenv(v, raising=False)
    return d


def rand(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).uniform(-1, 1, shape) * scale).astype(np.float32)


def conv_model(cin, cout, k=3, stride=1, pad=1, pool=False, residual=False, wscale=0.2, seed=1):
    """x[N, cin, H, W] -> Conv(k, stride, pad) -> (+ x when residual) -> Relu -> (MaxPool 2x2 when pool)."""
    w = rand(cout, cin, k, k, seed=seed, scale=wscale)
    b = rand(cout, seed=seed + 1)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[pad] * 4, strides=[stride] * 2)]
    last = "c"
    if residual:
        nodes.append(helper.make_node("Add", ["c", "x"], ["a"]))
        last = "a"
    nodes.append(helper.make_node("Relu", [last], ["r"]))
    last = "r"
    if pool:
        nodes.append(helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2, 2], strides=[2, 2]))
        last = "y"
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", cin, "H", "W"])],
                          [helper.make_tensor_value_info(last, TensorProto.FLOAT, ["N", cout, "OH", "OW"])],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = min(m.ir_version, 10)
    ref = dict(w=w, b=b, stride=stride, pad=pad, pool=pool, residual=residual)
    return m.SerializeToString(), ref


def reference(ref, x):
    s, p = ref["stride"], ref["pad"]
    y = _core.conv2d_reference(x, ref["w"], ref["b"], (s, s), (p, p, p, p), (1, 1), 1, ("relu", 0.0, 0.0),
                               residual=x if ref["residual"] else None)
    if ref["pool"]:
        n, c, h, w = y.shape
        y = y[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
    return y


def assert_matches(sess, ref, xs, seed=5):
    x = rand(*xs, seed=seed)
    got = sess.run(x)[0]
    want = reference(ref, x)
    assert got.shape == want.shape
    err = float(np.abs(got.astype(np.float64) - want).max())
    assert err <= TOL * max(1.0, float(np.abs(want).max())), err


class FakeTimer:
    """Seconds per round by candidate name (default 1 ms); counts the rounds timed. confirm: times used once the
    first `after` rounds of a candidate are done (the confirmation rounds)."""

    def __init__(self, times=None, confirm=None, after=tune.ROUNDS):
        self.times, self.confirm, self.after = dict(times or {}), dict(confirm or {}), after
        self.calls = {}

    def __call__(self, name, bench, threads):
        assert callable(bench) and threads >= 1
        k = self.calls[name] = self.calls.get(name, 0) + 1
        if k > self.after and name in self.confirm:
            return self.confirm[name]
        return self.times.get(name, 1e-3)


def no_timing(name, bench, threads):
    raise AssertionError(f"timed {name} with tune=cached")


def conv_info(sess, shape):
    (a,) = sess.conv_algorithms({"x": shape})
    return a


# 16 -> 16 channels at 24 x 24, batch 1: the rule runs F(4,3) (36 tiles); unsure (< 64 F(4,3) tiles, and 24 x 24
# outputs: F(4,3) vs F(6,3)), so the candidates are GEMM, F(2,3), F(4,3), F(6,3)
SHAPE = (1, 16, 24, 24)
ALL = ["gemm", "winograd-f2", "winograd-f4", "winograd-f6"]


def test_candidates_follow_the_rules():
    def layer(cin, cout, n, hw, k=3, s=1):
        oh = (hw + 2 * (k // 2) - k) // s + 1
        return tune.Layer(cin, cout, k, k, (s, s), (k // 2,) * 4, (1, 1), 1, n, hw, hw, oh, oh, None, False, False, 2)

    names = lambda c: None if c is None else sorted(c[0])
    assert names(tune.candidates(layer(16, 16, 1, 24))) == sorted(ALL)
    assert names(tune.candidates(layer(128, 128, 1, 8))) == ["gemm", "winograd-f2", "winograd-f4"]
    assert names(tune.candidates(layer(64, 64, 1, 56))) == ["winograd-f4", "winograd-f6"]
    assert tune.candidates(layer(64, 64, 32, 16)) is None  # 512 F(4,3) tiles, no border waste: the rule is sure
    assert tune.candidates(layer(64, 64, 1, 56, k=1)) is None  # 1x1: GEMM, nothing to time
    assert tune.candidates(layer(64, 64, 1, 56, s=2)) is None
    assert names(tune.candidates(layer(4, 64, 1, 32))) == ["direct", "gemm"]  # K = 36
    assert names(tune.candidates(layer(3, 64, 1, 224, k=7, s=2))) == ["direct", "gemm"]
    assert tune.candidates(layer(1, 64, 1, 64)) is None  # K = 9: GEMM panels mostly padding, direct is sure
    assert names(tune.candidates(layer(8, 8, 1, 32))) == sorted(ALL)  # < 16 channels, and 32 x 32 outputs
    assert tune.candidates(layer(4, 8, 1, 32, k=1)) is None  # direct, K = 4
    assert tune.candidates(layer(4, 8, 1, 32, k=5)) is not None  # direct, K = 100
    assert tune.candidates(layer(16, 16, 1, 24), prep_winograd=False) is None


@pytest.mark.parametrize("fast", ALL)
@pytest.mark.parametrize("variant", ["relu", "pool", "residual"])
def test_picks_the_faster_candidate(monkeypatch, fast, variant):
    """The injected timer makes every candidate but one 3x slower: that one is chosen (outputs still right)."""
    monkeypatch.setattr(tune, "default_timer", FakeTimer({n: 3e-3 for n in ALL if n != fast}))
    m, ref = conv_model(16, 16, pool=variant == "pool", residual=variant == "residual")
    s = cnnrt.Session(m, num_threads=2, tune="on")
    a = conv_info(s, SHAPE)
    assert a["algo"] == fast, a
    assert a["tune"].startswith(f"timed: {fast}"), a["tune"]
    assert_matches(s, ref, SHAPE)
    if fast.startswith("winograd"):
        assert a["winograd_tile"] == int(fast[-1]) and a["probe_error"] <= 1e-3


def test_switch_needs_the_margin(monkeypatch, tmp_path):
    rule = "winograd-f4"
    slower = 1e-3 / (1 + tune.MARGIN) * 1.02  # 13% faster than the rule's 1 ms: inside the margin
    monkeypatch.setattr(tune, "default_timer", FakeTimer({"gemm": slower, "winograd-f2": 2e-3, "winograd-f6": 2e-3}))
    m, ref = conv_model(16, 16)
    s = cnnrt.Session(m, num_threads=2, tune="on")
    a = conv_info(s, SHAPE)
    assert a["algo"] == rule and "(rule)" in a["tune"] and a["tune"].startswith(f"timed: {rule}"), a
    off = cnnrt.Session(m, num_threads=2, tune="off")
    assert conv_info(off, SHAPE)["algo"] == rule
    # just past the margin: switches
    faster = 1e-3 / (1 + tune.MARGIN) * 0.98
    monkeypatch.setattr(tune, "default_timer", FakeTimer({"gemm": faster, "winograd-f2": 2e-3, "winograd-f6": 2e-3}))
    monkeypatch.setenv("CNNRT_CACHE_DIR", str(tmp_path / "another"))  # not the first session's "rule" entry
    s2 = cnnrt.Session(m, num_threads=2, tune="on")
    assert conv_info(s2, SHAPE)["algo"] == "gemm"


def test_switch_needs_the_confirmation(monkeypatch):
    """GEMM wins the first rounds by 2x but not the confirmation rounds (a burst of load on the rule's runs): kept."""
    t = FakeTimer({"gemm": 0.5e-3, "winograd-f2": 2e-3, "winograd-f6": 2e-3}, confirm={"gemm": 1e-3})
    monkeypatch.setattr(tune, "default_timer", t)
    m, ref = conv_model(16, 16)
    s = cnnrt.Session(m, num_threads=2, tune="on")
    a = conv_info(s, SHAPE)
    assert a["algo"] == "winograd-f4", a
    assert t.calls["gemm"] > tune.ROUNDS and t.calls["winograd-f4"] > tune.ROUNDS  # the confirmation ran
    assert t.calls["winograd-f2"] <= tune.ROUNDS  # only the two


def test_direct_vs_gemm(monkeypatch):
    """A 3-channel 7x7 stride-2 stem (K = 147): the direct kernel (rule) vs GEMM."""
    m, ref = conv_model(3, 16, k=7, stride=2, pad=3)
    xs = (1, 3, 40, 40)
    monkeypatch.setattr(tune, "default_timer", FakeTimer({"direct": 3e-3}))
    s = cnnrt.Session(m, num_threads=2, tune="on")
    s.plan_info({"x": xs})
    a = conv_info(s, xs)
    assert a["algo"] == "gemm" and a["tune"].startswith("timed: gemm"), a
    assert_matches(s, ref, xs)
    monkeypatch.setattr(tune, "default_timer", FakeTimer({"gemm": 3e-3}))
    s = cnnrt.Session(m, num_threads=1, tune="on")  # another thread count: another key, timed again
    assert conv_info(s, xs)["algo"] == "direct"
    assert_matches(s, ref, xs)


def test_cache_round_trip_and_misses(monkeypatch, cache_dir):
    monkeypatch.setattr(tune, "default_timer", FakeTimer({"winograd-f4": 3e-3, "winograd-f2": 3e-3,
                                                          "winograd-f6": 3e-3}))
    m, ref = conv_model(16, 16)
    s = cnnrt.Session(m, num_threads=2, tune="on")
    assert conv_info(s, SHAPE)["algo"] == "gemm"
    files = os.listdir(cache_dir)
    assert len(files) == 1 and files[0].startswith(f"tune-{s.isa}-") and files[0].endswith(".json"), files
    data = json.load(open(cache_dir / files[0]))
    assert data["identity"]["isa"] == s.isa and data["identity"]["version"] == cnnrt.__version__
    (key,) = data["entries"]
    assert "cin16-cout16-k3x3" in key and "-n1-" in key and "-24x24-" in key and key.endswith("-t2"), key
    assert data["entries"][key]["algo"] == "gemm"

    monkeypatch.setattr(tune, "default_timer", no_timing)
    c = cnnrt.Session(m, num_threads=2, tune="cached")
    a = conv_info(c, SHAPE)
    assert a["algo"] == "gemm" and a["tune"].startswith("from cache: gemm"), a
    assert_matches(c, ref, SHAPE)
    # the default mode is "cached" (and CNNRT_TUNE chooses)
    assert conv_info(cnnrt.Session(m, num_threads=2), SHAPE)["algo"] == "gemm"
    monkeypatch.setenv("CNNRT_TUNE", "off")
    assert conv_info(cnnrt.Session(m, num_threads=2), SHAPE)["algo"] == "winograd-f4"
    monkeypatch.delenv("CNNRT_TUNE")
    # misses: another batch, image size or thread count keeps the rule (and cached mode never times)
    for shape in [(2, 16, 24, 24), (1, 16, 26, 24)]:
        a = conv_info(c, shape)
        assert a["algo"] == "winograd-f4" and a["tune"] == "", (shape, a)
    a = conv_info(cnnrt.Session(m, num_threads=1, tune="cached"), SHAPE)
    assert a["algo"] == "winograd-f4" and a["tune"] == "", a
    # the same shape in a layer with other fusions (a residual) is another key
    m2, _ = conv_model(16, 16, residual=True)
    assert conv_info(cnnrt.Session(m2, num_threads=2, tune="cached"), SHAPE)["algo"] == "winograd-f4"


def test_cached_winograd_choice_needs_winograd(monkeypatch):
    monkeypatch.setattr(tune, "default_timer", FakeTimer({"winograd-f4": 3e-3, "winograd-f2": 3e-3, "gemm": 3e-3}))
    m, ref = conv_model(16, 16)
    assert conv_info(cnnrt.Session(m, num_threads=2, tune="on"), SHAPE)["algo"] == "winograd-f6"
    monkeypatch.setattr(tune, "default_timer", no_timing)
    assert conv_info(cnnrt.Session(m, num_threads=2, tune="cached"), SHAPE)["algo"] == "winograd-f6"
    s = cnnrt.Session(m, num_threads=2, tune="on", winograd=False)  # nothing to time without Winograd
    assert conv_info(s, SHAPE)["algo"] == "gemm"
    monkeypatch.setenv("CNNRT_WINOGRAD_TILE", "4")  # a tile forced by the environment: the tuner stays out
    assert conv_info(cnnrt.Session(m, num_threads=2, tune="cached"), SHAPE)["algo"] == "winograd-f4"


@pytest.mark.parametrize("content", [b"{not json", b"\x00\xff\xfe", b"[]", b'{"format": 1, "entries": 3}', None])
def test_corrupt_or_foreign_cache_is_ignored(monkeypatch, cache_dir, content):
    m, ref = conv_model(16, 16)
    isa = cnnrt.Session(m, num_threads=2, tune="off").isa
    path = tune.cache_path(isa)
    os.makedirs(cache_dir, exist_ok=True)
    if content is None:  # another CPU's file under this name: entries that would say GEMM
        ident = dict(tune.cpu_identity(isa), cpu="another CPU")
        key = tune.Layer(16, 16, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, 1, 24, 24, 24, 24, ("relu", 0.0, 0.0), False,
                         False, 2).key()
        content = json.dumps({"format": tune.FORMAT, "identity": ident,
                              "entries": {key: {"algo": "gemm", "times": {}}}}).encode()
    with open(path, "wb") as f:
        f.write(content)
    monkeypatch.setattr(tune, "default_timer", no_timing)
    a = conv_info(cnnrt.Session(m, num_threads=2, tune="cached"), SHAPE)
    assert a["algo"] == "winograd-f4" and a["tune"] == "", a  # the rule
    # tuning replaces the bad file with a good one
    monkeypatch.setattr(tune, "default_timer", FakeTimer({"winograd-f4": 3e-3, "winograd-f2": 3e-3,
                                                          "winograd-f6": 3e-3}))
    s = cnnrt.Session(m, num_threads=2, tune="on")
    assert conv_info(s, SHAPE)["algo"] == "gemm"
    assert_matches(s, ref, SHAPE)
    data = json.load(open(path))
    assert data["identity"] == tune.cpu_identity(s.isa) and len(data["entries"]) == 1


def test_unwritable_cache_dir_does_not_fail(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("CNNRT_CACHE_DIR", str(blocker / "cnnrt"))  # makedirs fails (NotADirectoryError)
    monkeypatch.setattr(tune, "default_timer", FakeTimer({"winograd-f4": 3e-3, "winograd-f2": 3e-3,
                                                          "winograd-f6": 3e-3}))
    m, ref = conv_model(16, 16)
    s = cnnrt.Session(m, num_threads=2, tune="on")
    assert conv_info(s, SHAPE)["algo"] == "gemm"  # timed, used, just not saved
    assert_matches(s, ref, SHAPE)
    assert not s._prep.tuner.flush() or not s._prep.tuner.pending


def test_cache_dir_default_locations(monkeypatch, tmp_path):
    monkeypatch.delenv("CNNRT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tune.cache_dir() == str(tmp_path / "xdg" / "cnnrt")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert tune.cache_dir() == str(tmp_path / "home" / ".cache" / "cnnrt")


@pytest.mark.parametrize("shape", [(1, 16, 24, 24), (1, 16, 8, 8), (3, 16, 11, 13), (2, 16, 30, 30)])
@pytest.mark.parametrize("variant", ["relu", "pool", "residual"])
def test_tune_off_is_the_rule(monkeypatch, shape, variant):
    """With equal timings (nothing past the margin) the tuned plan is the rule's plan: same algorithms, same
    packing, bit-identical outputs; with tune off the tuner never runs."""
    monkeypatch.setattr(tune, "default_timer", FakeTimer())
    m, ref = conv_model(16, 16, pool=variant == "pool", residual=variant == "residual")
    off = cnnrt.Session(m, num_threads=2, tune="off")
    assert off._prep.tuner is None
    on = cnnrt.Session(m, num_threads=2, tune="on")
    a_off, a_on = conv_info(off, shape), conv_info(on, shape)
    assert a_on["algo"] == a_off["algo"] and a_on["winograd_tile"] == a_off["winograd_tile"]
    assert a_off["tune"] == ""
    assert [k[3] for k in on._prep.conv] == [k[3] for k in off._prep.conv]  # "auto" / "auto-small" packings
    x = rand(*shape, seed=7)
    np.testing.assert_array_equal(on.run(x)[0], off.run(x)[0])
    assert_matches(off, ref, shape)


def test_accuracy_guard_applies_to_candidates(monkeypatch):
    """Weights of ~1e35: every Winograd tile's intermediates could overflow, so the guard sends all of them to GEMM
    when they are packed; a timer that would prefer F(6,3) cannot pick it."""
    monkeypatch.setattr(tune, "default_timer", FakeTimer({"gemm": 9e-3, "winograd-f6": 1e-6}))
    m, ref = conv_model(16, 16, wscale=1e35)
    s = cnnrt.Session(m, num_threads=2, tune="on")
    a = conv_info(s, SHAPE)
    assert a["algo"] == "gemm" and a["winograd_tile"] == 0, a
    x = rand(*SHAPE, seed=5)
    got, want = s.run(x)[0], reference(ref, x)
    assert np.isfinite(got).all()
    assert float(np.abs(got.astype(np.float64) - want).max()) <= TOL * float(np.abs(want).max())


def test_budget_spent_keeps_the_rule(monkeypatch):
    monkeypatch.setenv("CNNRT_TUNE_BUDGET", "0")
    monkeypatch.setattr(tune, "default_timer", no_timing)
    m, ref = conv_model(16, 16)
    s = cnnrt.Session(m, num_threads=2, tune="on")
    a = conv_info(s, SHAPE)
    assert a["algo"] == "winograd-f4" and "budget" in a["tune"], a
    assert not os.path.exists(s._prep.tuner.path)  # nothing timed, nothing cached


def test_identical_layers_timed_once(monkeypatch):
    t = FakeTimer({"winograd-f4": 3e-3, "winograd-f2": 3e-3, "winograd-f6": 3e-3})
    monkeypatch.setattr(tune, "default_timer", t)
    w1, w2 = rand(16, 16, 3, 3, seed=1, scale=0.2), rand(16, 16, 3, 3, seed=2, scale=0.2)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1] * 4), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "w2"], ["c"], pads=[1] * 4), helper.make_node("Relu", ["c"], ["y"])]
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(SHAPE))],
                          [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    mm = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    mm.ir_version = min(mm.ir_version, 10)
    s = cnnrt.Session(mm.SerializeToString(), num_threads=2, tune="on")
    algos = s.conv_algorithms()
    assert [a["algo"] for a in algos] == ["gemm", "gemm"]
    assert algos[0]["tune"].startswith("timed") and algos[1]["tune"].startswith("as an identical layer"), algos
    assert len(s._prep.tuner.timed_layers) == 1
    x = rand(*SHAPE, seed=3)
    y = np.maximum(_core.conv2d_reference(np.maximum(_core.conv2d_reference(x, w1, None, (1, 1), (1,) * 4, (1, 1), 1),
                                                     0), w2, None, (1, 1), (1,) * 4, (1, 1), 1), 0)
    assert float(np.abs(s.run(x)[0] - y).max()) <= TOL * max(1.0, float(np.abs(y).max()))


def test_profile_why_column(monkeypatch):
    monkeypatch.setattr(tune, "default_timer", FakeTimer({"winograd-f4": 3e-3, "winograd-f2": 3e-3, "gemm": 3e-3}))
    m, ref = conv_model(16, 16)
    s = cnnrt.Session(m, num_threads=2, tune="on")
    rows, _, _ = profile(s, {"x": rand(*SHAPE)}, runs=2)
    (conv,) = [r for r in rows if r["kind"] == "conv"]
    assert conv["algo"] == "winograd-f6" and conv["why"].startswith("timed: winograd-f6"), conv
    assert "winograd-f4 (rule)" in conv["why"] and "probe error" in conv["why"]


def test_mode_option_and_env(monkeypatch):
    assert tune.resolve_mode(None) == tune.DEFAULT_MODE == "cached"
    monkeypatch.setenv("CNNRT_TUNE", "ON")
    assert tune.resolve_mode(None) == "on"
    assert tune.resolve_mode("off") == "off" and tune.resolve_mode(False) == "off" and tune.resolve_mode(True) == "on"
    with pytest.raises(ValueError, match="tune must be one of"):
        tune.resolve_mode("fast")
    m, _ = conv_model(16, 16)
    with pytest.raises(ValueError):
        cnnrt.Session(m, tune="sometimes")
    import pickle

    monkeypatch.setattr(tune, "default_timer", FakeTimer())
    s = pickle.loads(pickle.dumps(cnnrt.Session(m, num_threads=2, tune="off")))
    assert s.tune == "off" and s._prep.tuner is None


def test_cli_profile_tune_flag(cache_dir):
    """`cnnrt profile --tune on` times the ConvNet's unsure layers (real timings: only what was decided is checked, not
    which algorithm won), `--tune cached` then reads the choices back."""
    import subprocess
    import sys

    from conftest import MODEL, ROOT

    def cli(mode):
        r = subprocess.run([sys.executable, "-m", "cnnrt.cli", "profile", MODEL, "--threads", "1", "--runs", "2",
                            "--tune", mode], capture_output=True, text=True, cwd=ROOT, timeout=120,
                           env=dict(os.environ, CNNRT_CACHE_DIR=str(cache_dir)))
        assert r.returncode == 0, r.stderr
        assert f"tune {mode}" in r.stdout.splitlines()[0]
        return [l for l in r.stdout.splitlines() if "/Conv" in l]

    timed = cli("on")
    assert any("timed: " in l for l in timed), timed
    cached = cli("cached")
    same = "as an identical layer before"
    assert [("timed: " in l or same in l) for l in timed] == [("from cache: " in l or same in l) for l in cached]
    assert [l.split()[3] for l in timed] == [l.split()[3] for l in cached]  # the same algorithms


def test_disturbed_runs_do_not_count(monkeypatch):
    """With several threads, a run whose calling thread was off the CPU for > 20% of it does not count (default_timer
    -> inf; at 1 thread the thread's CPU time counts); when the rule's choice has no undisturbed run, the layer keeps
    the rule and nothing is cached."""
    assert tune.default_timer("x", lambda reps, s: [(1e-3, 0.95e-3)], 2) == 1e-3
    assert tune.default_timer("x", lambda reps, s: [(1e-3, 0.5e-3)], 2) == float("inf")
    assert tune.default_timer("x", lambda reps, s: [(1e-3, 0.5e-3)], 1) == 0.5e-3  # 1 thread: its CPU time
    inf = float("inf")
    t = FakeTimer({"winograd-f4": inf, "gemm": 0.1e-3})
    monkeypatch.setattr(tune, "default_timer", t)
    m, ref = conv_model(16, 16)
    s = cnnrt.Session(m, num_threads=2, tune="on")
    a = conv_info(s, SHAPE)
    assert a["algo"] == "winograd-f4" and "disturbed" in a["tune"] and "winograd-f4" in a["tune"], a
    assert t.calls["winograd-f4"] == tune.MAX_ROUNDS  # kept trying for 2 undisturbed runs
    assert not os.path.exists(s._prep.tuner.path)
    assert_matches(s, ref, SHAPE)
    # a disturbed candidate other than the rule's just drops out: the others still compete
    monkeypatch.setattr(tune, "default_timer", FakeTimer({"gemm": inf, "winograd-f6": 0.5e-3}))
    s = cnnrt.Session(m, num_threads=2, tune="on")
    a = conv_info(s, SHAPE)
    assert a["algo"] == "winograd-f6" and "gemm" not in a["tune"], a
    assert os.path.exists(s._prep.tuner.path)
