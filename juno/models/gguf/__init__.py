"""Import a llama.cpp GGUF file (llama.cpp, Ollama, LM Studio) into an mlx-lm folder.

The only LLM weights reachable offline here are GGUF files, often K-quantized,
which ``mlx.core.load`` cannot read. The ``gguf`` package (from llama.cpp) reads
the file and dequantizes every tensor type to NumPy; this package maps the result
onto what ``mlx_lm.load`` expects: an HF-style ``config.json``, float
``model*.safetensors`` with HF parameter names, and ``tokenizer.json`` +
``tokenizer_config.json`` rebuilt from the GGUF vocabulary, merges and chat
template.

One module a job: ``header`` reads the file (a fast header scan, typed metadata),
``config`` maps the metadata to config.json, ``weights`` maps and writes the
tensors, ``tokenizer`` rebuilds the tokenizer, ``importer`` puts them together.
"""

from juno.models.gguf.config import SUPPORTED_ARCHITECTURES
from juno.models.gguf.header import gguf_summary
from juno.models.gguf.importer import import_gguf

__all__ = ["SUPPORTED_ARCHITECTURES", "gguf_summary", "import_gguf"]
