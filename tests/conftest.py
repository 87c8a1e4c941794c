import os
import tempfile

import numpy as np
import pytest

# the load-time tuner's cache (cnnrt/tune.py): never the real ~/.cache in tests, and the default mode ("cached": reads
# the cache, never times) on an empty one, so every test sees the rules unless it tunes on purpose
os.environ["CNNRT_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnnrt-test-cache-")
os.environ.pop("CNNRT_TUNE", None)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "convnet.onnx")
HELDOUT = os.path.join(ROOT, "models", "digits_heldout.npz")
EXAMPLES = os.path.join(ROOT, "examples")


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def model_path():
    return MODEL


@pytest.fixture(scope="session")
def heldout():
    return dict(np.load(HELDOUT))


def isas():
    import cnnrt

    return cnnrt.cpu_info()["supported_isas"]
