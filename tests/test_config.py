"""Config: defaults, file and command-line precedence, unknown keys, wrong types."""

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from juno import config
from juno.errors import JunoError

ROOT = Path(__file__).resolve().parent.parent


def _flatten(obj, prefix=""):
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            out.update(_flatten(getattr(obj, f.name), f"{prefix}{f.name}."))
        return out
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def test_defaults_for_a_mac_user():
    cfg = config.load()
    assert cfg.source_language == "en" and cfg.target_language == "fr"
    assert cfg.translate.wait_k == 3
    assert cfg.transcribe.model.startswith("mlx-community/whisper")
    assert re.match(r"mlx-community/Qwen2\.5-(1\.5|3)B-Instruct-4bit", cfg.translate.model)


def test_config_yaml_lists_every_key_with_its_default_and_a_comment():
    path = ROOT / "config.yaml"
    from_file = _flatten(yaml.safe_load(path.read_text()))
    defaults = _flatten(config.Config())
    assert set(from_file) == set(defaults)
    assert config.load(path) == config.Config()
    for line in path.read_text().splitlines():
        if re.match(r"^\s*\w+:\s*\S", line):
            assert "  # " in line, f"config.yaml key without a comment: {line}"


def test_file_overrides_defaults_and_command_line_overrides_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("target_language: de\ntranslate:\n  wait_k: 5\n  temp: 1\n")
    cfg = config.load(path)
    assert (cfg.target_language, cfg.translate.wait_k, cfg.translate.temp) == ("de", 5, 1.0)
    assert cfg.translate.max_tokens_per_word == 50  # untouched default
    cfg = config.load(path, [config.parse_override("translate.wait_k=7")])
    assert (cfg.target_language, cfg.translate.wait_k) == ("de", 7)


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("translate:\n  wait_kk: 5\n")
    with pytest.raises(JunoError, match=r"c\.yaml: unknown config key 'translate\.wait_kk'"):
        config.load(path)
    path.write_text("colour: blue\n")
    with pytest.raises(JunoError, match="unknown config key 'colour'"):
        config.load(path)


def test_wrong_type_is_one_line_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("translate:\n  wait_k: three\n")
    with pytest.raises(JunoError, match=r"'translate\.wait_k' must be int, got 'three'") as e:
        config.load(path)
    assert "\n" not in str(e.value)
    path.write_text("display:\n  mode: fancy\n")
    with pytest.raises(JunoError, match="display.mode"):
        config.load(path)
    path.write_text("translate: 3\n")
    with pytest.raises(JunoError, match="section"):
        config.load(path)


def test_bad_yaml_and_missing_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("translate: [unclosed\n")
    with pytest.raises(JunoError, match="not valid YAML"):
        config.load(path)
    with pytest.raises(JunoError, match="cannot read config file"):
        config.load(tmp_path / "missing.yaml")


def test_command_line_override_syntax():
    with pytest.raises(JunoError, match="KEY=VALUE"):
        config.parse_override("translate.wait_k")
    with pytest.raises(JunoError, match="unknown config key 'translate.nope'"):
        config.load(None, [config.parse_override("translate.nope=1")])
    cfg = config.load(None, [config.parse_override("capture.device=3")])
    assert cfg.capture.device == "3"


def test_round_trip_through_plain_data():
    cfg = config.load(None, [config.parse_override("translate.wait_k=4")])
    assert config.from_dict(config.to_dict(cfg)) == cfg


def test_several_target_languages_as_a_list_or_joined_by_commas(tmp_path):
    assert config.load().target_languages == ["fr"]
    path = tmp_path / "c.yaml"
    path.write_text("target_language: [fr, de, es]\n")
    assert config.load(path).target_languages == ["fr", "de", "es"]
    joined = config.load(None, [{"target_language": "fr, de"}])
    assert joined.target_languages == ["fr", "de"]
    sent = config.from_dict(config.to_dict(config.load(path)))  # as child processes get it
    assert sent.target_languages == ["fr", "de", "es"]
    for bad, message in (
        ("[fr, de, fr]", "target_language: fr given twice"),
        ("[]", "target_language: no language given"),
        ("[fr, xx]", "xx"),
        ("{fr: 1}", "must be str or a list of str"),
    ):
        path.write_text(f"target_language: {bad}\n")
        with pytest.raises(JunoError, match=re.escape(message)):
            config.load(path)


def test_a_one_language_command_refuses_several_targets():
    from juno.simul.options import TranslateOptions

    cfg = config.load(None, [{"target_language": "fr,de"}])
    with pytest.raises(JunoError, match=r"several target languages \(fr, de\)"):
        TranslateOptions.from_config(cfg)
    assert TranslateOptions.from_config(cfg, "de").target_language == "de"


def test_conversation_keys_are_checked():
    assert config.load(None, [{"conversation": {"pair": "en,fr"}}]).pair == ["en", "fr"]
    for over, message in (
        ({"pair": "en,en"}, "conversation.pair: two different languages"),
        ({"identify_speech_s": 0}, "conversation.identify_speech_s must be positive"),
        ({"identify_confidence": 1.5}, "conversation.identify_confidence must be within 0 and 1"),
        ({"identify_max_speech_s": 0.5}, "identify_max_speech_s must be at least identify_"),
    ):
        with pytest.raises(JunoError, match=re.escape(message)):
            config.load(None, [{"conversation": over}])


def test_transcribe_probabilities_are_checked():
    assert config.load(None, [{"transcribe": {"recheck_full_ctx_below": 0}}])
    for key in ("min_word_probability", "recheck_full_ctx_below"):
        with pytest.raises(JunoError, match=re.escape(f"transcribe.{key} must be within 0 and 1")):
            config.load(None, [{"transcribe": {key: 1.2}}])
