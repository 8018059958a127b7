"""The wait-k stepper on scripted input: no model, no MLX."""

from __future__ import annotations

import random

import pytest

from juno.simul.policy import (
    Action,
    NgramIndex,
    WaitK,
    ends_word,
    join_words,
    repeated_ngram_bans,
    starts_new_word,
)

EOS = -1


class Script:
    """Plays the engine: executes actions, samples scripted pieces, logs what happened."""

    def __init__(self, policy: WaitK, pieces: list[str]):
        self.policy = policy
        self.pieces = list(pieces)  # what the "model" samples, in order ("<eos>" = EOS)
        self.sampled = list(pieces)  # token id i is the i-th scripted piece
        self.log: list[str] = []
        self.words: list[tuple[str, int]] = []  # (text, delay)
        self.fed: list[int] = []
        self.next_id = 0

    def run(self) -> Action:
        """Until the policy waits or finishes the sentence."""
        p = self.policy
        while True:
            action = p.next_action()
            if action in (Action.WAIT, Action.FINISH):
                return action
            if action is Action.READ:
                p.on_read()
                self.log.append(f"R{p.read}")
            elif action is Action.READ_END:
                p.on_read_end()
                self.log.append("R$")
            elif action is Action.START:
                p.on_started()
                self.log.append("H")
            elif action is Action.FEED:
                self.fed.append(p.held)
                p.on_fed()
            else:
                assert self.pieces, "the policy sampled more than scripted"
                piece = self.pieces.pop(0)
                eos = piece == "<eos>"
                token, self.next_id = self.next_id, self.next_id + 1
                self.log.append(f"S{piece.strip() or repr(piece)}" if not eos else "EOS")
                word = p.on_token(EOS if eos else token, "" if eos else piece, eos)
                if word is not None:
                    text = "".join(self.sampled[t] for t in word.tokens).strip()
                    self.words.append((text, word.delay))


def make(k: int, pieces: list[str], **kw) -> Script:
    return Script(WaitK(k=k, **kw), pieces)


def test_word_boundaries():
    assert starts_new_word("chat", " noir")
    assert not starts_new_word("ch", "at")
    assert not starts_new_word("", " Le")  # a leading space opens the first word
    assert ends_word("chat,") and ends_word("fin. ") and not ends_word("l'")


def test_wait_k_schedule_with_all_source_available():
    """Text given at once: word i is written after k + i reads, then to the end."""
    s = make(2, ["Le", " chat", " dort", ".", "<eos>"])
    s.policy.add_source(3)
    s.policy.end_source()
    assert s.run() is Action.FINISH
    assert s.words == [("Le", 2), ("chat", 3), ("dort.", 3)]
    # Reads are lazy: one word before each write while the source lasts.
    assert s.log == ["R1", "R2", "H", "SLe", "Schat", "R3", "Sdort", "R$", "S.", "EOS"]


def test_starved_policy_never_writes():
    s = make(3, ["Le", " chat"])
    s.policy.add_source(2)
    assert s.run() is Action.WAIT
    assert s.log == ["R1", "R2"] and s.words == []
    s.policy.add_source(1)
    assert s.run() is Action.WAIT
    # The word "Le" is finished by the token that starts " chat", which waits.
    assert s.words == [("Le", 3)]
    assert s.log[-3:] == ["H", "SLe", "Schat"]


def test_token_that_starts_the_next_word_waits_for_the_next_read():
    s = make(1, ["Le", " chat", " noir", "<eos>"])
    s.policy.add_source(1)
    s.run()
    # " chat" was sampled and finished "Le", but word 1 needs a second source word:
    # it is held, not fed, until that word is read.
    assert s.words == [("Le", 1)]
    assert s.fed == [0] and s.policy.held == 1
    s.policy.add_source(1)
    s.run()
    assert s.fed[:2] == [0, 1]  # " chat" fed only after the read
    assert s.log[:5] == ["R1", "H", "SLe", "Schat", "R2"]


def test_sentence_end_writes_to_the_end_and_allows_eos():
    s = make(5, ["Bonjour", " à", " tous", "<eos>"])
    s.policy.add_source(2)
    assert s.run() is Action.WAIT and s.words == []
    assert not s.policy.eos_allowed
    s.policy.end_source()
    assert s.run() is Action.FINISH
    assert s.policy.eos_allowed
    assert s.words == [("Bonjour", 2), ("à", 2), ("tous", 2)]


def test_a_writer_behind_the_speaker_reads_every_word_that_arrived_at_a_word_boundary():
    s = make(2, ["Le", " chat", " dort", " bien", ".", "<eos>"], catch_up=True)
    s.policy.add_source(2)
    assert s.run() is Action.WAIT
    assert s.log == ["R1", "R2", "H", "SLe", "Schat"]  # " chat" held: word 1 needs a third
    s.policy.add_source(3)  # three words came while it wrote
    s.run()
    # All three read at once, before " chat" is fed: each word then sees them all.
    assert s.log[5:9] == ["R3", "R4", "R5", "Sdort"]
    assert s.words == [("Le", 2), ("chat", 5), ("dort", 5), ("bien.", 5)]
    s.policy.end_source()
    assert s.run() is Action.FINISH
    assert s.log[-2:] == ["R$", "EOS"]


def test_a_whole_sentence_is_read_whole_when_catching_up():
    s = make(1, ["Le", " chat", ".", "<eos>"], catch_up=True)
    s.policy.add_source(2)
    s.policy.end_source()
    assert s.run() is Action.FINISH
    assert s.log == ["R1", "R2", "R$", "H", "SLe", "Schat", "S.", "EOS"]


def test_catching_up_reads_nothing_in_the_middle_of_a_word():
    s = make(1, ["Bon", "jour", " à", " tous", "<eos>"], catch_up=True)
    s.policy.add_source(1)
    s.run()  # "Bon" fed, "jour" sampled and fed, " à" held: word 1 needs a second read
    assert s.log == ["R1", "H", "SBon", "Sjour", "Sà"]
    s = make(1, ["Bon", "jour", " à", "<eos>"], catch_up=True)
    s.policy.add_source(1)
    p = s.policy
    for action in ("R", "H", "S"):  # read, header, sample "Bon" (held: a boundary)
        s.log.append(action)
        if action == "R":
            p.on_read()
        elif action == "H":
            p.on_started()
        else:
            p.on_token(0, "Bon", False)
    p.add_source(1)
    assert p.next_action() is Action.READ  # before the word's first token is fed
    p.on_read()
    assert p.next_action() is Action.FEED
    p.on_fed()
    p.add_source(1)
    assert p.next_action() is Action.SAMPLE  # "Bon" begun: "jour" first, no read
    p.on_token(1, "jour", False)
    assert p.next_action() is Action.FEED
    p.on_fed()
    p.on_token(2, " à", False)  # word 0 done, " à" held: a boundary again
    assert p.next_action() is Action.READ


def test_a_writer_that_keeps_up_reads_as_without_catching_up():
    logs = []
    for catch_up in (False, True):
        s = make(2, ["Le", " chat", " dort", ".", "<eos>"], catch_up=catch_up)
        for _ in range(3):  # one word at a time, each written before the next comes
            s.policy.add_source(1)
            s.run()
        s.policy.end_source()
        s.run()
        logs.append((s.log, s.words))
    assert logs[0] == logs[1]


def test_eos_is_suppressed_while_more_source_can_come():
    s = make(1, [])
    s.policy.add_source(1)
    assert s.policy.next_action() is Action.READ
    s.policy.on_read()
    assert not s.policy.eos_allowed
    s.policy.end_source()
    assert not s.policy.eos_allowed  # the end marker is not read yet
    s.policy.on_read_end()
    assert s.policy.eos_allowed


def test_per_word_token_cap_cuts_the_word():
    s = make(1, ["a", "b", "c", "d", "e", "<eos>"], max_tokens_per_word=2)
    s.policy.add_source(1)
    s.policy.end_source()
    assert s.run() is Action.FINISH
    assert s.words == [("ab", 1), ("cd", 1), ("e", 1)]


def test_runaway_translation_stops_at_the_word_limit():
    s = make(1, ["x", " y", " z", " w"], max_words=2)
    s.policy.add_source(1)
    s.policy.end_source()
    assert s.run() is Action.FINISH
    assert [w for w, _ in s.words] == ["x", "y"]


def test_reset_starts_the_next_sentence_with_its_queued_words():
    p = WaitK(k=2)
    p.add_source(4)
    p.end_source()
    p.on_read()
    p.reset(available=3, source_ended=False)
    assert (p.read, p.available, p.written, p.end_read) == (0, 3, 0, False)
    assert p.next_action() is Action.READ


def test_k_must_be_positive():
    with pytest.raises(ValueError):
        WaitK(k=0)


def test_word_limit_before_the_end_stops_reading_and_writing():
    s = make(1, ["x", " y"], max_words=1)
    s.policy.add_source(3)
    assert s.run() is Action.WAIT
    assert [w for w, _ in s.words] == ["x"] and s.policy.read == 1
    s.policy.end_source()
    assert s.run() is Action.FINISH


def test_repeated_ngram_bans_name_the_tokens_that_would_close_a_repeat():
    # "a b c a b" -> writing c would repeat the trigram "a b c".
    assert repeated_ngram_bans([1, 2, 3, 1, 2], 3) == {3}
    # Two earlier continuations of the context "1 2" are both banned.
    assert repeated_ngram_bans([1, 2, 3, 1, 2, 4, 1, 2], 3) == {3, 4}
    assert repeated_ngram_bans([1, 2, 3, 4], 3) == frozenset()  # no repeat in sight
    assert repeated_ngram_bans([5, 5], 2) == {5}  # bigram "5 5" would repeat
    assert repeated_ngram_bans([1, 2], 3) == frozenset()  # too short to repeat
    assert repeated_ngram_bans([1, 2, 1, 2], 0) == frozenset()  # off


def test_words_cut_at_a_mark_inside_a_number_are_joined_without_a_space():
    # "9:" ends a word at its colon; "30" follows it with no space: "à 9:30 am".
    p = WaitK(k=1)
    p.add_source(5)
    written = []
    for token, piece in enumerate([" à", " 9", ":", "30", " am", "."]):
        p.read = 5
        word = p.on_token(token, piece, is_eos=False)
        p.held = None
        if word is not None:
            written.append(word)
    assert p.on_token(99, "", is_eos=True) is None  # "am." was closed by its mark
    assert [w.text for w in written] == ["à", "9:", "30", "am."]
    assert [w.attached for w in written] == [False, False, True, False]
    assert join_words(written) == "à 9:30 am."


def test_an_unsure_writer_reads_one_more_word_without_adding_lag():
    s = make(1, ["Le", " chat", " noir", "<eos>"])
    s.policy.add_source(3)
    p = s.policy
    assert p.next_action() is Action.READ
    p.on_read()
    p.on_started()
    # Not sure of the first word: the header's last token (7) is held for after a read.
    p.on_unsure(7)
    assert not p.may_write() and p.next_action() is Action.READ
    p.on_read()
    assert p.next_action() is Action.FEED and p.held == 7
    p.on_fed()
    s.run()
    # Word 0 at 2 words read; word 1 at 2 as well: wait-1 needs 2 and no lag was added,
    # so the schedule catches up instead of trailing by a word (as an early end does).
    assert s.words[:2] == [("Le", 2), ("chat", 2)]
    assert p.extra == 0


def test_unsure_waits_for_a_word_not_yet_received_and_is_cleared_per_sentence():
    p = WaitK(k=1)
    p.add_source(1)
    p.on_read()
    p.on_started()
    p.on_unsure(7)
    assert p.next_action() is Action.WAIT  # starved: the next word has not arrived
    p.end_source()
    assert p.next_action() is Action.READ_END  # the sentence end resolves it
    p.on_read_end()
    assert p.may_write()
    p.reset(available=2)
    assert p.unsure_at is None
    p.on_unsure(1)
    with pytest.raises(RuntimeError):
        p.on_unsure(2)  # the held token must be fed first


def test_the_early_end_streak_counts_reads_until_a_token_is_written():
    p = WaitK(k=1)
    p.add_source(4)
    p.on_read()
    p.on_started()
    for streak in (1, 2):  # two wishes to end in a row, each one more word of lag
        p.on_end_wanted(7)
        assert p.end_streak == streak and p.next_action() is Action.READ
        p.on_read()
        p.on_fed()
    assert p.extra == 2
    p.on_token(8, "Le", is_eos=False)  # a written token ends the streak, not the lag
    assert p.end_streak == 0 and p.extra == 2
    p.on_fed()
    p.on_end_wanted(8)
    p.reset(available=1)
    assert p.end_streak == 0  # and each sentence starts without one


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4])
def test_the_ngram_index_bans_what_a_search_of_the_whole_history_bans(n):
    rng = random.Random(n)
    index = NgramIndex(n)
    for _ in range(400):
        index.add(rng.randrange(6))  # few distinct tokens: many repeats
        assert index.bans() == repeated_ngram_bans(index.history, n)
