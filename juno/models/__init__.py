"""Model management: resolve a spec to an MLX folder, import GGUF and CTranslate2 models."""
