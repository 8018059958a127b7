"""Build a streaming translator from the config (sampling through mlx-lm)."""

from __future__ import annotations

from typing import Any

from juno.config import Config
from juno.languages import language_name
from juno.simul.engine import StreamingTranslator, parse_phi
from juno.simul.examples import examples_for


def make_translator(
    model: Any,
    tokenizer: Any,
    cfg: Config,
    *,
    source: str | None = None,
    target: str | None = None,
    **overrides: Any,
) -> StreamingTranslator:
    """A translator for the config's translate section.

    ``source`` and ``target`` are language codes (default: the config's);
    ``overrides`` replace constructor arguments (wait_k, phi, one_line...).
    """
    from mlx_lm.sample_utils import make_logits_processors, make_sampler

    tc = cfg.translate
    source = source or cfg.source_language
    target = target or cfg.target_language
    penalty = tc.repetition_penalty if tc.repetition_penalty != 1.0 else None
    kwargs: dict[str, Any] = {
        "source_language": language_name(source),
        "target_language": language_name(target),
        "wait_k": tc.wait_k,
        "phi": parse_phi(tc.phi),
        "max_tokens_per_word": tc.max_tokens_per_word,
        "one_line": tc.one_line,
        "read_on_end": tc.read_on_end,
        "read_on_sentence_end": tc.read_on_sentence_end,
        "end_reads": tc.end_reads,
        "system_prompt": tc.system_prompt,
        "examples": examples_for(source, target, tc.examples),
        "no_repeat_ngram": tc.no_repeat_ngram,
        "min_confidence": tc.min_confidence,
        "sampler": make_sampler(temp=tc.temp, top_p=tc.top_p),
        "logits_processors": make_logits_processors(repetition_penalty=penalty),
    }
    kwargs.update(overrides)
    return StreamingTranslator(model, tokenizer, **kwargs)
