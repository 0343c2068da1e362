"""Dynamic int8 inference for linear layers (``recognizer.compute = "int8"``), shared by the
model families: :class:`Int8Linear` (int8 weights per output row, activations quantized at each
call) and :func:`quantize_int8`, which swaps it in for every ``nn.Linear`` of a module."""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import cast

import torch
from torch import Tensor, nn


def int8_supported() -> bool:
    """Whether this torch build has a quantized engine (fbgemm/x86 on x86-64, qnnpack on ARM)
    to run :class:`Int8Linear`."""
    return any(e != "none" for e in torch.backends.quantized.supported_engines)


@lru_cache(maxsize=1)
def int8_full_range() -> bool:
    """Whether int8 activations may use the full 8 bits: on x86 CPUs with VNNI (int8 dot
    products accumulated in int32). Without it, fbgemm's AVX2 kernels add pairs of int8
    products in int16, which saturates unless activations keep to 7 bits (torch's
    ``reduce_range``). Read from /proc/cpuinfo; elsewhere 7 bits, the safe choice."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo
                          if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


class Int8Linear(nn.Module):
    """A linear layer with int8 weights and dynamically quantized int8 activations.

    Weights are quantized once, symmetrically per output row (scale = row's max |w| / 127);
    at each call the input is quantized per tensor to 8 bits (7 with ``reduce_range``, see
    :func:`int8_full_range`), multiplied in int8 with
    int32 accumulation and scaled back to float32 (torch's quantized ``linear_dynamic``).
    About 3-10x faster than float32 on CPU for Whisper's layer sizes, with 4x less weight
    memory traffic. Inference only: the packed weights are not parameters."""

    def __init__(self, weight: Tensor, bias: Tensor | None = None,
                 reduce_range: bool | None = None) -> None:
        super().__init__()
        weight = weight.detach().float()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.reduce_range = not int8_full_range() if reduce_range is None else reduce_range
        """7-bit activations (default: unless the CPU has VNNI, see :func:`int8_full_range`)."""
        scales = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-12).double()
        with warnings.catch_warnings():  # torch flags its quantized tensor types as deprecated
            warnings.simplefilter("ignore")
            qweight = torch.quantize_per_channel(
                weight, scales, torch.zeros_like(scales, dtype=torch.long), 0, torch.qint8)
            self._packed = torch.ops.quantized.linear_prepack(
                qweight, None if bias is None else bias.detach().float())

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        return cls(linear.weight, linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        """x (..., in_features) float32 -> (..., out_features) float32."""
        y = torch.ops.quantized.linear_dynamic(x.reshape(-1, self.in_features).float(),
                                               self._packed, self.reduce_range)
        return cast(Tensor, y).reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_int8(model: nn.Module) -> None:
    """Replace every ``nn.Linear`` inside ``model`` by an :class:`Int8Linear` (in place)."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            setattr(model, name, Int8Linear.from_linear(child))
        else:
            quantize_int8(child)
