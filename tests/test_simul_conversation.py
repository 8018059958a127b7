"""A two-way conversation: words routed by their language, each direction exact and cached."""

from __future__ import annotations

import pytest
from test_simul_cache import tiny_model
from test_simul_engine import CharTokenizer, options

from juno.errors import JunoError
from juno.simul.conversation import Conversation
from juno.simul.engine import StreamingTranslator
from juno.simul.options import TranslateOptions

# A scripted stream of turns, as a language identifier would tag them.
TURNS = [
    ("en", "where is the pharmacy"),
    ("fr", "au bout de la rue"),
    ("en", "thank you so much"),
    ("fr", "de rien"),
]


def base():
    return options(wait_k=2, max_tokens_per_word=3, max_words_per_sentence=6)


def conversation(model) -> Conversation:
    return Conversation.create(model, CharTokenizer(), base(), ["en", "fr"])


def speak(conv: Conversation, turns=TURNS) -> list[tuple[str, str, list[str]]]:
    """Each turn word by word, the writer run after each word; no sentence end is given
    (the change of speaker ends a sentence). (source, target, words) per sentence."""
    done = []
    for language, text in turns:
        for word in text.split():
            conv.feed(word, language)
            for row, event in conv.events():
                if event.sentence_done:
                    r = conv.rows[row]
                    words = [w.text for w in event.sentence.target]
                    done.append((r.options.source_language, r.options.target_language, words))
    conv.end_sentence()
    for row, event in conv.events():
        if event.sentence_done:
            r = conv.rows[row]
            words = [w.text for w in event.sentence.target]
            done.append((r.options.source_language, r.options.target_language, words))
    return done


def test_each_turn_is_translated_into_the_other_language():
    model = tiny_model("qwen2")
    conv = conversation(model)
    done = speak(conv)
    assert [(s, t) for s, t, _ in done] == [("en", "fr"), ("fr", "en"), ("en", "fr"), ("fr", "en")]
    # Each direction writes what a one-way translator writes for the same sentence.
    for (source, target, words), (_, text) in zip(done, TURNS, strict=True):
        one_way = {**vars(base()), "source_language": source, "target_language": target}
        alone = StreamingTranslator(model, CharTokenizer(), TranslateOptions(**one_way))
        written = []
        for word in text.split():
            alone.feed(word)
            written += alone.step()
        written += alone.finish()
        assert words and words == [w.text for w in written], (source, words)
    assert conv.pending_words == 0


def test_two_prefixes_stay_cached_and_memory_is_flat_over_100_turns():
    model = tiny_model("qwen2")
    conv = conversation(model)
    prefixes = [row.prefix_slots for row in conv.rows]
    assert conv.rows[0].prompt.prefix != conv.rows[1].prompt.prefix  # each its own prompt
    sizes = []
    for n in range(100):
        speak(conv, [TURNS[n % len(TURNS)]])
        assert [row.cache.slots for row in conv.rows] == prefixes  # back to each prompt
        assert [row.prefix_slots for row in conv.rows] == prefixes  # never re-encoded
        sizes.append(conv.nbytes)
    assert sizes[-1] == sizes[9]  # the caches' buffers stopped growing after ten turns
    assert sum(row.stats.source_tokens for row in conv.rows) > 0


def test_a_conversation_needs_two_languages():
    model = tiny_model("qwen2")
    with pytest.raises(JunoError, match="two different languages"):
        Conversation.create(model, CharTokenizer(), base(), ["en", "en"])
    with pytest.raises(JunoError, match="one direction"):
        Conversation.create(model, CharTokenizer(), TranslateOptions(draft="lookup"), ["en", "fr"])
