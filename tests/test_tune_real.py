"""``juno tune`` on the real 0.5B model: it trains, writes an adapter, and the adapter streams."""

from __future__ import annotations

import json
import logging

import pytest

from juno import config
from juno.cli import main
from juno.config import Config
from juno.errors import JunoError
from juno.models.loading import load_llm
from juno.paths import flores_dev
from juno.simul.engine import StreamingTranslator
from juno.simul.examples import examples_for
from juno.simul.finetune import (
    ADAPTER_CONFIG,
    make_example,
    make_offline_example,
    streaming_loss,
)
from juno.simul.offline import offline_prompt, translate_offline
from juno.simul.options import TranslateOptions
from juno.simul.prompt import StreamPrompt

pytestmark = pytest.mark.real_weights


def test_tune_writes_an_adapter_that_lowers_its_loss_and_streams(llm_05b_path, tmp_path):
    out = tmp_path / "adapter"
    # Two steps on one pair: its own loss must fall.
    argv = ["tune", "--model", str(llm_05b_path), "--out", str(out), "--pairs", "en-fr"]
    argv += ["--lines", "100:101", "--held-out", "0", "--steps", "2", "--lr", "1e-4", "--ks", "3"]
    argv += ["--set", "translate.examples=0"]
    assert main(argv) == 0
    config = json.loads((out / ADAPTER_CONFIG).read_text())
    assert config["fine_tune_type"] == "lora" and config["juno"]["seconds_per_step"] > 0
    assert config["juno"]["base_model_folder"] == llm_05b_path.name

    cfg = Config()
    base, tokenizer, _ = load_llm(str(llm_05b_path), cfg)
    tuned, _, _ = load_llm(str(llm_05b_path), cfg, adapter=str(out))
    prompt = StreamPrompt.from_template(
        tokenizer, cfg.translate.system_prompt.format(source="English", target="French")
    )
    assert prompt.footer[0] in tokenizer.eos_token_ids  # the end token tune trains on
    en, fr = flores_dev("en")[100], flores_dev("fr")[100]
    ids = tokenizer.encode(fr, add_special_tokens=False)
    example = make_example(tokenizer, prompt, en.split(), ids, prompt.footer[0], 3, "source+32")
    assert streaming_loss(tuned, example).item() < streaming_loss(base, example).item() - 0.1

    # load_llm folds the adapter into the weights: no LoRA layer is left, and the logits
    # are mlx-lm's with the LoRA layers kept apart.
    import mlx.core as mx
    from mlx_lm import load

    assert not [name for name, m in tuned.named_modules() if hasattr(m, "lora_a")]
    apart, _ = load(str(llm_05b_path), adapter_path=str(out))
    apart.set_dtype(mx.float32)
    assert [name for name, m in apart.named_modules() if hasattr(m, "lora_a")]
    tokens = mx.array([tokenizer.encode(en)])
    assert mx.abs(tuned(tokens) - apart(tokens)).max().item() < 1e-3

    t = StreamingTranslator(tuned, tokenizer, TranslateOptions.from_config(cfg), examples=[])
    t.feed("The little girl is reading a book in the garden.")
    words = [w.text for w in t.finish()]
    assert words, "the tuned model wrote nothing"


def test_a_missing_adapter_is_a_one_line_error(llm_05b_path, tmp_path, capsys):
    argv = ["translate", "--model", str(llm_05b_path), str(tmp_path / "in.txt")]
    (tmp_path / "in.txt").write_text("Hello.\n")
    assert main([*argv, "--set", f"translate.adapter={tmp_path / 'none'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no adapter_config.json" in err[0]


def test_tune_on_the_models_own_translations_saves_and_trains_on_them(llm_05b_path, tmp_path):
    out = tmp_path / "adapter"
    argv = ["tune", "--model", str(llm_05b_path), "--out", str(out), "--pairs", "en-fr"]
    argv += ["--lines", "100:102", "--held-out", "0", "--steps", "1", "--targets", "model"]
    argv += ["--set", "translate.examples=0"]
    assert main(argv) == 0
    assert json.loads((out / ADAPTER_CONFIG).read_text())["juno"]["targets"] == "model"
    rows = [json.loads(line) for line in (out / "targets-en-fr.jsonl").read_text().splitlines()]
    assert [r["source"] for r in rows] == flores_dev("en")[100:102]

    # The targets are the base model's offline translations with the same prompt,
    # not the references.
    cfg = config.load(overrides=[config.parse_override("translate.examples=0")])
    model, tokenizer, _ = load_llm(str(llm_05b_path), cfg)
    first = translate_offline(model, tokenizer, cfg, rows[0]["source"], "en", "fr").text
    assert rows[0]["target"] == first and first != flores_dev("fr")[100]

    # A second run on the same sources reuses the saved translations.
    saved = out / "targets-en-fr.jsonl"
    rows[1]["target"] = "Une phrase gardée."
    saved.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    assert main(argv) == 0
    assert json.loads(saved.read_text().splitlines()[1])["target"] == "Une phrase gardée."

    # A teacher with example turns (the student keeps none) makes new targets: its own.
    assert main([*argv, "--teacher-examples", "en-fr=1", "--offline-share", "1"]) == 0
    rows = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [r["examples"] for r in rows] == [1, 1]
    assert rows[1]["target"] != "Une phrase gardée."
    one = config.load(overrides=[config.parse_override("translate.examples=1")])
    teacher = translate_offline(model, tokenizer, one, rows[0]["source"], "en", "fr")
    assert rows[0]["target"] == teacher.text
    recorded = json.loads((out / ADAPTER_CONFIG).read_text())["juno"]
    assert recorded["teacher_examples"] == {"en-fr": 1}
    assert recorded["options"]["offline_share"] == 1


def test_the_offline_layout_is_the_offline_prompt(llm_05b_path):
    """Word by word, the source stream's tokens are those of the offline chat (100 sentences)."""
    cfg = Config()
    _, tokenizer, _ = load_llm(str(llm_05b_path), cfg)
    for target, name in (("fr", "French"), ("de", "German")):
        system = cfg.translate.system_prompt.format(source="English", target=name)
        prompt = StreamPrompt.from_template(
            tokenizer, system, examples_for("en", target, cfg.translate.examples)
        )
        for text in flores_dev("en")[:100]:
            ex = make_offline_example(tokenizer, prompt, text.split(), [], prompt.footer[0])
            assert [*ex.source, *ex.target] == offline_prompt(tokenizer, cfg, text, "en", target)


def test_an_adapter_trained_on_another_model_is_a_warning(llm_05b_path, tmp_path, caplog):
    out = tmp_path / "adapter"
    argv = ["tune", "--model", str(llm_05b_path), "--out", str(out), "--pairs", "en-fr"]
    argv += ["--lines", "100:101", "--held-out", "0", "--steps", "1", "--ks", "3"]
    assert main(argv) == 0
    logging.getLogger().addHandler(caplog.handler)  # main's logging setup replaced it
    caplog.clear()
    load_llm(str(llm_05b_path), Config(), adapter=str(out))
    assert not [r for r in caplog.records if r.levelname == "WARNING"]

    config = json.loads((out / ADAPTER_CONFIG).read_text())
    config["juno"]["base_model_folder"] = "qwen2.5-3b-instruct"
    (out / ADAPTER_CONFIG).write_text(json.dumps(config))
    load_llm(str(llm_05b_path), Config(), adapter=str(out))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"adapter {out} was trained on qwen2.5-3b-instruct, not on {llm_05b_path.name}"
    ]

    (out / ADAPTER_CONFIG).write_text("{not json")
    with pytest.raises(JunoError, match="is not JSON"):
        load_llm(str(llm_05b_path), Config(), adapter=str(out))
