#!/usr/bin/env bash
# Installs the aarch64 cross toolchain (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross) and qemu-user, used by
# tests/test_c_aarch64.py to build the C kernel tests for ARM64 and run them under qemu-aarch64. Does nothing when
# both are already there; never fails the caller: without apt-get (or without the rights to use it) it prints a
# warning and the aarch64 test skips itself.
set -u

need=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/include/stdio.h ] || need+=(libc6-dev-arm64-cross) # target libc (a Recommends only)
command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-cross.sh: warning: apt-get not available; not installing ${need[*]} (the aarch64 C tests will be skipped)" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "install-cross.sh: warning: not root and no password-less sudo; not installing ${need[*]}" >&2
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -qq >/dev/null 2>&1 &&
   $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
  echo "install-cross.sh: installed ${need[*]}"
else
  echo "install-cross.sh: warning: apt-get could not install ${need[*]} (the aarch64 C tests will be skipped)" >&2
fi
exit 0
