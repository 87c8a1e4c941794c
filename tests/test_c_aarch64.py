"""Portability checks for the ARM64 (NEON) build and the scalar fallback.

* test_c_kernels_aarch64_qemu: cross-compiles the C kernel tests (tests/c) for aarch64 and runs them under qemu-user:
  every NEON kernel is compared against the scalar reference (and the scalar kernels against the naive oracles).
  Needs aarch64-linux-gnu-gcc and qemu-aarch64 (.ci/install-cross.sh installs them); skipped when they are missing.
* test_python_suite_scalar_isa: the Python kernel and model tests once more with CNNRT_ISA=scalar, in a subprocess
  (the active ISA is fixed per process), so the portable path every non-x86/non-ARM CPU gets is covered end to end.
"""
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# set in the scalar sub-run's environment: the sub-run must not start another one
_SUBRUN_GUARD = "CNNRT_TEST_SCALAR_SUBRUN"


def test_c_kernels_aarch64_qemu():
    missing = [t for t in ("make", "aarch64-linux-gnu-gcc", "qemu-aarch64") if shutil.which(t) is None]
    if missing:
        pytest.skip("aarch64 cross toolchain not available (missing: %s; see .ci/install-cross.sh)" % ", ".join(missing))
    r = subprocess.run(["make", "-s", "-C", os.path.join(HERE, "c"), "check", "CROSS=aarch64-linux-gnu-", "-j2"],
                       capture_output=True, text=True, timeout=1800)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "C kernel tests: all passed (aarch64)" in out, out[-4000:]
    assert "testing neon" in out, "the NEON kernels were not tested:\n" + out[-4000:]
    assert " 0 failed" in out and "passed" in out


def test_python_suite_scalar_isa():
    if os.environ.get(_SUBRUN_GUARD):
        pytest.skip("already inside the CNNRT_ISA=scalar sub-run")
    env = dict(os.environ)
    env["CNNRT_ISA"] = "scalar"
    env[_SUBRUN_GUARD] = "1"
    cmd = [sys.executable, "-m", "pytest", "-q", "tests/test_kernels.py", "tests/test_convnet.py",
           "-p", "no:cacheprovider"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    out = r.stdout + r.stderr
    assert r.returncode == 0, "CNNRT_ISA=scalar %s failed:\n%s" % (" ".join(cmd[1:]), out[-4000:])
    assert "passed" in out, out[-4000:]
