"""A small reader of onnxruntime's ORT format (a FlatBuffers file, schema
``onnxruntime/core/flatbuffers/schema/ort.fbs``): the graph's nodes and constant tensors only.

The graph is never run. The reader walks the buffer with ``struct`` (no generated code, no
onnxruntime): ``InferenceSession.model.graph`` -> initializers (name, dims, data type, raw
bytes) and nodes (name, op type, inputs, outputs, sub-graphs of ``If``/``Loop`` attributes).

FlatBuffers layout in brief: every offset is little-endian; a table starts with an int32 that
points back to its vtable (a list of uint16 field offsets); references to tables, vectors and
strings are uint32 offsets relative to where they are stored.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dictation.errors import ModelError

FILE_IDENTIFIER = b"ORTM"

# ONNX TensorProto.DataType -> numpy dtype (the ones weights use).
ONNX_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),
    2: np.dtype("u1"),
    3: np.dtype("i1"),
    5: np.dtype("<i2"),
    6: np.dtype("<i4"),
    7: np.dtype("<i8"),
    9: np.dtype("?"),
    10: np.dtype("<f2"),
    11: np.dtype("<f8"),
}

# Field ids of the tables read here (ort.fbs).
_SESSION_MODEL = 1
_MODEL_GRAPH = 7
_GRAPH_INITIALIZERS, _GRAPH_NODES = 0, 2
_GRAPH_INPUTS, _GRAPH_OUTPUTS = 5, 6
_NODE_NAME, _NODE_OP_TYPE, _NODE_INPUTS, _NODE_OUTPUTS, _NODE_ATTRIBUTES = 0, 5, 8, 9, 10
_ATTR_NAME, _ATTR_G, _ATTR_GRAPHS = 0, 7, 12
_TENSOR_NAME, _TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_RAW_DATA = 0, 2, 3, 4
_TENSOR_EXTERNAL_DATA_OFFSET = 6


@dataclass(frozen=True)
class OrtTensor:
    """A constant tensor of the graph (an initializer)."""

    name: str
    array: np.ndarray


@dataclass(frozen=True)
class OrtNode:
    """One operator of the graph; ``subgraphs`` holds the graphs of control-flow attributes."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    subgraphs: tuple[OrtGraph, ...] = ()


@dataclass(frozen=True)
class OrtGraph:
    """A graph: constant tensors by name, nodes in file order, graph input/output names."""

    initializers: dict[str, OrtTensor]
    nodes: tuple[OrtNode, ...]
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    children: list[OrtGraph] = field(default_factory=list)

    def walk(self) -> list[tuple[OrtGraph, OrtNode]]:
        """Every node of this graph and of its sub-graphs (depth first), with its graph."""
        found: list[tuple[OrtGraph, OrtNode]] = []
        for node in self.nodes:
            found.append((self, node))
            for sub in node.subgraphs:
                found.extend(sub.walk())
        return found

    def all_initializers(self) -> dict[str, OrtTensor]:
        """Constant tensors of this graph and of every sub-graph (names are unique in ONNX)."""
        merged = dict(self.initializers)
        for _, node in self.walk():
            for sub in node.subgraphs:
                merged.update(sub.initializers)
        return merged


class _Buffer:
    """Typed reads from a FlatBuffers byte buffer (bounds-checked by ``struct``)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def u16(self, pos: int) -> int:
        return int(struct.unpack_from("<H", self.data, pos)[0])

    def u32(self, pos: int) -> int:
        return int(struct.unpack_from("<I", self.data, pos)[0])

    def i32(self, pos: int) -> int:
        return int(struct.unpack_from("<i", self.data, pos)[0])

    def i64(self, pos: int) -> int:
        return int(struct.unpack_from("<q", self.data, pos)[0])

    def field(self, table: int, field_id: int) -> int | None:
        """Absolute position of a table's field, or None when the field is absent."""
        vtable = table - self.i32(table)
        voffset = 4 + 2 * field_id
        if voffset >= self.u16(vtable):
            return None
        offset = self.u16(vtable + voffset)
        return table + offset if offset else None

    def indirect(self, pos: int) -> int:
        return pos + self.u32(pos)

    def table(self, table: int, field_id: int) -> int | None:
        pos = self.field(table, field_id)
        return None if pos is None else self.indirect(pos)

    def string(self, table: int, field_id: int) -> str:
        pos = self.field(table, field_id)
        if pos is None:
            return ""
        start = self.indirect(pos)
        return self.data[start + 4:start + 4 + self.u32(start)].decode("utf-8")

    def vector(self, table: int, field_id: int) -> tuple[int, int]:
        """(position of the first element, length) of a vector field; (0, 0) when absent."""
        pos = self.field(table, field_id)
        if pos is None:
            return 0, 0
        start = self.indirect(pos)
        return start + 4, self.u32(start)

    def tables(self, table: int, field_id: int) -> list[int]:
        start, n = self.vector(table, field_id)
        return [self.indirect(start + 4 * i) for i in range(n)]

    def strings(self, table: int, field_id: int) -> tuple[str, ...]:
        out = []
        for pos in self.tables(table, field_id):
            out.append(self.data[pos + 4:pos + 4 + self.u32(pos)].decode("utf-8"))
        return tuple(out)

    def scalar_i32(self, table: int, field_id: int, default: int) -> int:
        pos = self.field(table, field_id)
        return default if pos is None else self.i32(pos)

    def scalar_i64(self, table: int, field_id: int, default: int) -> int:
        pos = self.field(table, field_id)
        return default if pos is None else self.i64(pos)


def _read_tensor(buf: _Buffer, table: int, where: str) -> OrtTensor:
    name = buf.string(table, _TENSOR_NAME)
    start, n = buf.vector(table, _TENSOR_DIMS)
    dims = tuple(buf.i64(start + 8 * i) for i in range(n))
    data_type = buf.scalar_i32(table, _TENSOR_DATA_TYPE, 0)
    if buf.scalar_i64(table, _TENSOR_EXTERNAL_DATA_OFFSET, -1) >= 0:
        raise ModelError(f"{where}: tensor {name} keeps its data outside the graph, which this "
                         "reader does not support.")
    dtype = ONNX_DTYPES.get(data_type)
    if dtype is None:
        raise ModelError(f"{where}: tensor {name} has unsupported ONNX data type {data_type}.")
    raw_start, raw_len = buf.vector(table, _TENSOR_RAW_DATA)
    count = int(np.prod(dims)) if dims else 1
    if raw_len != count * dtype.itemsize:
        raise ModelError(f"{where}: tensor {name} has {raw_len} bytes of data, expected "
                         f"{count * dtype.itemsize} for shape {dims}.")
    array = np.frombuffer(buf.data, dtype=dtype, count=count, offset=raw_start).reshape(dims)
    return OrtTensor(name=name, array=array)


def _read_graph(buf: _Buffer, table: int, where: str, depth: int = 0) -> OrtGraph:
    if depth > 8:
        raise ModelError(f"{where}: sub-graphs nested too deeply.")
    initializers = {}
    for pos in buf.tables(table, _GRAPH_INITIALIZERS):
        tensor = _read_tensor(buf, pos, where)
        initializers[tensor.name] = tensor
    nodes = []
    for pos in buf.tables(table, _GRAPH_NODES):
        subgraphs = []
        for attr in buf.tables(pos, _NODE_ATTRIBUTES):
            g = buf.table(attr, _ATTR_G)
            if g is not None:
                subgraphs.append(_read_graph(buf, g, where, depth + 1))
            for g in buf.tables(attr, _ATTR_GRAPHS):
                subgraphs.append(_read_graph(buf, g, where, depth + 1))
        nodes.append(OrtNode(name=buf.string(pos, _NODE_NAME),
                             op_type=buf.string(pos, _NODE_OP_TYPE),
                             inputs=buf.strings(pos, _NODE_INPUTS),
                             outputs=buf.strings(pos, _NODE_OUTPUTS),
                             subgraphs=tuple(subgraphs)))
    return OrtGraph(initializers=initializers, nodes=tuple(nodes),
                    inputs=buf.strings(table, _GRAPH_INPUTS),
                    outputs=buf.strings(table, _GRAPH_OUTPUTS))


def read_ort_graph(data: bytes, where: str = "ORT model") -> OrtGraph:
    """Parse an ORT-format model held in ``data``; ``where`` names it in error messages.

    The returned tensors are read-only views into ``data``."""
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise ModelError(f"{where} is not an onnxruntime ORT-format model (no ORTM identifier).")
    buf = _Buffer(data)
    try:
        session = buf.indirect(0)
        model = buf.table(session, _SESSION_MODEL)
        graph = None if model is None else buf.table(model, _MODEL_GRAPH)
        if graph is None:
            raise ModelError(f"{where} holds no graph.")
        return _read_graph(buf, graph, where)
    except (struct.error, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{where} is damaged: {exc}") from exc


def load_ort_graph(path: Path) -> OrtGraph:
    """Read an ORT-format model file (see read_ort_graph)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"Cannot read {path}: {exc}") from exc
    return read_ort_graph(data, where=str(path))
