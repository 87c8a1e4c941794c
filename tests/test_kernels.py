"""Kernels through the Python skin: every ISA and algorithm against the C naive reference and numpy, on randomized
shapes (odd sizes, channels not a multiple of 8, batch > 1, strides, padding, dilation, groups).

Tolerance: the optimized paths sum the same products in another order (blocked GEMM, FMA), so each output may differ
from the naive sum by a few ulp of the sum of |products|. We bound |got - want| <= 1e-5 * (1 + sum |w|*|x| over the
receptive field), computed exactly by convolving |x| with |w|: about 80x float32 epsilon on the accumulation scale,
large enough for any summation order and far below the error of a wrong index or missed tap."""
import numpy as np
import pytest

import cnnrt
from cnnrt import _core

ISAS = [i for i in ("scalar", "avx2", "avx512", "neon") if i in cnnrt.cpu_info()["supported_isas"]]
ALGOS = ["gemm", "reference", "auto"]


def random_case(rng):
    groups = int(rng.choice([1, 1, 1, 2, 3]))
    cin = groups * int(rng.integers(1, 12))
    cout = groups * int(rng.integers(1, 12))
    kh, kw = (int(v) for v in rng.choice([(1, 1), (3, 3), (5, 5), (1, 3), (3, 1), (7, 7)]))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    dh, dw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    pads = tuple(int(v) for v in rng.integers(0, 3, size=4))
    h = int(rng.integers(1, 18)) + (kh - 1) * dh
    w = int(rng.integers(1, 18)) + (kw - 1) * dw
    n = int(rng.integers(1, 4))
    return n, cin, cout, groups, (kh, kw), (sh, sw), (dh, dw), pads, h, w


def bound(x, wt, strides, pads, dils, groups, residual=None):
    s = _core.conv2d_reference(np.abs(x), np.abs(wt), None, strides, pads, dils, groups)
    return 1e-5 * (1 + s + (np.abs(residual) if residual is not None else 0))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("seed", range(40))
def test_conv_random_shapes(isa, seed):
    rng = np.random.default_rng(seed)
    n, cin, cout, g, k, s, d, pads, h, w = random_case(rng)
    x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
    wt = rng.standard_normal((cout, cin // g) + k).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32) if seed % 3 else None
    act = [None, ("relu", 0, 0), ("clip", -0.5, 0.5), ("leaky", 0.1, 0)][seed % 4]
    want = _core.conv2d_reference(x, wt, b, s, pads, d, g, act)
    tol = bound(x, wt, s, pads, d, g)
    for algo in ALGOS:
        cw = _core.ConvWeights(wt, b, s, pads, d, g, act, algo, isa)
        for threads in (1, 2):
            got = cw(x, pool=_core.ThreadPool(threads))
            assert got.shape == want.shape
            assert np.all(np.abs(got - want) <= tol), (algo, threads, np.abs(got - want).max())


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("seed", range(12))
def test_depthwise_and_residual(isa, seed):
    rng = np.random.default_rng(100 + seed)
    c = int(rng.integers(1, 21))
    k = int(rng.choice([3, 5]))
    s = int(rng.integers(1, 3))
    p = int(rng.integers(0, k // 2 + 1))
    n, h, w = int(rng.integers(1, 3)), int(rng.integers(k, 23)), int(rng.integers(k, 23))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((c, 1, k, k)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    want = _core.conv2d_reference(x, wt, b, (s, s), (p, p, p, p), (1, 1), c, ("relu", 0, 0))
    res = rng.standard_normal(want.shape).astype(np.float32)
    want_r = _core.conv2d_reference(x, wt, b, (s, s), (p, p, p, p), (1, 1), c, ("relu", 0, 0), residual=res)
    for algo in ("depthwise", "gemm", "auto"):
        cw = _core.ConvWeights(wt, b, (s, s), (p, p, p, p), (1, 1), c, ("relu", 0, 0), algo, isa)
        tol = bound(x, wt, (s, s), (p, p, p, p), (1, 1), c, res)
        assert np.all(np.abs(cw(x) - want) <= tol)
        assert np.all(np.abs(cw(x, residual=res) - want_r) <= tol)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("seed", range(16))
def test_depthwise_wide_rows(isa, seed):
    """Depthwise planes whose padded copy would exceed 32 KB, wider than the 8-channels-in-lanes kernel takes (AVX2:
    the no-copy kernel that reads the input rows directly; other ISAs: the padded-copy kernel), odd sizes, stride 1/2,
    3x3/5x5, asymmetric padding, channel multiplier 1 or 2, batch 1-2, residual, SiLU / clip / none, 1 and 2 threads;
    same bound as above (the activation is 1.1-Lipschitz and its own error, a few ulp, is far below
    1e-5 * (1 + S))."""
    rng = np.random.default_rng(300 + seed)
    c = int(rng.integers(1, 10))
    mult = 2 if seed % 4 == 3 else 1
    k = int(rng.choice([3, 5]))
    s = int(rng.integers(1, 3))
    pads = tuple(int(v) for v in rng.integers(0, k // 2 + 2, size=4))
    n, h, w = int(rng.integers(1, 3)), int(rng.integers(80, 97)) | 1, int(rng.integers(100, 141)) | 1
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((c * mult, 1, k, k)).astype(np.float32)
    b = rng.standard_normal(c * mult).astype(np.float32)
    act = [("silu", 0, 0), ("clip", 0, 6), None][seed % 3]
    want = _core.conv2d_reference(x, wt, b, (s, s), pads, (1, 1), c, act)
    res = rng.standard_normal(want.shape).astype(np.float32)
    want_r = _core.conv2d_reference(x, wt, b, (s, s), pads, (1, 1), c, act, residual=res)
    tol = bound(x, wt, (s, s), pads, (1, 1), c, res)
    cw = _core.ConvWeights(wt, b, (s, s), pads, (1, 1), c, act, "depthwise", isa)
    for threads in (1, 2):
        pool = _core.ThreadPool(threads)
        assert np.all(np.abs(cw(x, pool=pool) - want) <= tol), (threads, np.abs(cw(x, pool=pool) - want).max())
        assert np.all(np.abs(cw(x, residual=res, pool=pool) - want_r) <= tol)


def test_reference_matches_numpy():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 4, 9, 7)).astype(np.float32)
    wt = rng.standard_normal((6, 2, 3, 2)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    s, p, d, g = (2, 1), (1, 0, 2, 1), (1, 2), 2
    got = _core.conv2d_reference(x, wt, b, s, p, d, g)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p[0], p[2]), (p[1], p[3])))
    oh = (x.shape[2] + p[0] + p[2] - d[0] * 2 - 1) // s[0] + 1
    ow = (x.shape[3] + p[1] + p[3] - d[1] * 1 - 1) // s[1] + 1
    want = np.zeros((2, 6, oh, ow))
    for co in range(6):
        gi = co // 3
        for ci in range(2):
            for ky in range(3):
                for kx in range(2):
                    patch = xp[:, gi * 2 + ci, ky * d[0]: ky * d[0] + s[0] * (oh - 1) + 1: s[0],
                               kx * d[1]: kx * d[1] + s[1] * (ow - 1) + 1: s[1]]
                    want[:, co] += wt[co, ci, ky, kx] * patch
        want[:, co] += b[co]
    assert np.allclose(got, want, rtol=1e-5, atol=1e-5)


def test_invalid_conv_is_refused():
    wt = np.zeros((4, 3, 3, 3), np.float32)
    with pytest.raises(ValueError):
        _core.ConvWeights(wt, None, (0, 1), (0, 0, 0, 0), (1, 1), 1)
    with pytest.raises(ValueError):
        _core.ConvWeights(wt, None, (1, 1), (0, 0, 0, 0), (1, 1), 3)  # 3 groups do not divide 4 output channels
    cw = _core.ConvWeights(wt, None, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    with pytest.raises(ValueError):
        cw(np.zeros((1, 3, 2, 2), np.float32))  # kernel larger than the input


@pytest.mark.parametrize("isa", ISAS)
def test_fc_random(isa):
    rng = np.random.default_rng(3)
    for m, k, n in [(1, 1, 1), (1, 2048, 512), (7, 33, 17), (32, 100, 10), (5, 300, 70)]:
        w = rng.standard_normal((k, n)).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        fw = _core.FCWeights(w, b, isa)
        assert fw.nbytes >= k * n * 4
        x = rng.standard_normal((m, k)).astype(np.float32)
        want = x.astype(np.float64) @ w + b
        got = fw(x)
        tol = 1e-5 * (1 + np.abs(x).astype(np.float64) @ np.abs(w) + np.abs(b))
        assert np.all(np.abs(got - want) <= tol)


def _maxpool2(y):
    n, c, h, w = y.shape
    y = y[:, :, : h // 2 * 2, : w // 2 * 2]
    return y.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("seed", range(24))
def test_conv_fused_maxpool2_is_exact(isa, seed):
    """A 2x2 stride-2 max-pool fused into the convolution (direct kernel for few input channels, Winograd for 3x3
    layers) gives exactly the pool of the unfused output: the same kernel computes the same values, only the pool
    reads them from cache. Random sizes (odd ones drop their last row/column), strides, paddings, activations,
    batch, 1 and 3 threads."""
    rng = np.random.default_rng(1000 + seed)
    direct = seed % 2 == 0
    if direct:
        cin, cout = int(rng.integers(1, 5)), int(rng.integers(1, 40))
        k = int(rng.choice([1, 3, 5, 7]))
        s = int(rng.integers(1, 3))
        algo = "direct"
    else:
        cin, cout, k, s, algo = int(rng.integers(16, 40)), int(rng.integers(1, 40)), 3, 1, "winograd"
    pads = tuple(int(v) for v in rng.integers(0, k // 2 + 1, size=4))
    h, w, n = int(rng.integers(k + 2, 40)), int(rng.integers(k + 2, 40)), int(rng.integers(1, 4))
    act = [None, ("relu", 0, 0), ("clip", -0.3, 0.4)][seed % 3]
    if direct and seed % 4 == 0:
        act = ("sigmoid", 0, 0)  # the direct path pools activated outputs: any activation
    x = rng.uniform(-1, 1, (n, cin, h, w)).astype(np.float32)
    wt = rng.uniform(-1, 1, (cout, cin, k, k)).astype(np.float32)
    b = rng.uniform(-1, 1, cout).astype(np.float32)
    cw = _core.ConvWeights(wt, b, (s, s), pads, (1, 1), 1, act, algo, isa)
    assert cw.algo == algo, cw.algo
    for threads in (1, 3):
        pool = _core.ThreadPool(threads) if threads > 1 else None
        full = cw(x, pool=pool)
        if full.shape[2] < 2 or full.shape[3] < 2:
            return
        if not cw.can_fuse_maxpool2(n, h, w, threads):
            assert algo == "winograd" and act[0] == "sigmoid", (algo, act)
            continue
        got = cw(x, pool=pool, maxpool2=True)
        np.testing.assert_array_equal(got, _maxpool2(full))
    with pytest.raises(ValueError):
        cw(x, residual=np.zeros_like(cw(x)), maxpool2=True)
