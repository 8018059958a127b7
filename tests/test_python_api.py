"""The Python API (``from juno import load, stream_generate``): the README's examples run as
written, a call in the streaming-LLM fork's form runs unchanged, and the words are those
of ``juno translate`` for the same sentence and config."""

from __future__ import annotations

import queue
import re
import threading
from pathlib import Path

import pytest

import juno
from juno.cli import main
from juno.simul import generate

README = Path(__file__).resolve().parent.parent / "README.md"
TEXT = "The little girl is reading a book in the garden. She likes it."


def python_api_blocks() -> list[str]:
    section = README.read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


@pytest.fixture(scope="module")
def writing_llm(tiny_llm, tmp_path_factory) -> Path:
    """The tiny random model, made to write: the end-of-turn and line-break tokens' tied
    embeddings are zeroed, so they are never its choice and it writes words until the
    runaway guard ends each sentence (untouched, it ends every sentence at once)."""
    import shutil

    import mlx.core as mx
    from mlx_lm import load

    folder = tmp_path_factory.mktemp("models") / "writing-qwen2"
    shutil.copytree(tiny_llm, folder)
    _, tokenizer = load(str(folder))
    ends = set(tokenizer.eos_token_ids)
    ends |= {i for i in range(len(tokenizer._tokenizer)) if "\n" in tokenizer.decode([i])}
    weights = mx.load(str(folder / "model.safetensors"))
    embed = weights["model.embed_tokens.weight"]
    weights["model.embed_tokens.weight"] = embed.at[mx.array(sorted(ends))].multiply(0.0)
    mx.save_safetensors(str(folder / "model.safetensors"), weights)
    return folder


@pytest.fixture()
def tiny_load(writing_llm, monkeypatch):
    """``juno.load`` loads the tiny model, whatever spec it is given."""
    real = generate.load
    monkeypatch.setattr(generate, "load", lambda spec, adapter_path=None: real(str(writing_llm)))


def joined(responses) -> list[str]:
    """The translation as ``juno translate`` prints it: a line per sentence."""
    lines, line = [], ""
    for r in responses:
        if r.word_complete:
            line += r.text if (not line or r.attached) else " " + r.text
        if r.sentence_end:
            lines.append(line)
            line = ""
    return lines + ([line] if line else [])


def test_the_readme_examples_run_as_written(tiny_load, capsys):
    blocks = python_api_blocks()
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
        out = capsys.readouterr().out
        assert out.split(), f"the example printed nothing:\n{block}"


def test_a_call_in_the_forks_form_runs_unchanged(tiny_load):
    model, tokenizer = juno.load("Qwen/Qwen2.5-0.5B-Instruct")
    source_queue = queue.Queue()

    def feed_text():
        source_queue.put("Hello, how are ")
        source_queue.put("you doing today?")
        source_queue.put(None)

    threading.Thread(target=feed_text).start()
    responses = list(
        juno.stream_generate(
            model=model,
            tokenizer=tokenizer,
            source_queue=source_queue,
            wait_k=3,
            max_new_words=20,
            system_prompt="Translate to French",
            temp=0.7,
        )
    )
    words = [r for r in responses if r.word_complete]
    assert 1 <= len(words) <= 20
    assert [r.target_words_generated for r in words] == list(range(1, len(words) + 1))
    assert all(r.source_words_read >= 3 for r in words)
    assert responses[-1].finish_reason in ("stop", "length")
    for r in responses:
        for field in ("text", "token", "source_words_read", "generation_tps", "peak_memory"):
            assert hasattr(r, field)


def test_the_forks_prompt_form_and_a_named_language(tiny_load):
    model, tokenizer = juno.load("Qwen/Qwen2.5-0.5B-Instruct")
    seen = {}
    original = generate.StreamingTranslator

    def spy(model, tokenizer, options, **kw):
        seen["options"] = options
        return original(model, tokenizer, options, **kw)

    generate.StreamingTranslator = spy
    try:
        list(
            juno.stream_generate(
                model,
                tokenizer,
                prompt="Good morning.",
                wait_k=2,
                system_prompt="Translate to German",
            )
        )
    finally:
        generate.StreamingTranslator = original
    options = seen["options"]
    assert (options.target_language, options.wait_k) == ("de", 2)
    assert options.system() == "Translate to German"


def test_bad_calls_get_one_line_errors(tiny_load):
    model, tokenizer = juno.load("x")
    with pytest.raises(juno.errors.JunoError, match="a prompt or a source_queue"):
        list(juno.stream_generate(model, tokenizer))
    with pytest.raises(juno.errors.JunoError, match="wait-k needs k >= 1"):
        list(juno.stream_generate(model, tokenizer, prompt="Hi.", wait_k=0))


def _same_words_as_juno_translate(model_path: Path, tmp_path, capsys) -> list[str]:
    text = tmp_path / "source.txt"
    text.write_text(TEXT + "\n")
    assert main(["translate", str(text), "--model", str(model_path)]) == 0
    cli_lines = capsys.readouterr().out.splitlines()
    model, tokenizer = generate.load(str(model_path))
    api_lines = joined(juno.stream_generate(model, tokenizer, prompt=TEXT))
    assert api_lines == cli_lines
    return api_lines


def test_the_words_are_those_of_juno_translate(writing_llm, tmp_path, capsys):
    lines = _same_words_as_juno_translate(writing_llm, tmp_path, capsys)
    assert len(lines) == 2 and all(lines)


@pytest.mark.real_weights
def test_the_words_are_those_of_juno_translate_real(llm_05b_path, tmp_path, capsys):
    lines = _same_words_as_juno_translate(llm_05b_path, tmp_path, capsys)
    assert len(lines) == 2
    assert {"fille", "livre", "jardin"} & set(re.findall(r"\w+", lines[0].lower()))
