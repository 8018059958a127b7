"""AlignAtt's beam search: one step on scripted scores and attention (no model), and
a random-weight Whisper whose beams must score what one plain forward pass scores."""

import numpy as np
import pytest
from test_transcriber_alignatt import attention

from juno.errors import JunoError
from juno.transcriber.whisper_window import _Beam, _next_beams, _Stop

EOT = 9
STOP_FRAME = 80
VOCAB = 10


def beam(new: list[int], score: float, peaks: list[int]) -> _Beam:
    """A hypothesis whose rows attend at ``peaks`` (the last predicts the next token)."""
    return _Beam(list(new), score, [0.0] * len(new), [attention(peaks)])


def logp(*rows: dict[int, float]) -> np.ndarray:
    """Log probabilities, one row per beam: the tokens given, the rest far below."""
    out = np.full((len(rows), VOCAB), -30.0, np.float32)
    for i, row in enumerate(rows):
        for token, value in row.items():
            out[i, token] = value
    return out


BEHIND = [10, 20, 30]  # attention well before the stop frame
AT_END = [10, 20, 85]


def test_one_beam_is_greedy():
    step = _next_beams([beam([], 0.0, BEHIND)], logp({3: -0.1, 4: -2.0}), 1, EOT, STOP_FRAME)
    assert step[0] == [0] and step[1][0].new == [3]
    assert step[1][0].score == pytest.approx(-0.1)
    # Greedy ends where its best token is the end of text...
    step = _next_beams([beam([3], -0.1, BEHIND)], logp({EOT: -0.2, 4: -1.0}), 1, EOT, STOP_FRAME)
    assert step == _Stop(0, reached_end=False, token=EOT)
    # ...and stops, dropping the token, where the attention reached the stop frame.
    step = _next_beams([beam([3], -0.1, AT_END)], logp({4: -0.2}), 1, EOT, STOP_FRAME)
    assert step == _Stop(0, reached_end=True, token=4)


def test_the_beams_keep_the_best_continuations_in_order():
    beams = [beam([1], -0.5, BEHIND), beam([2], -0.9, BEHIND)]
    step = _next_beams(beams, logp({3: -2.0, 4: -3.0}, {5: -0.1, 6: -0.4}), 2, EOT, STOP_FRAME)
    sources, out = step
    # Beam 1's continuations (-1.0, -1.3) beat beam 0's best (-2.5): greedy's path is gone.
    assert sources == [1, 1]
    assert [b.new for b in out] == [[2, 5], [2, 6]]
    assert [b.score for b in out] == pytest.approx([-1.0, -1.3])
    assert [b.logprobs[-1] for b in out] == pytest.approx([-0.1, -0.4])


def test_the_best_continuation_decides_when_to_stop():
    # The best is an end of text: the decoding ends on that hypothesis.
    beams = [beam([1], -0.5, BEHIND), beam([2], -0.6, BEHIND)]
    step = _next_beams(beams, logp({3: -1.0}, {EOT: -0.1}), 2, EOT, STOP_FRAME)
    assert step == _Stop(1, reached_end=False, token=EOT)
    # The best comes from a hypothesis at the stop frame: it stops there.
    beams = [beam([1], -0.5, BEHIND), beam([2], -0.6, AT_END)]
    step = _next_beams(beams, logp({3: -1.0}, {4: -0.1}), 2, EOT, STOP_FRAME)
    assert step == _Stop(1, reached_end=True, token=4)


def test_ends_and_hypotheses_at_the_stop_do_not_go_on():
    beams = [beam([1], -0.5, BEHIND), beam([2], -0.6, AT_END)]
    # Beam 0's best is better than anything of beam 1; its end of text and
    # beam 1's tokens (at the stop frame) are left out of the next beams.
    step = _next_beams(beams, logp({3: -0.1, EOT: -0.2, 4: -0.3}, {5: -0.05}), 2, EOT, STOP_FRAME)
    sources, out = step
    assert sources == [0, 0] and [b.new for b in out] == [[1, 3], [1, 4]]


@pytest.fixture(scope="module")
def window(tiny_whisper):
    from mlx_whisper.load_models import load_model

    from juno.transcriber.whisper_window import WhisperWindow

    def make(beams: int) -> WhisperWindow:
        return WhisperWindow(load_model(str(tiny_whisper)), context_pad_s=2.0, beams=beams)

    return make


def test_bad_beam_size_is_a_one_line_error(window):
    with pytest.raises(JunoError, match="beam_size"):
        window(0)


@pytest.mark.parametrize("beams", [1, 4])
def test_each_beam_scores_what_one_forward_pass_scores(window, beams):
    """The kept hypothesis's log probabilities equal those of its tokens decoded in
    one plain forward pass: batching the beams and reordering their caches change
    nothing. Random weights, so the hypotheses are anything but the greedy one."""
    import mlx.core as mx
    from mlx_whisper.tokenizer import get_tokenizer

    from juno.transcriber.whisper_window import _prefix, _suppress_mask

    w = window(beams)
    audio = np.random.default_rng(1).normal(0, 0.1, 3 * 16000).astype(np.float32)
    forced = [440, 1002]
    out = w.continue_decoding(audio, "en", "a prompt", forced, stop_s=1e9, max_new_tokens=8)
    assert len(out.tokens) == 8 and not out.reached_end
    model = w.model
    tokenizer = get_tokenizer(model.is_multilingual, num_languages=model.num_languages)
    tokens = _prefix(tokenizer, "a prompt", model.dims.n_text_ctx) + forced + list(out.tokens)
    features, _ = w.encode(audio)
    logits, _, _ = model.decoder(mx.array([tokens]), features[None])
    rows = np.array(logits[0]) + _suppress_mask(tokenizer, model.dims.n_vocab)
    logp = rows - np.logaddexp.reduce(rows, axis=-1, keepdims=True)
    first = len(tokens) - len(out.tokens)
    expected = [logp[first - 1 + i, t] for i, t in enumerate(out.tokens)]
    assert out.avg_logprob == pytest.approx(float(np.mean(expected)), abs=1e-4)
