package main

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzConvert feeds arbitrary model.json and weight bytes to the
// converter: it must refuse or convert, never panic, and what it converts
// is a graph in which every node reads only values defined before it (the
// graph's input, an initializer, an earlier node's output) and every
// declared output is computed.
func FuzzConvert(f *testing.F) {
	for _, op := range []string{"Conv2D", "DepthwiseConv2dNative"} {
		path, _ := fixture(f, op)
		model, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		shard, err := os.ReadFile(filepath.Join(filepath.Dir(path), "group1-shard1of1.bin"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(model, shard)
	}
	f.Add([]byte(`{"format":"graph-model","modelTopology":{"node":[]}}`), []byte{})
	f.Fuzz(func(t *testing.T, model, shard []byte) {
		m, weights, err := parseModel(model, func(string) ([]byte, error) { return shard, nil })
		if err != nil {
			return
		}
		g, err := convert(m, weights)
		if err != nil {
			return
		}
		defined := map[string]bool{"": true} // "" is an omitted optional input
		for _, in := range g.inputs {
			defined[in.name] = true
		}
		for _, in := range g.initializers {
			defined[in.name] = true
		}
		for _, n := range g.nodes {
			for _, in := range n.inputs {
				if !defined[in] {
					t.Fatalf("node %s (%s) reads %q before it is defined", n.name, n.op, in)
				}
			}
			for _, out := range n.outputs {
				defined[out] = true
			}
		}
		for _, out := range g.outputs {
			if !defined[out.name] {
				t.Fatalf("output %s is never computed", out.name)
			}
		}
		decodeModel(t, g.encodeModel("fuzz", "1"))
	})
}
