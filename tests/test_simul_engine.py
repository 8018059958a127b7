"""The streaming translator's loop on a tiny random model and a character tokenizer."""

from __future__ import annotations

import functools
import random
import string

import mlx.core as mx
import pytest
from mlx_lm.models import gemma2, qwen2

from juno.errors import JunoError
from juno.simul.engine import SentenceText, StreamingTranslator, common_prefix_len, fast_decode
from juno.simul.generate import stream_generate
from juno.simul.options import TranslateOptions, parse_phi
from juno.simul.prompt import StreamPrompt

CHARS = " " + string.ascii_letters + string.digits + string.punctuation  # ids 0..94
EOS, NEWLINE = len(CHARS), len(CHARS) + 1
VOCAB = len(CHARS) + 2


class CharTokenizer:
    """One token per character; a ChatML-like template with '\\n' as the turn marker."""

    eos_token_ids = {EOS}

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False, **kw):
        text = "".join(f"[{m['role']}]{m['content']}\n" for m in messages)
        return text + ("[assistant]" if add_generation_prompt else "")

    def encode(self, text, add_special_tokens=False):
        return [NEWLINE if c == "\n" else CHARS.index(c) for c in text]

    def decode(self, tokens):
        return "".join("\n" if t == NEWLINE else "" if t == EOS else CHARS[t] for t in tokens)


def tiny_qwen2(vocab: int = VOCAB):
    """A 2-layer qwen2 with random weights and ``vocab`` token embeddings."""
    args = qwen2.ModelArgs(
        model_type="qwen2",
        hidden_size=32,
        num_hidden_layers=2,
        intermediate_size=64,
        num_attention_heads=2,
        num_key_value_heads=1,
        rms_norm_eps=1e-5,
        vocab_size=vocab,
    )
    m = qwen2.Model(args)
    m.set_dtype(mx.float32)
    mx.eval(m.parameters())
    return m


@pytest.fixture(scope="module")
def model():
    mx.random.seed(3)
    return tiny_qwen2()


def favour(token: int, by: float = 1e4):
    """A logits processor that makes ``token`` the greedy choice whenever allowed."""
    bonus = mx.zeros((VOCAB,)).at[token].add(by)
    return lambda tokens, logits: logits + bonus


# The engine's tests start from the paper's plain writer; each adds the rules it tests.
PAPER = {
    "phi": "source",
    "read_on_sentence_end": False,
    "end_reads": 0,
    "examples": 0,
    "no_repeat_ngram": 0,
    "wait_k": 2,
    "catch_up": False,  # sentences given whole are read on the schedule
}
ENGINE_KEYWORDS = ("examples_given", "logits_processors", "cache")


def options(**fields) -> TranslateOptions:
    """Options from :data:`PAPER`, changed by ``fields``."""
    return TranslateOptions(**{**PAPER, **fields})


def translator(model, **kw) -> StreamingTranslator:
    engine = {k.removesuffix("_given"): kw.pop(k) for k in ENGINE_KEYWORDS if k in kw}
    return StreamingTranslator(model, CharTokenizer(), options(**kw), **engine)


def test_prompt_pieces_come_from_the_template():
    prompt = StreamPrompt.from_template(CharTokenizer(), "SYS")
    tok = CharTokenizer()
    assert tok.decode(prompt.prefix) == "[system]SYS\n[user]"
    assert tok.decode(prompt.footer) == "\n"
    assert tok.decode(prompt.header) == "[assistant]"


def test_example_turns_go_into_the_prefix_before_the_streamed_sentence():
    tok = CharTokenizer()
    prompt = StreamPrompt.from_template(tok, "SYS", [("one", "un"), ("two", "deux")])
    assert tok.decode(prompt.prefix) == (
        "[system]SYS\n[user]one\n[assistant]un\n[user]two\n[assistant]deux\n[user]"
    )
    assert tok.decode(prompt.header) == "[assistant]"


def test_phi_source_plus_n_starts_the_target_n_positions_after_the_source(model):
    for phi, gap in (("source", 0), ("source+16", 16)):
        t = translator(model, wait_k=2, phi=phi, max_tokens_per_word=2)
        t.feed("alpha beta")
        t.step()
        source_at_start = t.prefix_slots + len(CharTokenizer().encode("alpha beta"))
        assert t.cache.state.phi == source_at_start + gap


def test_no_repeat_ngram_keeps_a_looping_model_from_repeating_itself(model):
    # A model that wants "ab" forever: with the guard no letter trigram comes twice.
    a, b = CHARS.index("a"), CHARS.index("b")
    loop = mx.zeros((VOCAB,)).at[a].add(60.0).at[b].add(50.0)
    for n, repeats in ((0, True), (3, False)):
        t = translator(
            model,
            wait_k=1,
            max_tokens_per_word=4,
            max_words_per_sentence=4,
            logits_processors=[lambda tokens, logits: logits + loop],
            no_repeat_ngram=n,
            read_on_end=False,
        )
        t.feed("one two three four")
        t.end_sentence()
        text = "".join(e.piece for e in t.events())  # one token per character
        # Trigrams that end on a letter (digits, spaces and marks may repeat).
        grams = [text[i : i + 3] for i in range(len(text) - 2) if text[i + 2].isalpha()]
        assert len(grams) > 6, text
        assert (len(grams) != len(set(grams))) is repeats, text
    with pytest.raises(JunoError):
        translator(model, no_repeat_ngram=1)


def test_no_output_while_starved_then_words_trail_the_source(model):
    t = translator(model, wait_k=3, max_tokens_per_word=4)
    released = []
    for word in "one two three four five".split():
        t.feed(word)
        released.append([w.delay for w in t.step()])
    assert released[0] == [] and released[1] == []
    delays = [d for out in released for d in out]
    assert delays and all(d >= 3 + i for i, d in enumerate(delays))


def test_eos_is_masked_until_the_sentence_end_is_read(model):
    # Plain wait-k: a model that always wants to stop must keep writing while source can come.
    t = translator(
        model, wait_k=1, max_tokens_per_word=3, logits_processors=[favour(EOS)], read_on_end=False
    )
    t.feed("alpha beta gamma")
    written = t.step()
    assert len(written) >= 2  # wait-1 with 3 words read on demand
    before = t.policy.written
    assert t.finish() == []  # the end is read: EOS at once, nothing more written
    assert t.policy.written == 0 and before >= 2  # the next sentence starts clean


def test_a_model_that_wants_to_end_early_reads_instead(model):
    # k is a floor: the writer's wish to stop before the source end is a read.
    t = translator(model, wait_k=1, max_tokens_per_word=3, logits_processors=[favour(EOS)])
    t.feed("alpha beta gamma")
    assert t.step() == []  # every word read, nothing forced out
    assert t.policy.read == 3 and t.policy.extra == 3
    # Starved: the header's last token is out of the cache, waiting to be fed after a read.
    assert t.policy.held == t.prompt.header[-1]
    assert t.cache.target_len == len(t.prompt.header) - 1
    assert t.finish() == []  # the end is read: EOS, an empty translation
    assert t.cache.slots == t.prefix_slots


def test_after_end_reads_in_a_row_the_writer_goes_on_writing(model):
    # A model that has closed its sentence wants to end at every word; unlimited, it
    # reads the rest of the source without writing it. With end_reads=2 it reads two
    # words, then writes on with the ending tokens masked ("a" is its next choice).
    wants_end = [favour(CHARS.index("a"), 100.0), favour(EOS)]
    delays = {}
    for limit in (0, 2):
        t = translator(
            model, wait_k=1, max_tokens_per_word=1, logits_processors=wants_end, end_reads=limit
        )
        t.feed("alpha beta gamma delta epsilon zeta")
        live = t.step()
        assert all(w.text == "a" for w in live)
        delays[limit] = [w.delay for w in live]
        assert t.policy.read == 6 and t.finish() == []  # EOS as soon as it is allowed
    assert delays[0] == []
    # k=1: the first word is due after 1 word and comes after 2 more. Those 2 reads are
    # lag kept (k is a floor): the next word is due after 1 + 2 + 1 = 4 words, and the
    # wish to end, cleared by the write, again reads 2 more first.
    assert delays[2] == [3, 6]


def test_end_reads_must_not_be_negative(model):
    with pytest.raises(JunoError, match="end_reads"):
        translator(model, end_reads=-1)


def flatten(tokens, logits):
    """A model that is sure of nothing: "a" leads, at e / (e + VOCAB - 1) < 0.03."""
    return mx.zeros_like(logits) + mx.zeros((VOCAB,)).at[CHARS.index("a")].add(1.0)


def test_an_unsure_model_reads_on_and_a_sure_one_keeps_to_wait_k(model):
    sure = [favour(CHARS.index("a"))]
    delays = {}
    for name, processors, confidence in (
        ("plain", sure, 0.0),
        ("sure", sure, 0.9),
        ("unsure", [flatten], 0.05),
    ):
        t = translator(
            model,
            wait_k=1,
            max_tokens_per_word=2,
            max_words_per_sentence=3,
            logits_processors=processors,
            min_confidence=confidence,
        )
        t.feed("alpha beta gamma delta")
        live = t.step()
        if name == "unsure":
            # The best token is below 0.05: no word is started before the end.
            assert live == [] and t.policy.read == 4 and t.policy.extra == 0
        delays[name] = [w.delay for w in live + t.finish()]
    assert delays["sure"] == delays["plain"] == [1, 2, 3]
    assert delays["unsure"] == [4, 4, 4]


def test_min_confidence_must_be_a_probability(model):
    for bad in (-0.1, 1.0):
        with pytest.raises(JunoError, match="min_confidence"):
            translator(model, min_confidence=bad)


def test_a_full_stop_before_the_source_end_can_read_instead(model):
    period = CHARS.index(".")
    for opt_in in (False, True):
        t = translator(
            model,
            wait_k=1,
            max_tokens_per_word=3,
            logits_processors=[favour(period)],
            read_on_sentence_end=opt_in,
        )
        t.feed("alpha beta")
        t.step()
        # Off: the marks are written, one word per read. On: a mark is a wish to end,
        # so the words are read and nothing is written while more source may come.
        assert t.policy.read == 2
        assert t.policy.written == (0 if opt_in else 2)


def test_a_line_break_ends_the_translation_and_waits_for_the_source_end(model):
    t = translator(
        model, wait_k=1, max_tokens_per_word=3, logits_processors=[favour(NEWLINE, 50.0)]
    )
    t.feed("alpha beta")
    t.step()
    assert t.policy.read == 2  # the line break is not written while source can come
    events = list(t.events())
    t.end_sentence()
    events = list(t.events())
    assert events and events[-1].eos and events[-1].sentence_done
    assert all("\n" not in e.piece for e in events)


def test_each_sentence_returns_to_the_system_prompt(model):
    t = translator(model, max_tokens_per_word=3, max_words_per_sentence=4)
    sizes = set()
    for i in range(12):
        t.feed(f"sentence number {i} is here")
        t.finish()
        sizes.add(t.cache.slots)
        assert t.cache.target_len == 0
    assert sizes == {t.prefix_slots}
    # The buffers do not grow with the number of sentences.
    assert t.cache.nbytes == translator(model).cache.nbytes


def test_sentences_queued_ahead_are_translated_in_order(model):
    t = translator(model, max_tokens_per_word=2, max_words_per_sentence=3)
    t.feed("a b c")
    t.end_sentence()
    t.feed("d e")
    t.end_sentence()
    words = t.step()
    assert words and t.pending_words == 0
    assert t.cache.slots == t.prefix_slots


def test_stream_generate_responses(model):
    responses = list(
        stream_generate(
            model,
            CharTokenizer(),
            "one two three",
            wait_k=1,
            max_new_words=3,
            max_tokens_per_word=3,
            options=options(),
        )
    )
    assert responses[-1].finish_reason in ("stop", "length")
    finished = [r for r in responses if r.word_complete]
    assert 1 <= len(finished) <= 3
    assert [r.target_words_generated for r in finished] == sorted(
        r.target_words_generated for r in finished
    )


def test_phi_parsing():
    assert parse_phi("source") == "source"
    assert parse_phi("1024") == 1024 and parse_phi(0) == 0
    assert parse_phi("source+32") == parse_phi(" Source + 32 ") == "source+32"
    assert parse_phi("source+0") == "source"
    with pytest.raises(JunoError):
        parse_phi("source+-3")
    with pytest.raises(JunoError):
        parse_phi("source+x")
    with pytest.raises(JunoError):
        parse_phi("-1")
    with pytest.raises(JunoError):
        parse_phi("middle")


def test_unsupported_model_is_a_one_line_error():
    args = gemma2.ModelArgs(
        model_type="gemma2",
        hidden_size=32,
        num_hidden_layers=2,
        intermediate_size=64,
        num_attention_heads=2,
        head_dim=16,
        rms_norm_eps=1e-5,
        vocab_size=VOCAB,
        num_key_value_heads=1,
    )
    with pytest.raises(JunoError, match="gemma2") as info:
        translator(gemma2.Model(args))
    assert "\n" not in str(info.value)


def test_a_tokenizer_that_is_not_the_models_is_a_one_line_error():
    """Its ids past the model's embeddings would read outside the table (MLX does not check
    indices): the writer and a draft model refuse such a prompt before running anything."""
    from juno.simul.speculative import ModelDrafter

    small = tiny_qwen2(vocab=40)  # the character tokenizer's prompt has ids up to 96
    with pytest.raises(JunoError, match="40 token embeddings but the prompt has token id") as info:
        translator(small)
    assert "\n" not in str(info.value)
    with pytest.raises(JunoError, match="the draft model has 40 token embeddings"):
        ModelDrafter(small).on_prefix([3, 95, 7])
    ModelDrafter(small).on_prefix([3, 39, 7])  # every id has a row: it runs


def whole_decode_pieces(tokenizer, tokens) -> list[str]:
    """The text each token adds, decoding the whole sentence each time (the reference)."""
    pieces, text = [], ""
    for i in range(len(tokens)):
        new = tokenizer.decode(tokens[: i + 1])
        pieces.append(new[common_prefix_len(text, new) :])
        text = new
    return pieces


TEXTS = [
    "Le président a déclaré : « Nous irons à Genève le 9 mars à 9:30. »",
    "Die Straße war naß, über 30 °C – trotzdem gingen wir hinaus.",
    "日本語のテキストと emoji 🎉🎉 mixed with naïve café crème brûlée " * 3,
]


def check_sentence_text(tokenizer, vocab: int) -> None:
    """The writer's fast decoding equals the tokenizer's, and SentenceText's pieces and
    text equal whole-sentence decoding, for real texts, for random token runs (which split
    characters across tokens at every point), and for runs of bytes that never make a
    character (a looping model's); and the window it decodes stays short in every run, so
    the cost per token does not grow with the sentence."""
    rng = random.Random(0)
    pieces = [i for i in range(vocab) if "\ufffd" in tokenizer.decode([i])]  # bytes of a char
    assert pieces
    runs = [tokenizer.encode(text) for text in TEXTS]
    runs += [[rng.randrange(vocab) for _ in range(200)] for _ in range(5)]
    runs += [[pieces[0]] * 200, [rng.choice(pieces) for _ in range(200)]]
    mixed = [rng.choice(pieces) if rng.random() < 0.5 else rng.randrange(vocab) for _ in range(200)]
    runs.append(mixed)
    decode = fast_decode(tokenizer)
    assert isinstance(decode, functools.partial)  # the Rust tokenizer's own decode
    for tokens in runs:
        assert decode(tokens) == tokenizer.decode(tokens)
        text, added, window = SentenceText(tokenizer), [], 0
        for t in tokens:
            added.append(text.add(t))
            window = max(window, len(text.tokens) - text._anchor)  # tokens decoded next time
        assert added == whole_decode_pieces(tokenizer, tokens)
        assert text.text == tokenizer.decode(tokens)
        assert text._anchor > 0  # the window moved: the long runs did not decode from the start
        assert window <= SentenceText.WINDOW + SentenceText.SETTLE + 8  # not the run's length


def test_sentence_text_equals_decoding_the_whole_sentence_for_each_token(tmp_path):
    from mlx_lm.utils import load_tokenizer
    from pipeline import make_tokenizer

    vocab = make_tokenizer(tmp_path)
    check_sentence_text(load_tokenizer(tmp_path), vocab)


def test_a_source_word_that_continues_the_one_before_is_read_unspaced(model):
    """The transcriber's "cold" then "-hearted" (attached): the model reads "cold-hearted"."""
    from juno.transcriber.words import Word

    read = {}
    for attached in (False, True):
        t = translator(model, max_tokens_per_word=2, max_words_per_sentence=2)
        t.feed([Word("cold", 0.0, 0.3), Word("-hearted", 0.3, 0.6, attached=attached)])
        t.finish()
        read[attached] = t.stats.source_tokens
    assert read[False] - read[True] == 1  # the space before "-hearted"


def test_banned_ids_are_padded_to_few_sizes():
    from juno.simul.engine import _padded_ids

    assert _padded_ids(frozenset({5, 2})).tolist() == [2, 5, 2, 2, 2, 2, 2, 2]
    nine = frozenset(range(3, 12))
    assert _padded_ids(nine).tolist() == list(range(3, 12)) + [3] * 7
