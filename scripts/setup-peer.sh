#!/usr/bin/env bash
# Set up the WhisperLiveKit peer of `juno bench transcribe` in .venv-peer/ at the
# checkout's root, apart from Juno's .venv/ (WhisperLiveKit is never a
# dependency of Juno), and its model folders beside Juno's models folder
# (~/.cache/juno/peer/), made from the same PyPI-shipped Whisper base. Needs
# Juno's .venv/ (scripts/setup.sh). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

WLK_VERSION=0.2.26

[[ -x .venv/bin/python ]] || { echo "setup-peer: run scripts/setup.sh first (needs .venv/)" >&2; exit 1; }
[[ -x .venv-peer/bin/python ]] || python3 -m venv .venv-peer
.venv-peer/bin/python -m pip install -q --upgrade pip
# What the per-stream processors need, without the server's packages (fastapi,
# uvicorn) or torchaudio (unused there, and it would pull a CUDA torch): so
# WhisperLiveKit itself goes in without its declared dependencies.
deps=("faster-whisper==1.2.1" soundfile scipy numpy librosa tiktoken tqdm safetensors huggingface-hub)
if [[ "$(uname -s)" == "Linux" ]]; then
  # SimulStreaming's decoder runs on torch; this pinned version has a local CPU
  # build here, any other pulls several GB of CUDA packages.
  deps=("torch==2.13.0" "${deps[@]}")
else
  deps=(torch "${deps[@]}")
fi
.venv-peer/bin/python -m pip install -q "${deps[@]}"
.venv-peer/bin/python -m pip install -q --no-deps "whisperlivekit==${WLK_VERSION}"

.venv-peer/bin/python -c "import whisperlivekit.core, faster_whisper, torch"
.venv/bin/python -m juno.bench.peer_models
echo "setup-peer done: .venv-peer/bin/python juno/bench/peer.py --help"
