"""``juno bench translate``'s quality part: option checks and the ``--hyps`` file."""

from __future__ import annotations

import json
import time

import pytest

from juno.cli import main
from juno.paths import flores_dev


@pytest.mark.parametrize(
    "options, message",
    [
        (["--pairs", "en-xx"], "--pairs: en-xx not available (en-fr, en-de, en-es)"),
        (["--settings", "plain/source"], "--settings: 'plain/source' is not POLICY/PHI/K"),
        (["--settings", "fancy/source/3"], "--policies: unknown fancy"),
        (["--ks", "three"], "is not POLICY/PHI/K"),
        (["--settings", "plain/later/3"], "phi must be 'source', 'source+N' or an integer"),
        (["--hyps", "/nonexistent/h.jsonl"], "--hyps: cannot write /nonexistent/h.jsonl"),
    ],
)
def test_bad_quality_options_fail_before_the_model_loads(options, message, tmp_path, capsys):
    # The model does not exist: an error about it would mean it was loaded first.
    args = ["bench", "translate", "--model", str(tmp_path / "none"), "--parts", "quality"]
    assert main([*args, *options]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_hyps_file_holds_every_row(tiny_llm, tmp_path):
    hyps = tmp_path / "hyps.jsonl"
    args = ["bench", "translate", "--model", str(tiny_llm), "--parts", "quality"]
    args += ["--sentences", "2", "--pairs", "en-fr,en-de", "--hyps", str(hyps)]
    args += ["--settings", "plain/source/2,plain/source/4,interleaved/source/3"]
    # Plain wait-k with short words, so the random model writes at every step.
    args += ["--set", "translate.examples=0", "--set", "translate.max_tokens_per_word=3"]
    assert main(args) == 0
    rows = [json.loads(line) for line in hyps.read_text().splitlines()]
    settings = ["offline/0", "plain/source/2", "plain/source/4", "interleaved/source/3"]
    assert [(r["pair"], r["setting"]) for r in rows] == [
        (pair, s) for pair in ("en-fr", "en-de") for s in settings
    ]
    n_words = [len(s.split()) for s in flores_dev("en", 2)]
    for row in rows:
        assert len(row["hyps"]) == len(row["delays"]) == 2
        for hyp, delays, n in zip(row["hyps"], row["delays"], n_words, strict=True):
            assert len(delays) == len(hyp.split()) > 0
            assert all(1 <= d <= n for d in delays)
            if row["setting"].startswith("offline"):
                assert set(delays) == {n}
            else:  # under wait-k no word is written before k source words are read
                assert min(delays) >= int(row["setting"].split("/")[2])


def test_offline_only(tiny_llm, tmp_path):
    hyps = tmp_path / "hyps.jsonl"
    args = ["bench", "translate", "--model", str(tiny_llm), "--parts", "quality"]
    args += ["--sentences", "1", "--pairs", "en-de", "--settings", "none", "--hyps", str(hyps)]
    args += ["--offline-examples", "1", "--set", "translate.examples=0"]
    assert main(args) == 0
    rows = [json.loads(line) for line in hyps.read_text().splitlines()]
    assert [r["setting"] for r in rows] == ["offline/0", "offline/1"]


@pytest.mark.parametrize(
    "options, message",
    [
        (["--shapes", "9b"], "--shapes: unknown 9b (choose from 0.5b, 1.5b, 3b, 7b)"),
        (["--shapes", "0.5b", "--parts", "speed,quality"], "--shapes measures speed only"),
        (["--shapes", "0.5b", "--tokenizer", "/nonexistent"], "no tokenizer.json there"),
    ],
)
def test_bad_shape_options_are_one_line(options, message, capsys):
    args = ["bench", "translate", "--parts", "speed", *options]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_speed_part_times_both_loops_and_mlx_lm(tiny_llm, capsys):
    """The speed part on a tiny model: decode rates side by side, the write times per word
    and per model call, and every model call counted (a header, source chunks, tokens)."""
    from juno.bench import translate
    from juno.config import load
    from juno.models.loading import load_llm

    cfg = load(None)
    model, tokenizer, _ = load_llm(str(tiny_llm), cfg)
    ratio = translate.part_speed(model, tokenizer, cfg, "tiny", random_weights=True)
    translate.part_word_times(model, tokenizer, cfg, "tiny", sentences=2, random_weights=True)
    out = capsys.readouterr().out
    assert ratio > 0 and f"synced (the default here): {ratio:.3f}x mlx-lm" in out
    rows = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│ ")]
    for row in ("juno,", "juno, synced", "mlx-lm"):  # ("pipelined" wraps at 80 columns)
        assert row in rows
    assert "target word" in out and "model call" in out
    assert "where a token's time goes" in out and "dispatch" in out


def test_host_timer_splits_a_tokens_time_and_restores_mlx():
    """Dispatch (inside mx.eval / mx.async_eval) and wait (inside .item()) are timed per
    token, within the token's wall time; mlx's functions are the same objects after."""
    import mlx.core as mx

    from juno.bench.translate import _HostTimer

    saved = (mx.eval, mx.async_eval, mx.array.item)
    x = mx.random.normal((256, 256))

    def tokens():
        for _ in range(4):
            y = x @ x
            mx.eval(y)
            yield int(mx.argmax(y).item())
            time.sleep(0.002)  # Python work

    with _HostTimer() as timer:
        rows, n = timer.per_token(tokens())
    assert (mx.eval, mx.async_eval, mx.array.item) == saved
    assert n == 4 and len(rows) == 3
    for wall, dispatch, wait, rest in rows:
        assert dispatch > 0 and wait > 0
        assert dispatch + wait < wall
        assert rest >= 0.002  # wall - dispatch - wait: the Python work


def test_random_weights_write_the_reference_they_are_given(tiny_llm):
    """The word-times part on random weights: the model writes FLORES's French, sentence
    by sentence, so its words are real words, and each sentence ends after its last."""
    from juno.bench import translate
    from juno.config import load
    from juno.models.loading import load_llm
    from juno.simul.policy import join_words

    cfg = load(None)
    model, tokenizer, _ = load_llm(str(tiny_llm), cfg)
    # (No full stop inside: a sentence's end mid-source is the writer's to refuse.)
    refs = ["Le chat gris dort sur le canapé rouge", "Aujourd'hui, il fait très beau à Paris"]
    reference = translate._Reference(tokenizer, refs)
    translator = translate._translator(
        model, tokenizer, cfg, "fr", processors=[reference], wait_k=3, no_repeat_ngram=0,
        max_tokens_per_word=50,
    )  # fmt: skip
    for source, ref in zip(
        ["The grey cat sleeps on the red sofa", "It is sunny in Paris today"], refs, strict=True
    ):
        translator.feed(source.split())
        assert join_words(translator.finish()) == ref


def test_catch_up_part_runs_both_readings(tiny_llm, capsys):
    """Both rows on a tiny model spoken fast: catching up reads fewer chunks."""
    args = ["bench", "translate", "--model", str(tiny_llm), "--parts", "catch-up"]
    args += ["--pairs", "en-fr", "--catch-up-sentences", "2", "--catch-up-rate", "1000"]
    args += ["--set", "translate.examples=0", "--set", "translate.max_tokens_per_word=3"]
    assert main(args) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "en→fr" in line]
    assert len(rows) == 2 and "lazy" in rows[0] and "catch up" in rows[1]
    reads = [int(line.split("│")[-3]) for line in rows]
    assert reads[1] < reads[0], reads  # 1000 words/s: everything waits, read in one go


def test_sentence_lags_are_from_arrival_to_the_first_word_written_after_reading():
    from juno.bench.catch_up import sentence_lags
    from juno.eval.timeline import Arrival, Written

    arrivals = [Arrival(1.0, "a"), Arrival(2.0, "b"), Arrival(3.0, "c", True)]
    written = [Written("x", 2.5, 2), Written("y", 3.25, 3), Written("z", 3.5, 3)]
    assert sentence_lags(arrivals, written) == [1.5, 0.5, 0.25]
    assert sentence_lags(arrivals, written[:1]) == [1.5, 0.5]  # "c": nothing after it


@pytest.mark.parametrize("options", [["--catch-up-rate", "0"], ["--catch-up-sentences", "0"]])
def test_bad_catch_up_options_fail_before_the_model_loads(options, tmp_path, capsys):
    args = ["bench", "translate", "--model", str(tmp_path / "none"), "--parts", "catch-up"]
    assert main([*args, *options]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--catch-up-rate must be positive" in err[0]
