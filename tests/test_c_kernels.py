"""Runs the C kernel test programs (tests/c) from the Python suite: natively, and under AddressSanitizer +
UndefinedBehaviorSanitizer. Each program compares every SIMD variant the CPU has against the scalar reference."""
import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _make(*args):
    if shutil.which("make") is None or shutil.which("gcc") is None:
        pytest.skip("make/gcc not available")
    r = subprocess.run(["make", "-s", "-C", os.path.join(HERE, "c"), "check", "-j2", *args], capture_output=True,
                       text=True, timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "C kernel tests: all passed" in out
    assert " 0 failed" in out and "passed" in out
    return out


def test_c_kernels_native():
    _make()


def test_c_kernels_sanitizers():
    # ASan needs the ptrace-free runtime; it works as root in containers here. Report, don't hide, a failure.
    out = _make("SANITIZE=1")
    assert "ERROR: AddressSanitizer" not in out and "runtime error" not in out
