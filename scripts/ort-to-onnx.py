#!/usr/bin/env python3
"""Rewrites an ONNX Runtime ORT-format model (.ort) as the same graph in ONNX format (.onnx).

Why: Moonshine ships as .ort files whose weights are int8 and dequantised by ordinary graph
nodes (Cast, Add, Mul, and a Transpose of the 32768 x 416 embedding for the output projection).
ONNX Runtime applies no graph optimisation to an ORT-format model, so those nodes run again at
every decoder step: about 40 of the 48 ms a step takes on one core. Loaded from ONNX, the same
graph is constant-folded once at load time and a step takes about 9 ms, with the same tokens and
logits equal to within 1e-5 (tests/it/stt.rs checks this against the shipped .ort files).

The graph is copied node for node, initializer for initializer (nothing is changed or dropped).
Reads the .ort flatbuffer with ONNX Runtime's own generated classes (`ort_flatbuffers_py`, from the
onnxruntime wheel) and the `flatbuffers` runtime, and writes the protobuf by hand (the subset of
onnx.proto a model uses), so it needs neither numpy nor the onnx package. Deterministic: the same
input gives the same bytes, so scripts/setup-models.sh pins the output's hash.

Usage: ort-to-onnx.py IN.ort OUT.onnx   (with ort_flatbuffers_py and flatbuffers on PYTHONPATH)
"""

import struct
import sys

from ort_flatbuffers_py.fbs.InferenceSession import InferenceSession
from ort_flatbuffers_py.fbs.TensorTypeAndShape import TensorTypeAndShape
from ort_flatbuffers_py.fbs.TypeInfoValue import TypeInfoValue
from ort_flatbuffers_py.fbs.DimensionValueType import DimensionValueType

# Protobuf wire types.
VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5
# ORT's AttributeType and TensorDataType enums have the same values as onnx.proto's.
ATTR_FLOAT, ATTR_INT, ATTR_STRING, ATTR_TENSOR, ATTR_GRAPH = 1, 2, 3, 4, 5
ATTR_FLOATS, ATTR_INTS, ATTR_STRINGS, ATTR_TENSORS, ATTR_GRAPHS = 6, 7, 8, 9, 10
STRING_TENSOR = 8


def varint(value):
    value &= (1 << 64) - 1  # negative int64s are ten bytes of two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def int_field(field, value):
    return key(field, VARINT) + varint(value)


def bytes_field(field, value):
    if isinstance(value, str):
        value = value.encode()
    return key(field, BYTES) + varint(len(value)) + value


def float_field(field, value):
    return key(field, FIXED32) + struct.pack("<f", value)


def text(value):
    return value.decode() if isinstance(value, bytes) else (value or "")


def raw_bytes(table, field_offset):
    """A flatbuffer [ubyte] vector's bytes, sliced straight out of the buffer."""
    offset = table._tab.Offset(field_offset)
    if offset == 0:
        return b""
    start = table._tab.Vector(offset)
    return bytes(table._tab.Bytes[start : start + table._tab.VectorLen(offset)])


def tensor(t):
    """TensorProto: dims=1, data_type=2, string_data=6, name=8, raw_data=9."""
    out = b"".join(int_field(1, t.Dims(i)) for i in range(t.DimsLength()))
    out += int_field(2, t.DataType())
    if t.DataType() == STRING_TENSOR:
        out += b"".join(bytes_field(6, t.StringData(i)) for i in range(t.StringDataLength()))
    out += bytes_field(8, text(t.Name()))
    if t.ExternalDataOffset() >= 0:
        raise ValueError(f"tensor {text(t.Name())}: external data is not supported")
    if t.DataType() != STRING_TENSOR:
        out += bytes_field(9, raw_bytes(t, 12))  # Tensor.raw_data is field 4: vtable offset 12
    return out


def value_info(v):
    """ValueInfoProto: name=1, type=2 (TypeProto.tensor_type=1: elem_type=1, shape=2)."""
    out = bytes_field(1, text(v.Name()))
    info = v.Type()
    if info is None or info.ValueType() != TypeInfoValue.tensor_type:
        return out
    tensor_type = TensorTypeAndShape()
    table = info.Value()
    tensor_type.Init(table.Bytes, table.Pos)
    body = int_field(1, tensor_type.ElemType())
    shape = tensor_type.Shape()
    if shape is not None:
        dims = b""
        for i in range(shape.DimLength()):
            value = shape.Dim(i).Value()
            dim = b""
            if value is not None and value.DimType() == DimensionValueType.VALUE:
                dim = int_field(1, value.DimValue())
            elif value is not None and value.DimType() == DimensionValueType.PARAM:
                dim = bytes_field(2, text(value.DimParam()))
            dims += bytes_field(1, dim)
        body += bytes_field(2, dims)
    return out + bytes_field(2, bytes_field(1, body))


def attribute(a):
    """AttributeProto: name=1, f=2, i=3, s=4, t=5, g=6, floats=7, ints=8, strings=9, tensors=10,
    graphs=11, type=20."""
    kind = a.Type()
    out = bytes_field(1, text(a.Name()))
    if kind == ATTR_FLOAT:
        out += float_field(2, a.F())
    elif kind == ATTR_INT:
        out += int_field(3, a.I())
    elif kind == ATTR_STRING:
        out += bytes_field(4, a.S() or b"")
    elif kind == ATTR_TENSOR:
        out += bytes_field(5, tensor(a.T()))
    elif kind == ATTR_GRAPH:
        out += bytes_field(6, graph(a.G()))
    elif kind == ATTR_FLOATS:
        out += b"".join(float_field(7, a.Floats(i)) for i in range(a.FloatsLength()))
    elif kind == ATTR_INTS:
        out += b"".join(int_field(8, a.Ints(i)) for i in range(a.IntsLength()))
    elif kind == ATTR_STRINGS:
        out += b"".join(bytes_field(9, a.Strings(i)) for i in range(a.StringsLength()))
    elif kind == ATTR_TENSORS:
        out += b"".join(bytes_field(10, tensor(a.Tensors(i))) for i in range(a.TensorsLength()))
    elif kind == ATTR_GRAPHS:
        out += b"".join(bytes_field(11, graph(a.Graphs(i))) for i in range(a.GraphsLength()))
    else:
        raise ValueError(f"attribute {text(a.Name())}: type {kind} is not supported")
    return out + int_field(20, kind)


def node(n):
    """NodeProto: input=1, output=2, name=3, op_type=4, attribute=5, domain=7."""
    out = b"".join(bytes_field(1, text(n.Inputs(i))) for i in range(n.InputsLength()))
    out += b"".join(bytes_field(2, text(n.Outputs(i))) for i in range(n.OutputsLength()))
    out += bytes_field(3, text(n.Name())) + bytes_field(4, text(n.OpType()))
    out += b"".join(bytes_field(5, attribute(n.Attributes(i))) for i in range(n.AttributesLength()))
    if text(n.Domain()):
        out += bytes_field(7, text(n.Domain()))
    return out


def graph(g):
    """GraphProto: node=1, name=2, initializer=5, input=11, output=12."""
    if g.SparseInitializersLength():
        raise ValueError("sparse initializers are not supported")
    args = {text(g.NodeArgs(i).Name()): g.NodeArgs(i) for i in range(g.NodeArgsLength())}
    initializers = [g.Initializers(i) for i in range(g.InitializersLength())]
    constant = {text(t.Name()) for t in initializers}
    out = b"".join(bytes_field(1, node(g.Nodes(i))) for i in range(g.NodesLength()))
    out += bytes_field(2, "graph")
    out += b"".join(bytes_field(5, tensor(t)) for t in initializers)
    inputs = [text(g.Inputs(i)) for i in range(g.InputsLength())]
    out += b"".join(bytes_field(11, value_info(args[name])) for name in inputs if name not in constant)
    outputs = [text(g.Outputs(i)) for i in range(g.OutputsLength())]
    out += b"".join(bytes_field(12, value_info(args[name])) for name in outputs)
    return out


def model(buffer):
    """ModelProto: ir_version=1, producer_name=2, graph=7, opset_import=8 (domain=1, version=2)."""
    m = InferenceSession.GetRootAs(buffer, 0).Model()
    out = int_field(1, m.IrVersion()) + bytes_field(2, "phone-agent ort-to-onnx")
    out += bytes_field(7, graph(m.Graph()))
    for i in range(m.OpsetImportLength()):
        opset = m.OpsetImport(i)
        entry = b""
        if text(opset.Domain()):
            entry += bytes_field(1, text(opset.Domain()))
        out += bytes_field(8, entry + int_field(2, opset.Version()))
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: ort-to-onnx.py IN.ort OUT.onnx")
    with open(sys.argv[1], "rb") as source:
        converted = model(source.read())
    with open(sys.argv[2], "wb") as target:
        target.write(converted)


if __name__ == "__main__":
    main()
