"""``TranslateOptions``: built once from the config, every check in it; every command's flag
reaches it through the one config-override path."""

from __future__ import annotations

import re
from dataclasses import fields, replace

import pytest

from juno import config
from juno.cli import build_parser, load_config, main
from juno.errors import JunoError
from juno.simul.options import TranslateOptions


def test_the_defaults_are_the_configs():
    assert TranslateOptions.from_config(config.Config()) == TranslateOptions()
    # Every option the config has, it takes from the config.
    section = {f.name for f in fields(config.TranslateConfig)}
    shared = {f.name for f in fields(TranslateOptions)} & section
    # (cpu_threads is the process's, not the writer's)
    assert shared == section - {"model", "adapter", "cpu_threads"}


def test_from_config_takes_languages_and_keys():
    cfg = config.load(
        None,
        [
            {"target_language": "de", "translate": {"wait_k": 5, "phi": "source+0"}},
            {"translate": {"no_repeat_ngram": 0}},
        ],
    )
    options = TranslateOptions.from_config(cfg)
    assert (options.target_language, options.wait_k, options.phi) == ("de", 5, "source")
    assert options.no_repeat_ngram == 0
    assert options.system() == (
        "Translate the following English text into German. Output only the translation."
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"wait_k": 0}, "wait-k needs k >= 1, got 0"),
        ({"phi": "middle"}, "phi must be 'source', 'source+N' or an integer"),
        ({"phi": -2}, "phi must not be negative"),
        ({"end_reads": -1}, "end_reads must be 0 (no limit) or more"),
        ({"no_repeat_ngram": 1}, "no_repeat_ngram must be 0 (off) or at least 2"),
        ({"min_confidence": 1.0}, "min_confidence must be in [0, 1)"),
        ({"max_tokens_per_word": 0}, "max_tokens_per_word must be at least 1"),
        ({"examples": -1}, "examples must not be negative"),
        ({"top_p": 0.0}, "top_p must be in (0, 1]"),
        ({"temp": -0.5}, "temp must not be negative"),
        ({"target_language": "xx"}, "unknown language code 'xx'"),
        ({"system_prompt": "Translate into {language}"}, "only the fields {source} and {target}"),
    ],
)
def test_every_check_is_in_the_options(change, message):
    with pytest.raises(JunoError, match=re.escape(message)):
        TranslateOptions(**change)
    with pytest.raises(JunoError, match="wait-k"):  # replace runs the same checks
        replace(TranslateOptions(), wait_k=0)
    # A config with the bad value is refused when loaded, naming where it came from.
    if "language" not in next(iter(change)):
        with pytest.raises(JunoError, match="^command line: "):
            config.load(None, [{"translate": change}])


def test_language_names_become_codes():
    options = TranslateOptions(source_language="English", target_language="french")
    assert (options.source_language, options.target_language) == ("en", "fr")


def _config(*argv: str) -> config.Config:
    return load_config(build_parser().parse_args(list(argv)))


def test_flags_reach_the_config_keys():
    cfg = _config("run", "--wait-k", "5", "--target", "de", "--fast", "--device", "2")
    assert cfg.translate.wait_k == 5 and cfg.target_language == "de"
    assert cfg.capture.file_pace == "fast" and cfg.capture.device == "2"
    cfg = _config("translate", "--phi", "source+8", "--model", "m", "--source", "es")
    assert (cfg.translate.phi, cfg.translate.model, cfg.source_language) == ("source+8", "m", "es")
    cfg = _config("eval", "x.jsonl", "--llm", "l", "--whisper", "w", "--phi", "7")
    assert (cfg.translate.model, cfg.transcribe.model, cfg.translate.phi) == ("l", "w", "7")
    assert _config("transcribe", "a.wav", "--language", "fr").source_language == "fr"
    # Given both, --set has the last word; a command's own default is a default only.
    assert _config("run", "--wait-k", "5", "--set", "translate.wait_k=4").translate.wait_k == 4
    assert _config("bench", "translate").translate.model == "qwen2.5-coder-0.5b-instruct"
    assert _config("bench", "translate", "--set", "translate.model=x").translate.model == "x"
    assert _config("run").translate.wait_k == config.TranslateConfig().wait_k


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--wait-k", "0"],
        ["translate", "--wait-k", "0"],
        ["bench", "translate", "--wait-k", "0"],
        ["eval", "x.jsonl", "--set", "translate.wait_k=0"],
        ["tune", "--out", "x", "--set", "translate.wait_k=0"],
    ],
)
def test_a_bad_k_is_the_same_one_line_error_everywhere(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["juno: error: command line: wait-k needs k >= 1, got 0"]
