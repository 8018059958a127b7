"""Streaming-aware fine-tuning trains on exactly what the engine computes.

The engine streams a sentence on a tiny random model and records the logits
it sampled each token from; the training layout of the same (source, output)
pair must give the same rows. Then a few LoRA steps on the tiny model lower
the training loss, and the saved adapter loads back through mlx-lm.
"""

from __future__ import annotations

import json
from dataclasses import replace

import mlx.core as mx
import pytest
from test_simul_cache import TOLERANCE, tiny_model
from test_simul_engine import EOS, CharTokenizer, options

from juno.cli import main
from juno.errors import JunoError
from juno.simul.engine import StreamingTranslator
from juno.simul.finetune import (
    ADAPTER_CONFIG,
    TuneOptions,
    add_lora,
    make_example,
    make_offline_example,
    save_adapter,
    streaming_logits,
    streaming_loss,
    train,
)
from juno.simul.prompt import StreamPrompt, chat_messages

SOURCE = "the cat sat on the mat today"


def engine_trace(phi, k=2, max_tokens_per_word=3):
    """Stream SOURCE through a plain engine; (translator, sampled tokens, their logit rows)."""
    rows: list[mx.array] = []
    state: dict = {}

    def record(tokens, logits):
        rows.append(logits[0])
        # End the translation a few tokens after the source end is read.
        if state["t"].policy.end_read:
            state["after_end"] = state.get("after_end", 0) + 1
            if state["after_end"] >= 4:
                return logits + mx.zeros(logits.shape[-1:]).at[EOS].add(1e4)
        return logits

    t = StreamingTranslator(
        tiny_model("qwen2"),
        CharTokenizer(),
        options(
            wait_k=k,
            phi=phi,
            max_tokens_per_word=max_tokens_per_word,
            one_line=False,
            read_on_end=False,
        ),
        logits_processors=[record],
    )
    state["t"] = t
    t.feed(SOURCE)
    tokens = [e.token for e in t.events()]
    t.end_sentence()
    tokens += [e.token for e in t.events()]
    return t, tokens, rows


@pytest.mark.parametrize("phi", ["source", "source+16", 0, 1024])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_training_rows_equal_the_engine_rows(phi, k):
    t, tokens, rows = engine_trace(phi, k)
    assert tokens[-1] == EOS and len(tokens) >= 6
    ex = make_example(t.tokenizer, t.prompt, SOURCE.split(), tokens[:-1], EOS, k, phi, 3)
    assert ex.labels == tuple(tokens)
    logits = streaming_logits(t.model, ex)
    start = ex.label_start - 1
    diffs = [mx.abs(logits[start + i] - row).max().item() for i, row in enumerate(rows)]
    assert len(diffs) == len(tokens)
    assert max(diffs) <= TOLERANCE, max(diffs)
    # Some target rows saw only part of the source: the layout is streaming, not offline.
    assert min(ex.seen) < len(ex.source)


def test_a_wrong_schedule_gives_other_rows():
    """Negative control: the same pair laid out under another k does not match the engine."""
    t, tokens, rows = engine_trace("source", k=2)
    ex = make_example(t.tokenizer, t.prompt, SOURCE.split(), tokens[:-1], EOS, 3, "source", 3)
    logits = streaming_logits(t.model, ex)
    start = ex.label_start - 1
    assert max(mx.abs(logits[start + i] - row).max().item() for i, row in enumerate(rows)) > 1e-2


def test_the_layout_follows_wait_k():
    tok = CharTokenizer()
    prompt = StreamPrompt.from_template(tok, "Translate.")
    words = ["ab", "cd", "ef"]
    target = tok.encode("x yz w")
    ex = make_example(tok, prompt, words, target, EOS, k=2, phi="source+5")
    prefix = len(prompt.prefix)
    two_words = prefix + len("ab cd")
    assert ex.phi == two_words + 5
    header = len(prompt.header)
    # The header and the first word see two source words; "yz" sees three; "w" the end too.
    assert ex.seen[:header] == (two_words,) * header
    assert ex.seen[header] == two_words  # "x"
    everything = prefix + len("ab cd ef") + len(prompt.footer)
    assert set(ex.seen[header + 1 :]) <= {prefix + len("ab cd ef"), everything}
    assert ex.seen[-1] == everything
    assert ex.labels == (*target, EOS)
    with pytest.raises(JunoError):
        make_example(tok, prompt, [], target, EOS, k=2)


def test_lora_steps_lower_the_loss_and_the_adapter_loads_back(tmp_path):
    from mlx_lm.tuner.utils import load_adapters

    t, tokens, _ = engine_trace("source+16")
    tok, prompt = t.tokenizer, t.prompt
    pairs = [("the cat sat on the mat", "le chat"), ("a dog ran far", "un chien")]

    def builder(src, tgt):
        ids = tok.encode(tgt)
        return lambda k: make_example(tok, prompt, src.split(), ids, EOS, k, "source+16")

    model = tiny_model("qwen2")
    options = TuneOptions(steps=30, learning_rate=1e-2, rank=4, ks=(1, 2), phi="source+16")
    lora = add_lora(model, options)
    held = [builder(*pairs[0])(2)]
    report = train(model, [builder(s, g) for s, g in pairs], held, options)
    assert report.steps == 30 and report.tokens > 0 and report.seconds > 0
    assert report.held_out_after < report.held_out_before
    assert report.last_loss < report.first_loss
    save_adapter(model, tmp_path, lora, options, {"pairs": 2})
    config = json.loads((tmp_path / ADAPTER_CONFIG).read_text())
    assert config["fine_tune_type"] == "lora" and config["juno"]["options"]["rank"] == 4

    fresh = tiny_model("qwen2")
    before = streaming_loss(fresh, held[0]).item()
    load_adapters(fresh, str(tmp_path))
    after = streaming_loss(fresh, held[0]).item()
    assert abs(after - report.held_out_after) < 1e-4
    assert after < before


def test_gradient_clipping_reaches_the_optimizer():
    t, _, _ = engine_trace("source+16")
    tok, prompt = t.tokenizer, t.prompt
    ids = tok.encode("le chat")
    example = make_example(tok, prompt, "the cat sat".split(), ids, EOS, 2, "source+16")

    def loss_after_steps(max_grad_norm):
        model = tiny_model("qwen2")
        options = TuneOptions(steps=5, learning_rate=1e-2, rank=4, ks=(2,))
        add_lora(model, replace(options, max_grad_norm=max_grad_norm))
        train(model, [lambda k: example], [], replace(options, max_grad_norm=max_grad_norm))
        return streaming_loss(model, example).item()

    start = streaming_loss(tiny_model("qwen2"), example).item()
    # Gradients clipped far below Adam's epsilon hardly move the weights; unclipped ones do
    # (by 0.05-0.1 here, depending on the random weights of the installed MLX).
    assert abs(loss_after_steps(1e-12) - start) < 1e-3
    assert loss_after_steps(0.0) < start - 0.02


def test_the_offline_layout_is_the_plain_chat_in_one_causal_pass():
    tok = CharTokenizer()
    prompt = StreamPrompt.from_template(tok, "Translate.")
    target = tok.encode("le chat")
    ex = make_offline_example(tok, prompt, SOURCE.split(), target, EOS)
    # The tokens are the offline chat's, and every target row sees all of the source
    # at positions that continue after it.
    chat = tok.apply_chat_template(chat_messages("Translate.", SOURCE), add_generation_prompt=True)
    assert [*ex.source, *ex.target] == tok.encode(chat) + target
    S = len(ex.source)
    assert ex.phi == S and set(ex.seen) == {S} and ex.labels == (*target, EOS)
    model = tiny_model("qwen2")
    plain = model(mx.array([[*ex.source, *ex.target]]))[0, S:]
    assert mx.abs(streaming_logits(model, ex) - plain).max().item() < TOLERANCE


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_the_offline_share_of_steps_is_laid_out_offline(share):
    tok = CharTokenizer()
    prompt = StreamPrompt.from_template(tok, "Translate.")
    ids = tok.encode("le chat")
    asked: list[int | None] = []

    def builder(k):
        asked.append(k)
        if k is None:
            return make_offline_example(tok, prompt, "the cat sat".split(), ids, EOS)
        return make_example(tok, prompt, "the cat sat".split(), ids, EOS, k, "source+16")

    model = tiny_model("qwen2")
    options = TuneOptions(steps=40, rank=4, ks=(2, 3), offline_share=share)
    add_lora(model, options)
    train(model, [builder], [], options)
    offline = asked.count(None)
    assert len(asked) == 40 and set(asked) - {None} <= {2, 3}
    assert {0.0: offline == 0, 0.5: 10 <= offline <= 30, 1.0: offline == 40}[share]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--offline-share", "1.5"], "--offline-share must be between 0 and 1"),
        (["--teacher-examples", "2"], "--teacher-examples is for --targets model"),
        (["--targets", "model", "--teacher-examples", "en-fr=1"], "a count >= 0 for each of"),
        (["--targets", "model", "--teacher-examples", "two"], "must be N or PAIR=N"),
        (["--pairs", "en-xx"], "--pairs: en-xx not available (en-fr, en-de, en-es)"),
        (["--pairs", "fr-en"], "--pairs: fr-en not available"),
        (["--pairs", ","], "--pairs: no language pair given"),
    ],
)
def test_bad_tune_options_are_one_line_errors(options, message, tmp_path, capsys):
    assert main(["tune", "--out", str(tmp_path / "a"), *options]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "a").exists()
