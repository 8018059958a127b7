"""``juno tune`` on the real 0.5B model: it trains, writes an adapter, and the adapter streams."""

from __future__ import annotations

import json

import pytest

from juno import config
from juno.bench.translate import _flores
from juno.cli import main
from juno.config import Config
from juno.models.loading import load_llm
from juno.simul.build import make_translator
from juno.simul.finetune import ADAPTER_CONFIG, make_example, streaming_loss
from juno.simul.offline import translate_offline
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

    cfg = Config()
    base, tokenizer, _ = load_llm(str(llm_05b_path), cfg)
    tuned, _, _ = load_llm(str(llm_05b_path), cfg, adapter=str(out))
    prompt = StreamPrompt.from_template(
        tokenizer, cfg.translate.system_prompt.format(source="English", target="French")
    )
    assert prompt.footer[0] in tokenizer.eos_token_ids  # the end token tune trains on
    en, fr = _flores("en")[100], _flores("fr")[100]
    ids = tokenizer.encode(fr, add_special_tokens=False)
    example = make_example(tokenizer, prompt, en.split(), ids, prompt.footer[0], 3, "source+32")
    assert streaming_loss(tuned, example).item() < streaming_loss(base, example).item() - 0.1

    t = make_translator(tuned, tokenizer, cfg, source="en", target="fr", examples=[])
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
    assert [r["source"] for r in rows] == _flores("en")[100:102]

    # The targets are the base model's offline translations with the same prompt,
    # not the references.
    cfg = config.load(overrides=[config.parse_override("translate.examples=0")])
    model, tokenizer, _ = load_llm(str(llm_05b_path), cfg)
    first = translate_offline(model, tokenizer, cfg, rows[0]["source"], "en", "fr").text
    assert rows[0]["target"] == first and first != _flores("fr")[100]
