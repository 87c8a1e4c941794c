"""The shipped ConvNet end to end: cnnrt vs onnxruntime (logits) and vs PyTorch (predictions on the held-out digits).

Tolerance: cnnrt and onnxruntime both sum in float32 but in different orders (packed GEMM blocks, FMA), so logits
differ in the last bits of each of ~10^5 accumulated products per layer. We compare with
|cnnrt - ort| <= 1e-4 * (1 + max|logits of that image|): a relative bound on the output scale, about 100x the
float32 epsilon times the square root of the accumulation depth; a real bug (a wrong tap, a missing bias) is
orders of magnitude larger."""
import json

import numpy as np
import pytest

import cnnrt
from cnnrt.image import Preprocess, load_image

ort = pytest.importorskip("onnxruntime")


def normalize(sess, images_uint8):
    meta = json.loads(sess.metadata["preprocess"])
    x = images_uint8.astype(np.float32) * np.float32(meta["scale"])
    x = (x - np.float32(meta["mean"][0])) / np.float32(meta["std"][0])
    return np.ascontiguousarray(x[:, None, :, :], dtype=np.float32)


@pytest.fixture(scope="module")
def sessions(model_path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return cnnrt.Session(model_path, num_threads=2), ort.InferenceSession(model_path, so,
                                                                          providers=["CPUExecutionProvider"])


def test_metadata(sessions):
    sess, _ = sessions
    labels = json.loads(sess.metadata["labels"])
    assert labels == [str(i) for i in range(10)]
    pre = json.loads(sess.metadata["preprocess"])
    assert pre["size"] == [64, 64] and pre["channels"] == 1


@pytest.mark.parametrize("batch", [1, 7, 32])
def test_logits_match_onnxruntime(sessions, heldout, batch):
    sess, ref = sessions
    x = normalize(sess, heldout["images_uint8"][:batch])
    got = sess.run(x)[0]
    want = ref.run(None, {"input": x})[0]
    assert got.shape == want.shape == (batch, 10)
    scale = 1 + np.abs(want).max(axis=1, keepdims=True)
    assert np.all(np.abs(got - want) <= 1e-4 * scale), np.abs(got - want).max()


def test_whole_heldout_split_matches_pytorch_and_onnxruntime(sessions, heldout):
    sess, ref = sessions
    x = normalize(sess, heldout["images_uint8"])
    got = np.concatenate([sess.run(x[i:i + 64])[0] for i in range(0, len(x), 64)])
    want = ref.run(None, {"input": x})[0]
    scale = 1 + np.abs(want).max(axis=1, keepdims=True)
    assert np.all(np.abs(got - want) <= 1e-4 * scale), np.abs(got - want).max()
    pred = got.argmax(1)
    assert np.array_equal(pred, want.argmax(1))
    assert np.array_equal(pred, heldout["torch_pred"])
    # the logits PyTorch computed at export time agree too
    assert np.abs(got - heldout["torch_logits"]).max() <= 1e-4 * (1 + np.abs(heldout["torch_logits"]).max())
    acc = (pred == heldout["labels"]).mean()
    assert acc >= 0.97, acc


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512", "neon"])
def test_every_isa_gives_the_same_predictions(model_path, heldout, isa):
    if isa not in cnnrt.cpu_info()["supported_isas"]:
        pytest.skip(f"{isa} not supported here")
    sess = cnnrt.Session(model_path, num_threads=1, isa=isa)
    assert sess.isa == isa
    x = normalize(sess, heldout["images_uint8"][:40])
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    want = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got = sess.run(x)[0]
    assert np.all(np.abs(got - want) <= 1e-4 * (1 + np.abs(want).max(axis=1, keepdims=True)))


def test_shipped_images_preprocess_like_training(sessions, heldout, root):
    sess, _ = sessions
    pre = Preprocess.for_session(sess)
    for d in range(10):
        x = load_image(f"{root}/examples/digit-{d}.png", pre)
        assert x.shape == (1, 64, 64)
        assert sess.run(x[None])[0].argmax() == d


def test_peak_memory_is_planned_before_the_first_run(model_path):
    sess = cnnrt.Session(model_path, num_threads=1)
    peak = sess.peak_memory_bytes
    assert peak > 0
    info = sess.plan_info()
    # the largest intermediate must fit, and the plan must reuse memory: less than all intermediates summed (the
    # 64x64x64 conv1 output never exists: its 2x2 max-pool is fused into the convolution)
    inter = [4 * int(np.prod(n.out_shape)) for n in info.nodes[:-1]]
    assert all(n.out_shape != (1, 64, 64, 64) for n in info.nodes)
    assert max(inter) <= info.arena_bytes < sum(inter)


def test_winograd_choice_and_guard_are_visible(model_path, heldout):
    sess = cnnrt.Session(model_path, num_threads=1)
    algos = sess.conv_algorithms({"input": (32, 1, 64, 64)})
    assert len(algos) == 4
    wino = [a for a in algos if a["algo"].startswith("winograd")]
    if "avx2" in cnnrt.cpu_info()["supported_isas"]:
        assert wino, algos  # the 64- and 128-channel 3x3 layers are Winograd's best case
    for a in wino:
        assert a["winograd_tile"] in (2, 4, 6)
        assert a["probe_error"] is not None and a["probe_error"] <= 1e-3  # the guard's budget
    off = cnnrt.Session(model_path, num_threads=1, winograd=False)
    assert not any(a["algo"].startswith("winograd") for a in off.conv_algorithms({"input": (32, 1, 64, 64)}))
    x = normalize(sess, heldout["images_uint8"][:32])
    a, b = sess.run(x)[0], off.run(x)[0]
    assert np.array_equal(a.argmax(1), b.argmax(1))
    assert np.abs(a - b).max() <= 1e-4 * (1 + np.abs(b).max())
