"""Corrupt model weights are refused at load, naming the file (real tiny.en weights with a
damaged block, loaded by the real CLI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dictation.integrity import MAX_ABS_WEIGHT, first_bad_tensor, weight_files

REPO = Path(__file__).resolve().parents[1]
WAV = REPO.parent / "shared" / "data" / "dev" / "wav" / "sb-example1.wav"


def test_first_bad_tensor_finds_nan_inf_and_impossible_magnitudes() -> None:
    sound = torch.linspace(-17, 17, 100)
    assert first_bad_tensor([("a", sound), ("ids", torch.arange(10**6))]) is None
    for bad in (float("nan"), float("inf"), 10 * MAX_ABS_WEIGHT):
        damaged = sound.clone()
        damaged[42] = bad
        found = first_bad_tensor([("a", sound), ("b", damaged)])
        assert found is not None and found[0] == "b"


def test_transcribe_refuses_a_model_folder_with_damaged_weights(tmp_path: Path) -> None:
    from dictation.asr.catalog import resolve

    source = resolve("tiny.en", download=False).path
    folder = tmp_path / "tiny-damaged"
    shutil.copytree(source, folder)
    [weights] = weight_files(folder)
    size = weights.stat().st_size
    with open(weights, "r+b") as f:  # 64 KiB of noise in the middle (a bad disk block)
        f.seek(int(size * 0.6))
        f.write(np.random.default_rng(0).bytes(64 * 1024))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run([sys.executable, "-m", "dictation", "transcribe", "--model",
                           str(folder), str(WAV)], capture_output=True, text=True, timeout=300,
                          env=env, cwd=REPO)
    assert done.returncode != 0, done.stdout
    assert str(weights) in done.stderr and "corrupt" in done.stderr, done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("name", ["model.bin", "model.safetensors"])
def test_weight_files_of_both_formats(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    assert weight_files(tmp_path) == [tmp_path / name]


def test_devices_without_a_sound_server_says_so_and_fails(tmp_path: Path) -> None:
    """`dictation devices` with PulseAudio unreachable (no server at PULSE_SERVER; the machine
    has no sound card): a message naming the sound server, exit code non-zero."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PULSE_SERVER": f"unix:{tmp_path}/none"}
    done = subprocess.run([sys.executable, "-m", "dictation", "devices"], capture_output=True,
                          text=True, timeout=120, env=env, cwd=REPO)
    if done.returncode == 0 and done.stdout.strip():
        pytest.skip(f"this machine has input devices without a sound server: {done.stdout}")
    assert done.returncode != 0
    assert "sound server" in done.stderr and "No microphone" in done.stderr, done.stderr
