"""Word timestamps by forced alignment, the method of openai/whisper's ``timing.py``.

The decoder's alignment heads attend, for each output token, to the encoder frames (20 ms each)
where that token is spoken. For one window of at most 30 s:

1. Run the decoder over ``<|startoftranscript|> <|notimestamps|> tokens <|endoftext|>`` (or reuse
   the weights of a greedy decode) and keep the alignment heads' cross-attention: one row per
   output token plus the end-of-text step, restricted to the frames that hold audio.
2. Standardise each head's weights per frame over the token rows, median-filter them along time
   (width 7), and average the heads: a (tokens + 1, frames) similarity matrix.
3. Dynamic time warping over the cost ``-matrix`` gives a monotonic path; a token starts at the
   first frame of its row on the path and ends where the next row starts.
4. Tokens are grouped into words (a token starting with a space starts a word; punctuation joins
   the neighbouring word and does not count towards its times).

Audio longer than 30 s is cut into windows of at most 30 s where the offline transcriber
(:mod:`dictation.asr.whisper.transcribe`) cuts it, each aligned on its own and offset by its
start. Where
whisper patches over-long words with its segment timestamps, this module (decoding without
timestamps) shrinks each word to the speech that Silero VAD hears inside it.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from dictation import SAMPLE_RATE
from dictation.asr.session import Recognizer
from dictation.asr.whisper.decoding import DecodeOptions, DecodeResult, decode, encode_audio
from dictation.asr.whisper.features import CHUNK_SECONDS, N_SAMPLES
from dictation.asr.whisper.guards import is_non_speech_window
from dictation.asr.whisper.loaders import LoadedModel
from dictation.asr.whisper.recognizer import WhisperRecognizer
from dictation.audio.vad import (
    FRAME_SAMPLES,
    SileroVadNet,
    load_vad_net,
    speech_probabilities,
    window_cuts,
)
from dictation.errors import DictationError

FRAME_S = 0.02
"""Seconds per encoder frame (two 10 ms mel frames)."""
SAMPLES_PER_FRAME = int(FRAME_S * SAMPLE_RATE)
MAX_WINDOW_S = 30.0
"""Longest audio Whisper sees at once, seconds."""
MEDIAN_FILTER_WIDTH = 7
"""Width of the median filter over the attention weights, encoder frames."""
PREPENDED_PUNCTUATION = "\"'“¿([{-"
"""Punctuation that belongs to the word after it (when it follows a space)."""
SPEECH_THRESHOLD = 0.35
"""VAD probability from which a frame counts as speech when trimming words."""
SPEECH_MARGIN_FRAMES = 2
"""VAD frames (32 ms each) of slack kept around speech when trimming words."""
SPEECH_MAX_GAP_FRAMES = 5
"""Shorter pauses (VAD frames of 32 ms) inside speech do not split it when trimming words."""

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class WordTiming:
    """One spoken word and when it is said, seconds from the start of the audio."""

    word: str
    """The word as transcribed (punctuation attached, no surrounding spaces)."""
    start_s: float
    end_s: float


# ------------------------------------------------------------------------- numeric building blocks


def median_filter(x: npt.NDArray[np.floating], width: int) -> FloatArray:
    """Median over a sliding window of ``width`` (odd) along the last axis, with reflected
    edges; inputs shorter than half the window are returned unchanged."""
    if width < 1 or width % 2 == 0:
        raise ValueError(f"median filter width must be odd and positive, got {width}")
    pad = width // 2
    data = np.asarray(x, dtype=np.float64)
    if data.shape[-1] <= pad:
        return data
    padding = [(0, 0)] * (data.ndim - 1) + [(pad, pad)]
    padded = np.pad(data, padding, mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=-1)
    return np.asarray(np.median(windows, axis=-1), dtype=np.float64)


def dtw_path(cost: npt.NDArray[np.floating]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Cheapest monotonic path through ``cost`` (rows x columns) from (0, 0) to the last cell,
    moving one row down, one column right, or both at each step.

    Returns (row indices, column indices) of the path, in order. Each row of the accumulated
    cost is computed at once: within a row the recurrence ``D[i, j] = min(A[j], D[i, j-1] +
    c[i, j])`` is a running minimum over prefix sums (numpy only, O(rows x columns))."""
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] == 0:
        raise ValueError(f"DTW needs a non-empty 2-D cost matrix, got shape {c.shape}")
    n, m = c.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        row = c[i - 1]
        # best of arriving diagonally or from above, plus this cell
        arrive = row + np.minimum(acc[i - 1, :-1], acc[i - 1, 1:])
        prefix = np.cumsum(row)
        with np.errstate(invalid="ignore"):
            acc[i, 1:] = prefix + np.minimum.accumulate(arrive - prefix)
    # backtrack through a cheapest predecessor (ties: diagonal, then down, then right)
    i, j = n, m
    rows: list[int] = []
    cols: list[int] = []
    while i > 0 and j > 0:
        rows.append(i - 1)
        cols.append(j - 1)
        diag, up, left = acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]
        if diag <= up and diag <= left:
            i, j = i - 1, j - 1
        elif up <= left:
            i -= 1
        else:
            j -= 1
    return np.array(rows[::-1], dtype=np.int64), np.array(cols[::-1], dtype=np.int64)


def attention_matrix(cross: Tensor | npt.NDArray[np.floating], n_frames: int,
                     filter_width: int = MEDIAN_FILTER_WIDTH) -> FloatArray:
    """Alignment heads' cross-attention (heads, rows, encoder frames) -> (rows, n_frames)
    token-frame similarity: weights renormalised over the first ``n_frames`` frames (those
    holding audio), standardised per head and frame over the rows, median-filtered along time,
    averaged over heads."""
    w = cross.detach().float().cpu().numpy() if isinstance(cross, Tensor) else np.asarray(cross)
    w = np.asarray(w, dtype=np.float64)[:, :, :n_frames]
    w = w / np.maximum(w.sum(axis=-1, keepdims=True), 1e-12)
    mean = w.mean(axis=-2, keepdims=True)
    std = w.std(axis=-2, keepdims=True)
    w = (w - mean) / np.maximum(std, 1e-9)
    return np.asarray(median_filter(w, filter_width).mean(axis=0), dtype=np.float64)


def token_boundaries(matrix: npt.NDArray[np.floating]) -> npt.NDArray[np.int64]:
    """First frame of each row on the DTW path through ``-matrix``: row i's token spans frames
    [b[i], b[i + 1]). Shape (rows,)."""
    rows, cols = dtw_path(-np.asarray(matrix))
    first = np.ones(len(rows), dtype=bool)
    first[1:] = np.diff(rows) > 0
    return cols[first]


# ------------------------------------------------------------------------------- words from tokens


def _is_punctuation(text: str) -> bool:
    stripped = text.strip()
    return bool(stripped) and all(unicodedata.category(ch).startswith("P") or ch in "$%&*+<=>^|~"
                                  for ch in stripped)


class _TokensToText:
    """Text of a run of tokens (decoded together, so multi-byte characters survive)."""

    def __init__(self, loaded: LoadedModel, tokens: list[int]) -> None:
        self.loaded, self.tokens = loaded, tokens

    def __call__(self, indices: list[int]) -> str:
        return self.loaded.tokenizer.decode([self.tokens[i] for i in indices])


@dataclass
class _WordBuilder:
    tokens: list[int]
    timed: list[int]
    """Indices (into the token list) of the tokens that set the word's times."""


def group_words(token_texts: list[str], starts: npt.NDArray[np.floating],
                ends: npt.NDArray[np.floating],
                decode_text: Callable[[list[int]], str] | None = None
                ) -> list[WordTiming]:
    """Group timed tokens into words. ``token_texts[i]`` is token i's text, spoken from
    ``starts[i]`` to ``ends[i]`` seconds. A token starting with a space starts a word;
    punctuation joins the previous word (opening punctuation after a space: the next word) and
    does not change the word's times. ``decode_text`` turns a word's token indices into its text
    (default: concatenation of the token texts)."""
    words: list[_WordBuilder] = []
    pending: list[int] = []  # opening punctuation waiting for its word
    for index, text in enumerate(token_texts):
        if _is_punctuation(text):
            if (text.startswith(" ") and text.strip() in PREPENDED_PUNCTUATION) or not words:
                pending.append(index)
            else:
                words[-1].tokens.append(index)
            continue
        if text.startswith(" ") or not words or pending:
            words.append(_WordBuilder(tokens=[*pending, index], timed=[index]))
            pending = []
        else:
            words[-1].tokens.append(index)
            words[-1].timed.append(index)
    if pending and words:
        words[-1].tokens.extend(pending)

    def join(indices: list[int]) -> str:
        if decode_text is not None:
            return decode_text(indices)
        return "".join(token_texts[i] for i in indices)

    result = []
    for w in words:
        text = join(sorted(w.tokens)).strip()
        if text:
            result.append(WordTiming(text, float(starts[w.timed[0]]), float(ends[w.timed[-1]])))
    return result


# ------------------------------------------------------------------------------ one window (<=30 s)


@torch.inference_mode()
def forced_cross_attention(loaded: LoadedModel, audio: np.ndarray, tokens: list[int]) -> Tensor:
    """Alignment heads' cross-attention for ``tokens`` forced on ``audio`` (at most 30 s, padded
    to the full window): shape (heads, len(tokens) + 1, 1500); row i is the step predicting
    token i, the last row the end-of-text step."""
    tok, model = loaded.tokenizer, loaded.model
    prompt = [*tok.sot_sequence, tok.no_timestamps]
    sequence = [*prompt, *tokens, tok.eot]
    if len(sequence) > model.dims.n_text_ctx:
        raise ValueError(f"{len(tokens)} tokens do not fit the decoder context "
                         f"({model.dims.n_text_ctx}); align shorter text per window")
    cache = model.decoder.new_cache(encode_audio(loaded, audio, DecodeOptions(full_window=True)))
    _, weights = model.decoder.hidden(torch.tensor([sequence]), cache, want_cross_weights=True)
    stacked = torch.stack([weights[layer][0, head] for layer, head in model.alignment_heads])
    return stacked[:, len(prompt) - 1: len(prompt) + len(tokens)]


def align_tokens(loaded: LoadedModel, audio: np.ndarray, tokens: list[int],
                 cross: Tensor | None = None, offset_s: float = 0.0) -> list[WordTiming]:
    """Word timings of ``tokens`` (text tokens only) spoken in ``audio`` (at most 30 s).

    ``cross``: the alignment heads' weights (heads, len(tokens) + 1, frames) when a decode
    already computed them (``DecodeOptions(word_timestamps=True)``); otherwise the tokens are
    forced. ``offset_s`` is added to every time."""
    tokens = [t for t in tokens if t < loaded.tokenizer.eot]
    if not tokens or len(audio) == 0:
        return []
    if len(audio) > MAX_WINDOW_S * SAMPLE_RATE:
        raise ValueError(f"align_tokens handles at most {MAX_WINDOW_S:g} s of audio, got "
                         f"{len(audio) / SAMPLE_RATE:.1f} s; use align_words")
    if cross is None or cross.shape[1] != len(tokens) + 1:
        cross = forced_cross_attention(loaded, audio, tokens)
    n_frames = max(1, min(cross.shape[-1], -(-len(audio) // SAMPLES_PER_FRAME)))
    bounds = token_boundaries(attention_matrix(cross, n_frames))
    times = offset_s + bounds * FRAME_S
    texts = [loaded.tokenizer.token_text(t) for t in tokens]
    return group_words(texts, times[:-1], times[1:], _TokensToText(loaded, tokens))


# ------------------------------------------------------------------------------- whole files


def _speech_runs(speech: npt.NDArray[np.bool_], max_gap: int) -> list[tuple[int, int]]:
    """[first, last + 1) frame ranges of speech, runs closer than ``max_gap`` frames merged."""
    frames = np.flatnonzero(speech)
    if len(frames) == 0:
        return []
    breaks = np.flatnonzero(np.diff(frames) > max_gap + 1)
    starts = np.concatenate([[frames[0]], frames[breaks + 1]])
    ends = np.concatenate([frames[breaks], [frames[-1]]]) + 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def trim_to_speech(words: list[WordTiming], probs: npt.NDArray[np.floating],
                   threshold: float = SPEECH_THRESHOLD,
                   margin_frames: int = SPEECH_MARGIN_FRAMES,
                   max_gap_frames: int = SPEECH_MAX_GAP_FRAMES) -> list[WordTiming]:
    """Shrink each word to the speech it spans: attention-based times often stretch a word over
    a neighbouring pause. ``probs``: speech probability per 32 ms VAD frame; frames at or above
    ``threshold``, widened by ``margin_frames`` on each side, count as speech, and gaps up to
    ``max_gap_frames`` are bridged. A word spanning several runs of speech keeps the longest;
    a word spanning no speech keeps its times."""
    speech = probs >= threshold
    if margin_frames > 0 and speech.any():
        kernel = np.ones(2 * margin_frames + 1)
        speech = np.convolve(speech.astype(np.float64), kernel, mode="same") > 0
    frame_s = FRAME_SAMPLES / SAMPLE_RATE
    trimmed = []
    for w in words:
        first = int(w.start_s / frame_s)
        last = min(len(speech), int(np.ceil(w.end_s / frame_s)))
        runs = _speech_runs(speech[first:last], max_gap_frames)
        if not runs:
            trimmed.append(w)
            continue
        run_start, run_end = max(runs, key=lambda r: r[1] - r[0])
        start = max(w.start_s, (first + run_start) * frame_s)
        end = min(w.end_s, (first + run_end) * frame_s)
        trimmed.append(WordTiming(w.word, start, max(start, end)))
    return trimmed


def _normalise_word(word: str) -> str:
    return re.sub(r"[^a-z0-9']+", "", word.lower())


def distribute_words(words: list[str], window_words: list[list[str]]) -> list[list[str]]:
    """Split ``words`` (a transcript of the whole audio) into consecutive runs, one per window,
    following where a per-window transcript (``window_words``) has the same words (difflib on
    lower-case alphanumerics). A word that matches nothing goes with the word before it."""
    hyp = [_normalise_word(w) for ws in window_words for w in ws]
    owner = [k for k, ws in enumerate(window_words) for _ in ws]
    ref = [_normalise_word(w) for w in words]
    assigned: list[int | None] = [None] * len(words)
    matcher = difflib.SequenceMatcher(None, ref, hyp, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            assigned[block.a + k] = owner[block.b + k]
    window = 0
    runs: list[list[str]] = [[] for _ in window_words]
    for word, where in zip(words, assigned, strict=True):
        if where is not None and where >= window:
            window = where
        runs[window].append(word)
    return runs


def align_words(loaded: LoadedModel, audio: np.ndarray, text: str | None = None,
                vad_net: SileroVadNet | None = None, trim: bool = True) -> list[WordTiming]:
    """Words of ``audio`` (16 kHz mono float32, any length) with their start and end times in
    seconds from the start of the audio.

    text None: transcribe (greedy, full 30 s windows, as
    :mod:`dictation.asr.whisper.transcribe` does) and
    time the transcript; otherwise force ``text``'s tokens. Audio over 30 s is aligned per
    window, cut where :func:`dictation.audio.vad.window_cuts` cuts it (Silero VAD
    ``vad_net``,
    loaded on demand); forced text is then shared out between the windows by matching it
    against each window's own transcript. With ``trim``, words are shrunk to the speech VAD
    hears inside them (see :func:`trim_to_speech`)."""
    audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
    if text is not None and not text.strip():
        return []
    long = len(audio) > N_SAMPLES
    probs = None
    if trim or long:
        probs = speech_probabilities(vad_net or load_vad_net(), audio).astype(np.float64)
    cuts = (window_cuts(probs, len(audio), max_window_s=CHUNK_SECONDS)
            if long and probs is not None else [])
    bounds = [0, *cuts, len(audio)]
    windows = list(zip(bounds[:-1], bounds[1:], strict=True))
    tok = loaded.tokenizer
    timings: list[WordTiming] = []
    if text is not None and len(windows) == 1:
        timings = align_tokens(loaded, audio, tok.encode(" " + text.strip()))
    else:
        options = DecodeOptions(full_window=True, word_timestamps=True)
        results: list[DecodeResult | None] = []
        prompt: list[int] = []
        for start, end in windows:
            result = decode(loaded, audio[start:end], prompt=prompt or None, options=options)
            speech = not is_non_speech_window(result)
            results.append(result if speech else None)
            prompt += result.tokens if speech else []
        if text is None:
            for (start, end), found in zip(windows, results, strict=True):
                if found is not None:
                    timings += align_tokens(loaded, audio[start:end], found.tokens,
                                            cross=found.cross_attention,
                                            offset_s=start / SAMPLE_RATE)
        else:
            heard = [r.text.split() if r is not None else [] for r in results]
            runs = distribute_words(text.split(), heard)
            for (start, end), run in zip(windows, runs, strict=True):
                if run:
                    timings += align_tokens(loaded, audio[start:end],
                                            tok.encode(" " + " ".join(run)),
                                            offset_s=start / SAMPLE_RATE)
    if trim and probs is not None:
        timings = trim_to_speech(timings, probs)
    return timings


ALIGNER_MODEL = "tiny.en"
"""The embedded Whisper that times words for families without an aligner of their own."""


@cache
def embedded_aligner(threads: int) -> WhisperRecognizer | None:
    """:data:`ALIGNER_MODEL`, loaded once (float32, ``threads`` torch threads), or None when it
    is not installed."""
    from dictation.asr.recognizer import load_recognizer

    try:
        aligner = load_recognizer(ALIGNER_MODEL, download=False, progress=False,
                                  threads=threads, compute="float32")
    except DictationError:
        return None
    return aligner if isinstance(aligner, WhisperRecognizer) else None


def reference_word_times(recognizer: Recognizer, audio: np.ndarray,
                         text: str) -> list[WordTiming]:
    """Word times of ``text`` in ``audio`` as the benchmark's reference for commit lag: forced
    alignment with the recognizer's own model where it is a Whisper model, otherwise with the
    embedded Whisper (:func:`embedded_aligner`); [] (lag not measured) without either."""
    if not text.strip():
        return []
    aligner = (recognizer if isinstance(recognizer, WhisperRecognizer)
               else embedded_aligner(torch.get_num_threads()))
    if aligner is None:
        return []
    return align_words(aligner.loaded, audio, text=text, vad_net=aligner.vad)
