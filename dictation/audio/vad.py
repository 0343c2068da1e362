"""Silero VAD (v5, 16 kHz) in torch, loaded pickle-free from the safetensors file that the
``silero-vad`` package ships. Streaming: one 512-sample frame (32 ms) at a time.

The network: a learned STFT (conv, 256-sample window, 128 hop) -> 4 conv layers -> LSTM cell ->
1x1 conv -> sigmoid. Each call sees the frame plus the last 64 samples of the previous one.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from dictation import SAMPLE_RATE
from dictation.errors import ModelError

FRAME_SAMPLES = 512
"""Samples per VAD frame at 16 kHz (32 ms)."""
CONTEXT_SAMPLES = 64
"""Samples of the previous frame prepended to each frame."""


def packaged_weights() -> Path:
    """Path of ``silero_vad_16k.safetensors`` inside the installed ``silero-vad`` package.

    The package is located, never imported: importing it sets torch to one thread."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the silero-vad package is not installed: pip install silero-vad")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "silero_vad_16k.safetensors"
    if not path.is_file():
        raise ModelError(f"Silero VAD weights missing at {path}: reinstall silero-vad")
    return path


class SileroVadNet(nn.Module):
    """Silero VAD v5 network for 16 kHz audio (tensors only)."""

    def __init__(self) -> None:
        super().__init__()
        self.stft_conv = nn.Conv1d(1, 258, kernel_size=256, stride=128, bias=False)
        self.conv1 = nn.Conv1d(129, 128, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(128, 64, kernel_size=3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(64, 64, kernel_size=3, stride=2, padding=1)
        self.conv4 = nn.Conv1d(64, 128, kernel_size=3, padding=1)
        self.lstm_cell = nn.LSTMCell(128, 128)
        self.final_conv = nn.Conv1d(128, 1, kernel_size=1)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x (B, CONTEXT_SAMPLES + FRAME_SAMPLES) -> speech probability (B,), new LSTM state."""
        x = F.pad(x, (0, CONTEXT_SAMPLES), mode="reflect").unsqueeze(1)
        x = self.stft_conv(x)
        x = (x[:, :129] ** 2 + x[:, 129:] ** 2).sqrt()
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = conv(x).relu()
        h, c = self.lstm_cell(x.squeeze(-1), state)
        prob = self.final_conv(h.unsqueeze(-1).relu()).sigmoid()
        return prob.squeeze(1).mean(dim=1), (h, c)


def load_vad_net(path: Path | None = None) -> SileroVadNet:
    """The network with the packaged (or given) safetensors weights; read-only, shareable."""
    path = path or packaged_weights()
    net = SileroVadNet()
    try:
        net.load_state_dict(load_file(str(path)))
    except Exception as exc:  # safetensors raises its own error types; all mean a bad file
        raise ModelError(f"cannot load Silero VAD weights {path}: {exc}") from exc
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


@dataclass
class VadStream:
    """Per-stream VAD state over a shared network: feed 512-sample frames in order."""

    net: SileroVadNet
    context: Tensor = field(default_factory=lambda: torch.zeros(1, CONTEXT_SAMPLES))
    state: tuple[Tensor, Tensor] | None = None

    def reset(self) -> None:
        self.context = torch.zeros(1, CONTEXT_SAMPLES)
        self.state = None

    @torch.inference_mode()
    def probability(self, frame: np.ndarray) -> float:
        """Speech probability of one frame of exactly FRAME_SAMPLES samples (16 kHz)."""
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(f"VAD frames are {FRAME_SAMPLES} samples, got {frame.shape}")
        x = torch.cat([self.context, torch.from_numpy(np.ascontiguousarray(frame))[None]], dim=1)
        prob, self.state = self.net(x, self.state)
        self.context = x[:, -CONTEXT_SAMPLES:]
        return float(prob[0])


def speech_probabilities(vad: SileroVadNet, audio: np.ndarray) -> np.ndarray:
    """VAD speech probability of each FRAME_SAMPLES frame of ``audio`` (last partial frame
    zero-padded)."""
    stream = VadStream(vad)
    n = -(-len(audio) // FRAME_SAMPLES)
    padded = np.zeros(n * FRAME_SAMPLES, dtype=np.float32)
    padded[: len(audio)] = audio
    return np.array([stream.probability(padded[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES])
                     for i in range(n)], dtype=np.float32)


def window_cuts(probs: np.ndarray, n_samples: int, min_window_s: float = 20.0, *,
                max_window_s: float) -> list[int]:
    """Sample positions that cut ``n_samples`` samples into windows of at most ``max_window_s``
    seconds (a model's longest input), each cut at the quietest frame of ``probs`` (the speech
    probabilities of :func:`speech_probabilities`, smoothed over 5 frames) between
    ``min_window_s`` and ``max_window_s`` into its window."""
    smooth = np.convolve(probs, np.ones(5) / 5, mode="same") if len(probs) else probs
    max_samples = int(max_window_s * SAMPLE_RATE)
    cuts, start = [], 0
    while n_samples - start > max_samples:
        lo = (start + int(min_window_s * SAMPLE_RATE)) // FRAME_SAMPLES
        hi = (start + max_samples) // FRAME_SAMPLES
        frame = lo + int(np.argmin(smooth[lo:hi]))
        start = frame * FRAME_SAMPLES
        cuts.append(start)
    return cuts
