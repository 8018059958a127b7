"""The streaming translator: wait-k over a dual-stream cache, one sentence at a time.

Live-input stepper in the manner of whisper_streaming: :meth:`feed` source
words as they come, :meth:`step` to get the target words the policy allows
now, :meth:`end_sentence` when a sentence is complete, :meth:`finish` at the
end. The system prompt is encoded once; after each sentence the caches are
trimmed back to it, so memory stays bounded over an endless conversation.

The decode loop is our own: mlx-lm's ``generate_step`` dispatches the next
token before the current one is known, which leaves no room to switch between
reading and writing between two tokens.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import mlx.core as mx

from juno.errors import JunoError
from juno.simul.cache import DualStreamCache, Stream
from juno.simul.examples import examples_for
from juno.simul.options import TranslateOptions, parse_draft, phi_gap
from juno.simul.policy import Action, NgramIndex, TargetWord, WaitK, join_words
from juno.simul.prompt import StreamPrompt, encode_word
from juno.simul.speculative import Drafter, DraftLength, DraftStats, make_drafter
from juno.simul.support import check_supported, check_token_ids


@dataclass
class Sentence:
    """One source sentence as the translator holds it, and its translation so far."""

    words: list[str] = field(default_factory=list)  # source words, split as read
    fed: list[Any] = field(default_factory=list)  # what was fed for each of them
    items: list[Any] = field(default_factory=list)  # what was fed, once each
    target: list[TargetWord] = field(default_factory=list)  # target words written
    ended: bool = False  # its last word has been fed

    @property
    def text(self) -> str:
        """The translation so far, spaced as written (attached words joined)."""
        return join_words(self.target)


@dataclass(frozen=True)
class TokenEvent:
    """One sampled target token, with the word it finished (if any)."""

    token: int
    piece: str  # text this token adds to the translation
    word: TargetWord | None  # the target word this token finished
    eos: bool  # the token is an end-of-sequence token (not part of the text)
    sentence_done: bool  # the sentence's translation is over after this token
    source_words_read: int
    target_words: int  # target words finished in this sentence
    sentence: Sentence  # the sentence being translated (its words so far)


@dataclass(frozen=True)
class Forward:
    """One model call the decode loop needs: ``tokens`` on ``stream`` of the cache.

    The loop yields it and gets back the logits of its last ``rows`` positions (none
    for source tokens, whose keys and values are all that is needed). A translator
    runs its own (:meth:`StreamingTranslator.events`); a batch runs those of several
    translators in one forward (:mod:`juno.simul.batch`).
    """

    stream: Stream
    tokens: list[int]
    rows: int = 0  # logits wanted, from the end (0 on the source stream)
    kind: str = "target"  # what its time is accounted as: source, header, target
    drafted: int = 0  # the last ``drafted`` tokens are drafts (their time is verifying)


@functools.cache
def _token_texts(tokenizer: Any, vocab: int) -> tuple[str, ...]:
    """The text of every token id (empty beyond the tokenizer's own vocabulary)."""
    hf = getattr(tokenizer, "_tokenizer", None)
    size = min(vocab, len(hf)) if hf is not None else vocab
    if hf is not None and hasattr(hf, "batch_decode"):
        texts = hf.batch_decode([[i] for i in range(size)])
    else:
        texts = [tokenizer.decode([i]) for i in range(size)]
    return tuple(texts) + ("",) * (vocab - size)


@functools.cache
def line_break_tokens(tokenizer: Any, vocab: int) -> frozenset[int]:
    """Tokens whose text holds a line break."""
    return frozenset(i for i, text in enumerate(_token_texts(tokenizer, vocab)) if "\n" in text)


@functools.cache
def word_tokens(tokenizer: Any, vocab: int) -> frozenset[int]:
    """Tokens whose text holds a letter (the ones a repeat ban applies to)."""
    texts = _token_texts(tokenizer, vocab)
    return frozenset(i for i, text in enumerate(texts) if any(c.isalpha() for c in text))


@functools.cache
def space_tokens(tokenizer: Any, vocab: int) -> frozenset[int]:
    """Tokens whose text opens with whitespace (they start a new word)."""
    return frozenset(
        i for i, text in enumerate(_token_texts(tokenizer, vocab)) if text[:1].isspace()
    )


@functools.cache
def sentence_end_tokens(tokenizer: Any, vocab: int) -> frozenset[int]:
    """Tokens whose text ends with a sentence-final mark (. ! ? and CJK ones)."""
    marks = (".", "!", "?", "。", "！", "？")
    texts = _token_texts(tokenizer, vocab)
    return frozenset(i for i, text in enumerate(texts) if text.rstrip().endswith(marks))


@functools.cache
def special_tokens(tokenizer: Any, vocab: int) -> frozenset[int]:
    """Added (control) tokens, and ids the model has but the tokenizer does not."""
    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    ids = set(getattr(hf, "added_tokens_decoder", {}) or {})
    size = len(hf) if hasattr(hf, "__len__") else vocab
    ids.update(range(size, vocab))
    return frozenset(i for i in ids if 0 <= i < vocab)


def fast_decode(tokenizer: Any) -> Callable[[list[int]], str]:
    """``tokenizer.decode`` for a list of ids, straight through the Rust tokenizer when
    that is all the Hugging Face one does (a fast tokenizer that cleans up no spaces,
    as Qwen's): the Python wrapper around it costs more than the decoding, and the
    writer decodes on every token."""
    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    rust = getattr(hf, "_tokenizer", None)
    if getattr(hf, "clean_up_tokenization_spaces", None) is False and hasattr(rust, "decode"):
        return functools.partial(rust.decode, skip_special_tokens=False)
    return tokenizer.decode


@functools.cache
def _writer_rules(
    *,
    ending: bool,
    mask_ending: bool,
    no_end: bool,
    unsure: bool,
    opens_word: bool,
    greedy: bool,
    bans: bool = False,
) -> Callable[..., tuple[mx.array, mx.array | None, mx.array | None, mx.array | None]]:
    """The writer's rules over one row of logits, compiled as one graph per set of
    rules in force (a GPU runs it as a few fused kernels, not one per operation).

    ``ending``: whether the best token would end the translation early (returned as
    ``wants_end``), or with ``mask_ending``, the ending tokens masked when it would;
    ``no_end``: the translation may not end yet; ``unsure``: whether the best token
    opens a word under the minimum log-probability (only a spaced token opens one when
    ``opens_word``, i.e. some text is written; the first token always does);
    ``greedy``: the argmax token too; ``bans``: a last input holds token ids never to
    write now (the repeated n-grams' next tokens; padded with repeats to a size of a
    few, so that the graph is compiled for few shapes). Returns (logprobs, token,
    wants_end, unsure), None where not asked.
    """

    def rules(logits, never, early_end, end, spaced, min_logprob, banned=None):
        logits = mx.where(never, -mx.inf, logits)
        if bans:
            logits = mx.put_along_axis(
                logits, banned[None], mx.array(-mx.inf, logits.dtype), axis=-1
            )
        wants_end = None
        if ending:
            best_ends = early_end[mx.argmax(logits, axis=-1)]
            if mask_ending:
                logits = mx.where(best_ends, mx.where(early_end, -mx.inf, logits), logits)
            else:
                wants_end = best_ends
        if no_end:
            logits = mx.where(end, -mx.inf, logits)
        logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        best = mx.argmax(logprobs, axis=-1)
        doubt = None
        if unsure:
            sure = mx.take_along_axis(logprobs, best[:, None], axis=-1)[:, 0] >= min_logprob
            doubt = (spaced[best] if opens_word else mx.ones_like(sure)) & ~sure
        outputs = (logprobs, best if greedy else None, wants_end, doubt)
        return tuple(o for o in outputs if o is not None)

    compiled = mx.compile(rules)
    present = (True, greedy, ending and not mask_ending, unsure)

    def run(*arrays: mx.array):
        outputs = iter(compiled(*arrays))
        return tuple(next(outputs) if p else None for p in present)

    return run


def _padded_ids(ids: frozenset[int]) -> mx.array:
    """``ids`` as an int32 array of a power-of-two size (8 at least), the first repeated
    to fill it: a compiled graph that takes it is traced again only for a new size."""
    order = sorted(ids)
    size = max(8, 1 << (len(order) - 1).bit_length())
    return mx.array(order + [order[0]] * (size - len(order)), dtype=mx.int32)


def _mask(vocab: int, ids: frozenset[int]) -> mx.array:
    mask = mx.zeros((vocab,), dtype=mx.bool_)
    if ids:
        mask[mx.array(sorted(ids))] = True
    return mask


def common_prefix_len(a: str, b: str, start: int = 0) -> int:
    """Length of the longest common prefix of ``a`` and ``b``, which share ``a[:start]``."""
    n = min(len(a), len(b))
    i = start
    while i < n and a[i] == b[i]:
        i += 1
    return i


class SentenceText:
    """The text of a sentence's target tokens, grown a token at a time, at a cost per token
    that does not grow with the sentence.

    Decoding every token again for each new one, and comparing the whole text with the
    last, costs time in proportion to the sentence on every token: on a GPU, where a token's
    forward takes a few milliseconds, that alone slowed long decodes by a third. Here only a
    window is decoded: from an *anchor* token after which the text is complete, the text is
    the text up to the anchor followed by the window's text past the anchor's own. The
    anchor is decoded with the window, so that a tokenizer that drops a word's leading space
    at the start of a decode (SentencePiece) spaces the window as it does the whole. Where
    the window does not start with the anchor's text alone, the whole sentence is decoded,
    as before.

    A token can be a piece of a character (a byte of its UTF-8), so the text up to a token
    is not always final. The anchor moves to the token :attr:`SETTLE` tokens back when the
    text up to it still starts the current text: a character is at most four bytes and each
    token holds one at least, so by then the bytes at the anchor have made a character or
    never will. Bytes that never make one (a looping model can write them) then do not hold
    the anchor back, and the cost stays flat even for them.
    """

    WINDOW = 16  # tokens decoded past the anchor before it moves up
    SETTLE = 3  # tokens after a candidate anchor before its text is taken as final

    def __init__(self, tokenizer: Any) -> None:
        self._decode = fast_decode(tokenizer)
        self.tokens: list[int] = []
        self.text = ""
        self._anchor = -1  # index of the anchor token; -1: none yet, decode from the start
        self._head = ""  # the text up to and including the anchor token
        self._lead = ""  # the anchor token's text decoded alone
        self._recent: deque[str] = deque(maxlen=self.SETTLE + 1)  # text after each token

    def add(self, token: int) -> str:
        """Append ``token``; returns the text it adds (the new text past the old one's
        common prefix with it: a token can complete a character the old text lacked)."""
        self.tokens.append(token)
        text = None
        if self._anchor >= 0:
            window = self._decode(self.tokens[self._anchor :])
            if window.startswith(self._lead):
                text = self._head + window[len(self._lead) :]
        if text is None:
            text = self._decode(self.tokens)
        head = self._head
        shared = len(head) if text.startswith(head) and self.text.startswith(head) else 0
        piece = text[common_prefix_len(self.text, text, shared) :]
        self.text = text
        self._recent.append(text)
        candidate = len(self.tokens) - 1 - self.SETTLE
        if candidate - self._anchor > self.WINDOW and len(self._recent) > self.SETTLE:
            settled = self._recent[0]  # the text up to the candidate
            if text.startswith(settled):
                self._anchor, self._head = candidate, settled
                self._lead = self._decode([self.tokens[candidate]])
        return piece


class StreamingTranslator:
    """Simultaneous translation with an unmodified mlx-lm model (see module doc)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        options: TranslateOptions | None = None,
        *,
        examples: Sequence[tuple[str, str]] | None = None,
        logits_processors: Sequence[Callable[[mx.array, mx.array], mx.array]] = (),
        cache: Callable[[int], Any] = DualStreamCache,
        drafter: Drafter | None = None,
        draft_length: DraftLength | None = None,
        pipelined: bool | None = None,
    ) -> None:
        """``options``: the writer's settings (default: the product's).

        ``examples``: example turns to show instead of the options' built-in ones;
        ``logits_processors`` run (mlx-lm's signature) before the writer's rules, after
        the options' repetition penalty. ``drafter`` proposes tokens that each feed
        verifies in the same forward (see :mod:`juno.simul.speculative`); the words
        are the same with it or without. ``pipelined`` (default: on a GPU) dispatches
        the forward of each token before it is read back, when the policy will feed it
        whatever it is (see :meth:`_sample`); the words are the same either way.
        """
        from mlx_lm.sample_utils import make_logits_processors, make_sampler

        num_layers = check_supported(model)
        self.options = options = options or TranslateOptions()
        self.model = model
        self.tokenizer = tokenizer
        self._decode = fast_decode(tokenizer)
        self.phi = options.phi
        self.policy = WaitK(
            k=options.wait_k,
            max_tokens_per_word=options.max_tokens_per_word,
            max_words=options.max_words_per_sentence,
            catch_up=options.catch_up,
        )
        if examples is None:
            examples = examples_for(
                options.source_language, options.target_language, options.examples
            )
        self.prompt = StreamPrompt.from_template(tokenizer, options.system(), examples)
        check_token_ids(model, (*self.prompt.prefix, *self.prompt.footer, *self.prompt.header))
        self.sampler = make_sampler(temp=options.temp, top_p=options.top_p)
        penalty = options.repetition_penalty if options.repetition_penalty != 1.0 else None
        self.logits_processors = make_logits_processors(repetition_penalty=penalty) + list(
            logits_processors
        )
        eos = sorted(tokenizer.eos_token_ids)
        vocab = model.args.vocab_size
        self._eos = frozenset(eos)
        # Chat markers and other control tokens are never part of a translation.
        self._never = _mask(vocab, special_tokens(tokenizer, vocab) - self._eos)
        # One line per sentence: a line break ends the translation like EOS does
        # (an instruct model goes on with comments after one), and neither may
        # come while more source can arrive.
        breaks = line_break_tokens(tokenizer, vocab) if options.one_line else frozenset()
        self._ends = self._eos | breaks
        self._end_mask = _mask(vocab, self._ends)
        # When the model would end before the source sentence is read, read more
        # instead of forcing words out of it (masked, it writes junk or commentary).
        self.read_on_end = options.read_on_end
        # A sentence-final mark before the source end is the model closing its
        # translation early too: it reads more instead of writing the mark.
        self._early_ends = self._ends
        if options.read_on_sentence_end:
            self._early_ends = self._ends | sentence_end_tokens(tokenizer, vocab)
        # A model that has closed its sentence keeps wanting to end, and would read the
        # rest of the source without writing it. After this many such reads in a row
        # (0: no limit) it must go on writing instead: the ending tokens are masked.
        self.end_reads = options.end_reads
        self._early_end_mask = _mask(vocab, self._early_ends) if self.read_on_end else None
        # A token that would repeat an n-gram of this sentence's translation is
        # never written (a small model loops); digits, spaces and marks may repeat.
        self.no_repeat_ngram = options.no_repeat_ngram
        self._wordy = word_tokens(tokenizer, vocab) if self.no_repeat_ngram else frozenset()
        # Before the source end, a word is started only when the model is this sure
        # of its first token; otherwise one more source word is read first.
        self._min_logprob = options.min_logprob
        self._spaced = space_tokens(tokenizer, vocab) if options.min_confidence else frozenset()
        self._spaced_mask = _mask(vocab, self._spaced) if self._spaced else None
        # What the compiled rules take after the logits (see _writer_rules): every mask,
        # whether its rule is on or not (an unused one stands in as the end mask).
        self._rule_inputs = (
            self._never,
            self._early_end_mask if self._early_end_mask is not None else self._end_mask,
            self._end_mask,
            self._spaced_mask if self._spaced_mask is not None else self._end_mask,
            mx.array(self._min_logprob or 0.0, dtype=mx.float32),
        )
        # Greedy decoding (temp 0, the default) samples inside the compiled rules.
        self.greedy = options.temp == 0.0
        # Source chunks only need keys and values: run the body, skip the LM head.
        self._body = getattr(model, "model", model)

        # ``cache`` builds the KV cache from the layer count: the dual-stream cache, or
        # ``InterleavedCache``, the one-sequence baseline the benchmark compares with.
        self.cache = cache(num_layers)
        self.stats = Stats()
        self.pipelined = False  # (set below; the prefix is encoded and waited for)
        self._encode_source(list(self.prompt.prefix))
        self.prefix_slots = self.cache.slots

        # Speculative writing: drafted tokens wait in the cache after the last fed token,
        # with the logits after each, until sampling agrees with them or not.
        if drafter is None and options.draft != "off":
            lookup, spec = parse_draft(options.draft)
            if spec is not None:
                raise JunoError(
                    f"draft {options.draft!r} needs its model: pass "
                    "drafter=juno.simul.speculative.load_drafter(options, cfg, tokenizer)"
                )
            drafter = make_drafter(lookup, None)
        self.drafter = drafter
        if pipelined is None:
            from juno import backend

            pipelined = backend.uses_gpu()
        # Drafts already give each forward several tokens: no pipelining with them.
        self.pipelined = pipelined and drafter is None
        self._ahead: mx.array | None = None  # logits of the token dispatched ahead
        self.draft_length = draft_length or DraftLength(
            options.draft_tokens_min, options.draft_tokens_max, options.draft_tokens_min
        )
        self.draft_stats = DraftStats()
        self._target_ids: list[int] = []  # the target stream in the cache, drafts included
        self._pending: list[int] = []  # drafted tokens not yet sampled
        self._rows: list[mx.array] = []  # the logits after each of them
        self._round = (0, 0)  # this round's drafts: proposed, accepted
        self._new_word = space_tokens(tokenizer, vocab) if drafter is not None else frozenset()
        if drafter is not None:
            drafter.on_prefix(self.prompt.prefix)

        self._sentences: deque[Sentence] = deque([Sentence()])  # the open one, then queued
        self._logits: mx.array | None = None
        self._target = SentenceText(tokenizer)  # sampled target tokens of this sentence
        self._ngrams = NgramIndex(self.no_repeat_ngram)

    # -- live input -----------------------------------------------------------

    def feed(self, words: str | Iterable[Any]) -> None:
        """Queue source words: a string (split on whitespace), or words as strings or as
        objects with a ``text`` (the caller's own, e.g. timed messages), which the
        events give back in :attr:`Sentence.fed`.
        """
        items = words.split() if isinstance(words, str) else list(words)
        texts = [(item if isinstance(item, str) else item.text).split() for item in items]
        pieces = [(piece, item) for item, text in zip(items, texts, strict=True) for piece in text]
        if not pieces:
            return
        if self._sentences[-1].ended:
            self._sentences.append(Sentence())
        sentence = self._sentences[-1]
        sentence.words += [piece for piece, _ in pieces]
        sentence.fed += [item for _, item in pieces]
        sentence.items += [item for item, text in zip(items, texts, strict=True) if text]
        if len(self._sentences) == 1:
            self.policy.add_source(len(pieces))

    def end_sentence(self) -> None:
        """The words fed so far complete a sentence."""
        sentence = self._sentences[-1]
        if sentence.ended or not sentence.words:
            return
        sentence.ended = True
        if len(self._sentences) == 1:
            self.policy.end_source()

    def step(self) -> list[TargetWord]:
        """Translate as far as the input allows; the target words finished."""
        return [e.word for e in self.events() if e.word is not None]

    def finish(self) -> list[TargetWord]:
        """End the open sentence and translate everything queued."""
        self.end_sentence()
        return self.step()

    @property
    def pending_words(self) -> int:
        """Source words received but not yet translated (all queued sentences)."""
        return sum(len(s.words) for s in self._sentences) - self.policy.read

    # -- the decode loop ------------------------------------------------------

    def events(self) -> Iterator[TokenEvent]:
        """Run until starved; yield every sampled target token."""
        run = self.run()
        result = None
        while True:
            try:
                item = run.send(result)
            except StopIteration:
                return
            if isinstance(item, Forward):
                result = self._execute(item)
            else:
                result = None
                yield item

    def run(self) -> Generator[TokenEvent | Forward, mx.array | None, None]:
        """The decode loop until starved: yields each sampled token's event, and each
        model call it needs (a :class:`Forward`), to be sent back its logits."""
        policy = self.policy
        while True:
            action = policy.next_action()
            if action is Action.WAIT:
                return
            if action in (Action.READ, Action.READ_END):
                yield from self._read()
            elif action is Action.START:
                yield from self._start()
            elif action is Action.FEED:
                yield from self._feed(policy.held)
                policy.on_fed()
            elif action is Action.SAMPLE:
                event = self._sample()
                if event is not None:
                    yield event
            elif action is Action.FINISH:
                self._next_sentence()

    def _read(self) -> Generator[Forward, Any, None]:
        """Encode every source piece the policy asks for, in one chunk."""
        policy, sentence = self.policy, self._sentences[0]
        words, fed = sentence.words, sentence.fed
        tokens: list[int] = []
        action = policy.next_action()
        while action in (Action.READ, Action.READ_END):
            if action is Action.READ:
                i = policy.read
                # A word that continues the one before it ("cold" "-hearted") is unspaced.
                joins = i > 0 and getattr(fed[i], "attached", False) and fed[i] is not fed[i - 1]
                tokens += encode_word(self.tokenizer, words[i], i == 0 or joins)
                policy.on_read()
            else:
                tokens += self.prompt.footer
                policy.on_read_end()
            action = policy.next_action()
        self._drop_drafts(withdrawn=True)  # target tokens after this read must see it
        if self.drafter is not None:
            self.drafter.on_source(tokens, self._target_ids)
        yield Forward(Stream.SOURCE, tokens, kind="source")

    def _start(self) -> Generator[Forward, Any, None]:
        """First write of the sentence: fix phi and encode the assistant header."""
        gap = phi_gap(self.phi)
        phi = self.phi if gap is None else self.cache.source_len + gap
        self.cache.set_phi(phi)
        if self.drafter is not None:
            self.drafter.on_start(phi)
        # The header is prompt work (as in mlx-lm's accounting), not decoding.
        yield from self._target_forward(list(self.prompt.header), kind="header")
        self.policy.on_started()

    def _sample(self) -> TokenEvent | None:
        """The next target token; None when the policy chose to read first.

        Every rule is one graph over the logits, read back in one sync: the token, and
        whether the writer would rather end (read instead) or is unsure of a new word.
        Pipelined, the forward of the token is dispatched before that sync whenever the
        policy will feed it whatever it is (the next word is allowed too), and rolled
        back in the rare case it is not fed (an end, a take-back, the word limit).
        """
        start = time.perf_counter()
        logits = self._logits
        if self.logits_processors:
            history = mx.array(self._target.tokens, dtype=mx.uint32)
            for processor in self.logits_processors:
                logits = processor(history, logits)
        banned = self._ngrams.bans() & self._wordy if self.no_repeat_ngram else frozenset()
        policy = self.policy
        ending = self.read_on_end and not policy.eos_allowed
        rules = _writer_rules(
            ending=ending,
            # Read enough for it: the ending tokens are masked, the writer goes on.
            mask_ending=ending and bool(self.end_reads) and policy.end_streak >= self.end_reads,
            no_end=not policy.eos_allowed,
            unsure=self._min_logprob is not None and not policy.eos_allowed,
            opens_word=bool(self._target.text.strip()),
            greedy=self.greedy,
            bans=bool(banned),
        )
        inputs = (*self._rule_inputs, _padded_ids(banned)) if banned else self._rule_inputs
        logprobs, token_array, wants_end, unsure = rules(logits, *inputs)
        sampled = token_array if self.greedy else self.sampler(logprobs)
        flags = [f for f in (wants_end, unsure) if f is not None]
        mx.async_eval(sampled, *flags)
        if self.pipelined and self._fed_whatever_it_is():
            self._forward_ahead(sampled)
        token = int(sampled.item())
        if wants_end is not None and wants_end.item():
            self._undo_ahead()
            self._take_back(unsure=False)
            self.stats.add_target(0, time.perf_counter() - start)
            return None
        if unsure is not None and unsure.item():
            self._undo_ahead()
            self._take_back(unsure=True)
            self.stats.add_target(0, time.perf_counter() - start)
            return None
        self.stats.add_target(0, time.perf_counter() - start, sampled=1)

        eos = token in self._ends
        piece = "" if eos else self._piece(token)
        word = self.policy.on_token(token, piece, eos)
        if word is not None:
            word = replace(word, text=self._decode(list(word.tokens)).strip())
            self._sentences[0].target.append(word)
        if self._ahead is not None:
            if self.policy.next_action() is Action.FEED:
                self._keep_ahead(token)
                self.policy.on_fed()
            else:
                self._undo_ahead()
        done = self.policy.next_action() is Action.FINISH
        if done and not eos and (word is None or word.tokens[-1] != token):
            piece = ""  # the next word's first token, dropped at the word limit
        return TokenEvent(
            token=token,
            piece=piece,
            word=word,
            eos=eos,
            sentence_done=done,
            source_words_read=self.policy.read,
            target_words=self.policy.written,
            sentence=self._sentences[0],
        )

    def _take_back(self, unsure: bool) -> None:
        """Roll the last target token out of the cache; the policy feeds it after a read.

        ``unsure``: the writer was not sure of the next word (no lag added);
        otherwise it wanted to end early (one word of lag added).
        """
        last = self._target.tokens[-1] if self._target.tokens else self.prompt.header[-1]
        self._drop_drafts()
        self.cache.rollback(1)
        self._target_ids.pop()
        if unsure:
            self.policy.on_unsure(last)
        else:
            self.policy.on_end_wanted(last)

    def _piece(self, token: int) -> str:
        """The text ``token`` adds to the sentence's translation."""
        self._ngrams.add(token)
        return self._target.add(token)

    def _next_sentence(self) -> None:
        """Return to the system-prompt prefix and start on the next queued sentence."""
        self._end_round()
        self.cache.truncate(self.prefix_slots)
        self._target_ids, self._pending, self._rows = [], [], []
        if self.drafter is not None:
            self.drafter.on_sentence_end()
        self._sentences.popleft()
        if not self._sentences:
            self._sentences.append(Sentence())
        first = self._sentences[0]
        self.policy.reset(available=len(first.words), source_ended=first.ended)
        self._target, self._ngrams = SentenceText(self.tokenizer), NgramIndex(self.no_repeat_ngram)
        self._logits = None

    # -- model calls ----------------------------------------------------------

    def _encode_source(self, tokens: list[int]) -> None:
        self._execute(Forward(Stream.SOURCE, tokens, kind="prefix"))

    def _execute(self, call: Forward) -> mx.array | None:
        """Run ``call`` on this translator's cache: the logits of its last ``rows``."""
        start = time.perf_counter()
        self.cache.use(call.stream)
        tokens = mx.array([call.tokens])
        if not call.rows:
            self._body(tokens, cache=self.cache.layers)
            self.cache.commit(len(call.tokens))
            if self.pipelined:
                mx.async_eval(self.cache.arrays())  # nothing waits for it: the next write does
            else:
                mx.eval(self.cache.arrays())  # (timed: the source's share of the compute)
            rows = None
        else:
            logits = self.model(tokens, cache=self.cache.layers)
            self.cache.commit(len(call.tokens))
            rows = logits[:, -call.rows :, :]
            if self.pipelined and call.rows == 1:
                mx.async_eval(rows)  # sampling reads it back
            else:
                mx.eval(rows)
        self.took(call, rows, time.perf_counter() - start)
        return rows

    def took(self, call: Forward, rows: mx.array | None, seconds: float) -> None:
        """``call`` ran, giving ``rows``, in ``seconds`` of compute (this row's share of
        a batch): counted in the stats."""
        self.stats.forwards += 1
        n = len(call.tokens)
        if call.kind == "source":
            self.stats.add_source(n, seconds)
        elif call.kind == "header":
            self.stats.add_header(n, seconds)
        elif call.kind == "target":
            self.stats.add_target(n, seconds)
            if call.drafted:
                self.draft_stats.verify_s += seconds

    def _fed_whatever_it_is(self) -> bool:
        """The token being sampled will be fed unless it ends the sentence (EOS, the last
        word's end) or is taken back: the word after the one in progress may be written too."""
        p = self.policy
        return p.end_read or p.read >= p.k + p.extra + p.written + 1

    def _forward_ahead(self, token: mx.array) -> None:
        """Dispatch the forward of ``token`` (not yet read back) on the target stream."""
        self.cache.use(Stream.TARGET)
        logits = self.model(token.reshape(1, 1), cache=self.cache.layers)
        self.cache.commit(1)
        self._ahead = logits[:, -1, :]
        mx.async_eval(self._ahead)
        self.stats.forwards += 1

    def _keep_ahead(self, token: int) -> None:
        """The token dispatched ahead is fed: its logits are the next ones."""
        self._target_ids.append(token)
        self._logits, self._ahead = self._ahead, None
        self.stats.add_target(1, 0.0)

    def _undo_ahead(self) -> None:
        """The token dispatched ahead is not fed (now): its slot is rolled back."""
        if self._ahead is not None:
            self.cache.rollback(1)
            self._ahead = None

    def _target_forward(
        self, tokens: list[int], kind: str = "target", drafted: int = 0
    ) -> Generator[Forward, Any, None]:
        """Encode ``tokens`` on the target stream; the last ``drafted`` are drafts."""
        rows = yield Forward(Stream.TARGET, tokens, drafted + 1, kind, drafted)
        self._target_ids += tokens
        self._logits = rows[:, 0, :]
        if drafted:
            self._rows = [rows[:, i, :] for i in range(1, drafted + 1)]
            self._pending = tokens[len(tokens) - drafted :]

    # -- speculative writing (see juno.simul.speculative) --------------------

    def _feed(self, token: int) -> Generator[Forward, Any, None]:
        """Encode the token the policy holds, and verify new drafts in the same forward."""
        if self._pending and self._pending[0] == token:
            # Drafted, verified, and now sampled: already in the cache with its logits.
            self._pending.pop(0)
            self._logits = self._rows.pop(0)
            proposed, accepted = self._round
            self._round = (proposed, accepted + 1)
            self.draft_stats.accepted += 1
            if not self._pending:
                self._end_round()
            return
        self._drop_drafts()
        drafts: list[int] = []
        if self.drafter is not None:
            start = time.perf_counter()
            target = [*self._target_ids, token]
            drafts = self._within_policy(self.drafter.propose(target, self.draft_length.n))
            self.draft_stats.draft_s += time.perf_counter() - start
        if drafts:
            self._round = (len(drafts), 0)
            self.draft_stats.rounds += 1
            self.draft_stats.proposed += len(drafts)
            yield from self._target_forward([token, *drafts], drafted=len(drafts))
        else:
            yield from self._target_forward([token])

    def _within_policy(self, drafts: list[int]) -> list[int]:
        """The drafts up to the start of a word the policy does not allow yet."""
        p = self.policy
        if p.end_read or p.read >= p.k + p.extra + p.written + 1:
            return drafts
        for i, token in enumerate(drafts):
            if token in self._new_word:
                return drafts[:i]
        return drafts

    def _drop_drafts(self, withdrawn: bool = False) -> None:
        """Roll the drafts not (yet) sampled out of the cache. ``withdrawn``: a source read
        comes first (a writer catching up), so they were neither accepted nor rejected."""
        if self._pending and withdrawn:
            n = len(self._pending)
            proposed, accepted = self._round
            self._round = (proposed - n, accepted)
            self.draft_stats.proposed -= n
            self.draft_stats.withdrawn += n
        if self._pending:
            self.cache.rollback(len(self._pending))
            del self._target_ids[-len(self._pending) :]
            self._pending, self._rows = [], []
        self._end_round()

    def _end_round(self) -> None:
        proposed, accepted = self._round
        if proposed:
            self.draft_length.update(proposed, accepted)
            self.draft_stats.accepted_lengths.append(accepted)
        self._round = (0, 0)


@dataclass
class Stats:
    """Compute spent so far (wall time of model calls), for tokens/s reports."""

    source_tokens: int = 0
    source_s: float = 0.0
    target_tokens: int = 0  # tokens encoded on the target stream (header included)
    sampled: int = 0
    target_s: float = 0.0  # decoding: feeding and sampling target tokens
    header_s: float = 0.0  # encoding the assistant header of each sentence
    forwards: int = 0  # model calls (a batch's call counts once for each of its rows)
    source_reads: int = 0  # source chunks read (a writer catching up reads several words in one)

    def add_source(self, n: int, seconds: float) -> None:
        self.source_reads += 1
        self.source_tokens += n
        self.source_s += seconds

    def add_target(self, n: int, seconds: float, sampled: int = 0) -> None:
        self.target_tokens += n
        self.sampled += sampled
        self.target_s += seconds

    def add_header(self, n: int, seconds: float) -> None:
        self.target_tokens += n
        self.header_s += seconds

    @property
    def generation_tps(self) -> float:
        return self.sampled / self.target_s if self.target_s else 0.0
