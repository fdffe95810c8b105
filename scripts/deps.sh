#!/usr/bin/env bash
# Install what building augur needs and is missing: cmake, clang and libclang
# (llama.cpp and its bindgen), pip, and jinja2 (the reference renderer the
# template tests compare against). Safe to run repeatedly.
set -euo pipefail
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v clang >/dev/null || need+=(clang)
# bindgen needs libclang itself; libclang-cpp (which clang pulls in) is not it.
compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null ||
  compgen -G '/usr/lib/llvm-*/lib/libclang-[0-9]*.so*' >/dev/null ||
  compgen -G '/usr/lib/*/libclang-[0-9]*.so*' >/dev/null || need+=(libclang-dev)
command -v g++ >/dev/null || need+=(g++)
command -v python3 >/dev/null || need+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "deps: installing ${need[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Reference and client packages the tests use: jinja2 (template fidelity),
# openai (the official client against `augur serve`), jsonschema.
py_need=()
for mod in jinja2 openai jsonschema; do python3 -c "import $mod" 2>/dev/null || py_need+=("$mod"); done
if [ ${#py_need[@]} -gt 0 ]; then
  python3 -m pip install -q "${py_need[@]}" 2>/dev/null || python3 -m pip install -q --break-system-packages "${py_need[@]}"
fi
