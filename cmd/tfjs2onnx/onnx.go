package main

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// A minimal ONNX writer: the few messages of onnx.proto a converted graph
// needs, encoded field by field (field numbers from onnx/onnx.proto, IR
// version 7, opset 13). No generated code: the schema is stable and small.

const (
	onnxFloat = 1 // TensorProto.DataType FLOAT
	onnxInt64 = 7 // TensorProto.DataType INT64

	attrFloat  = 1 // AttributeProto.AttributeType
	attrInt    = 2
	attrString = 3
	attrInts   = 7

	irVersion = 7
	opset     = 13
)

type onnxAttr struct {
	name string
	kind int
	f    float32
	i    int64
	s    string
	ints []int64
}

func intAttr(name string, v int64) onnxAttr     { return onnxAttr{name: name, kind: attrInt, i: v} }
func intsAttr(name string, v []int64) onnxAttr  { return onnxAttr{name: name, kind: attrInts, ints: v} }
func floatAttr(name string, v float32) onnxAttr { return onnxAttr{name: name, kind: attrFloat, f: v} }
func stringAttr(name string, v string) onnxAttr { return onnxAttr{name: name, kind: attrString, s: v} }
func (a onnxAttr) encode() []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, a.name)
	switch a.kind {
	case attrFloat:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.f))
	case attrInt:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.i))
	case attrString:
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendString(b, a.s)
	case attrInts:
		for _, v := range a.ints {
			b = protowire.AppendTag(b, 8, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(v))
		}
	}
	b = protowire.AppendTag(b, 20, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(a.kind))
	return b
}

type onnxNode struct {
	op      string
	name    string
	inputs  []string
	outputs []string
	attrs   []onnxAttr
}

func (n onnxNode) encode() []byte {
	var b []byte
	for _, in := range n.inputs {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, in)
	}
	for _, out := range n.outputs {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, out)
	}
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendString(b, n.name)
	b = protowire.AppendTag(b, 4, protowire.BytesType)
	b = protowire.AppendString(b, n.op)
	for _, a := range n.attrs {
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, a.encode())
	}
	return b
}

// encodeTensor writes a TensorProto with raw little-endian data.
func encodeTensor(name string, t *tensor) []byte {
	var b []byte
	for _, d := range t.shape {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(d))
	}
	var raw []byte
	dtype := onnxFloat
	if t.isFloat() {
		raw = make([]byte, 4*len(t.f))
		for k, v := range t.f {
			binary.LittleEndian.PutUint32(raw[4*k:], math.Float32bits(v))
		}
	} else {
		dtype = onnxInt64
		raw = make([]byte, 8*len(t.i))
		for k, v := range t.i {
			binary.LittleEndian.PutUint64(raw[8*k:], uint64(v))
		}
	}
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(dtype))
	b = protowire.AppendTag(b, 8, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, 9, protowire.BytesType)
	b = protowire.AppendBytes(b, raw)
	return b
}

// encodeValueInfo writes a float tensor's ValueInfoProto with a fixed shape.
func encodeValueInfo(name string, shape []int) []byte {
	var dims []byte
	for _, d := range shape {
		var dim []byte
		dim = protowire.AppendTag(dim, 1, protowire.VarintType)
		dim = protowire.AppendVarint(dim, uint64(d))
		dims = protowire.AppendTag(dims, 1, protowire.BytesType)
		dims = protowire.AppendBytes(dims, dim)
	}
	var tt []byte
	tt = protowire.AppendTag(tt, 1, protowire.VarintType)
	tt = protowire.AppendVarint(tt, onnxFloat)
	tt = protowire.AppendTag(tt, 2, protowire.BytesType)
	tt = protowire.AppendBytes(tt, dims)
	var typ []byte
	typ = protowire.AppendTag(typ, 1, protowire.BytesType)
	typ = protowire.AppendBytes(typ, tt)
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, typ)
	return b
}

type valueInfo struct {
	name  string
	shape []int
}

type initializer struct {
	name string
	t    *tensor
}

type onnxGraph struct {
	name         string
	doc          string
	nodes        []onnxNode
	initializers []initializer
	inputs       []valueInfo
	outputs      []valueInfo
}

// encodeModel writes the ModelProto.
func (g *onnxGraph) encodeModel(producer, version string) []byte {
	var gb []byte
	for _, n := range g.nodes {
		gb = protowire.AppendTag(gb, 1, protowire.BytesType)
		gb = protowire.AppendBytes(gb, n.encode())
	}
	gb = protowire.AppendTag(gb, 2, protowire.BytesType)
	gb = protowire.AppendString(gb, g.name)
	for _, in := range g.initializers {
		gb = protowire.AppendTag(gb, 5, protowire.BytesType)
		gb = protowire.AppendBytes(gb, encodeTensor(in.name, in.t))
	}
	if g.doc != "" {
		gb = protowire.AppendTag(gb, 10, protowire.BytesType)
		gb = protowire.AppendString(gb, g.doc)
	}
	for _, v := range g.inputs {
		gb = protowire.AppendTag(gb, 11, protowire.BytesType)
		gb = protowire.AppendBytes(gb, encodeValueInfo(v.name, v.shape))
	}
	for _, v := range g.outputs {
		gb = protowire.AppendTag(gb, 12, protowire.BytesType)
		gb = protowire.AppendBytes(gb, encodeValueInfo(v.name, v.shape))
	}

	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, irVersion)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, producer)
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendString(b, version)
	b = protowire.AppendTag(b, 7, protowire.BytesType)
	b = protowire.AppendBytes(b, gb)
	var op []byte
	op = protowire.AppendTag(op, 1, protowire.BytesType)
	op = protowire.AppendString(op, "")
	op = protowire.AppendTag(op, 2, protowire.VarintType)
	op = protowire.AppendVarint(op, opset)
	b = protowire.AppendTag(b, 8, protowire.BytesType)
	b = protowire.AppendBytes(b, op)
	return b
}
