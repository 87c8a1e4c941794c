"""Build of cnnrt's one extension, cnnrt._core: the Cython skin plus every C source under src/.

ISA handling (nothing assumes the build machine's CPU, no -march=native):
  * x86-64: files named *__avx2.c are compiled with -mavx2 -mfma (only those files); the choice between them and the
    scalar files is made at run time from cpuid (src/hardware.c).
  * x86-64: files named *__avx512.c (the AVX-512F GEMM micro-kernels) are compiled with -mavx512f; cpuid + xgetbv
    decide at run time whether they are used.
  * aarch64: files named *__neon.c are built (NEON is part of the base ISA); *__avx2.c / *__avx512.c are skipped.
  * any other CPU: only the portable scalar files are built.
CNNRT_EXTRA_CFLAGS adds flags (for example -O0 -g, or -march=native for a local experiment).
"""
import glob
import os
import platform
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
MACHINE = platform.machine().lower()
IS_X86_64 = MACHINE in ("x86_64", "amd64")
IS_AARCH64 = MACHINE in ("aarch64", "arm64")


def c_sources():
    out = []
    for path in sorted(glob.glob(os.path.join("src", "**", "*.c"), recursive=True)):
        name = os.path.basename(path)
        if ("__avx2" in name or "__avx512" in name) and not IS_X86_64:
            continue
        if "__neon" in name and not IS_AARCH64:
            continue
        out.append(path)
    return out


BASE_FLAGS = ["-O3", "-std=c11", "-ffp-contract=off", "-fno-strict-aliasing", "-Wall", "-Wno-unused-function", "-fvisibility=hidden"]
if sys.platform.startswith("linux"):
    BASE_FLAGS += ["-D_GNU_SOURCE"]
EXTRA = os.environ.get("CNNRT_EXTRA_CFLAGS", "").split()


class BuildExt(build_ext):
    """Per-file flags: AVX2/FMA only for *__avx2.c, AVX-512F only for *__avx512.c."""

    def build_extensions(self):
        compiler = self.compiler
        original = compiler._compile

        def _compile(obj, src, ext, cc_args, extra_postargs, pp_opts):
            post = list(extra_postargs)
            if src.endswith(".c"):
                post = [f for f in post if f != "-std=c11"] + ["-std=c11"]
                if "__avx2" in os.path.basename(src):
                    post += ["-mavx2", "-mfma", "-mf16c"]
                elif "__avx512" in os.path.basename(src):
                    post += ["-mavx512f", "-mavx2", "-mfma", "-mf16c"]
            else:  # Cython-generated C: no -std=c11 pedantry
                post = [f for f in post if f != "-std=c11"]
            return original(obj, src, ext, cc_args, post, pp_opts)

        compiler._compile = _compile
        super().build_extensions()


ext = Extension(
    "cnnrt._core",
    sources=["cnnrt/_core.pyx"] + c_sources(),
    include_dirs=["include", np.get_include()],
    extra_compile_args=BASE_FLAGS + EXTRA,
    extra_link_args=["-pthread", "-lm"],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)

setup(
    ext_modules=cythonize([ext], language_level=3, compiler_directives={"boundscheck": False, "wraparound": False}),
    cmdclass={"build_ext": BuildExt},
)
