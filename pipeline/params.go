package pipeline

import (
	"slices"
	"sort"
	"strings"
)

// backendParams are the `params` keys each backend reads; decoderParams
// those each ONNX decoder reads on top of the onnx backend's own. A key
// in neither is a typo that would otherwise be silently ignored, so
// validation refuses it. The backends read these same names: the tests of
// stages/opencv and stages/onnx check that the lists match what they read.
var (
	backendParams = map[string][]string{
		BackendHOG:     {"upscale_width", "hit_threshold", "win_stride", "scale"},
		BackendCascade: {"scale_factor", "min_neighbors", "min_size", "upscale_width"},
		BackendMOG2:    {"process_width", "history", "var_threshold", "low", "medium", "high", "min_blob_area"},
		BackendONNX:    {"threads"},
	}
	decoderParams = map[string][]string{
		DecoderPPOCRDet: {"bin_threshold", "unclip", "min_size", "max_side"},
		DecoderMLSD:     {"min_length"},
		DecoderSSD:      {"box_order_yxyx"},
	}
)

// ParamKeys returns the params keys a model of backend (and, for onnx,
// decoder) may set, sorted.
func ParamKeys(backend, decoder string) []string {
	keys := slices.Clone(backendParams[backend])
	if backend == BackendONNX {
		keys = append(keys, decoderParams[decoder]...)
	}
	sort.Strings(keys)
	return keys
}

// validateParams adds a problem for every params key the model's backend
// does not read.
func validateParams(p *problems, where string, m *ModelSpec) {
	if _, ok := backendParams[m.Backend]; !ok {
		return // the backend itself is reported
	}
	known := ParamKeys(m.Backend, m.Decoder)
	var unknown []string
	for key := range m.Params {
		if !slices.Contains(known, key) {
			unknown = append(unknown, key)
		}
	}
	sort.Strings(unknown)
	what := m.Backend
	if m.Backend == BackendONNX {
		what += " with decoder " + m.Decoder
	}
	for _, key := range unknown {
		list := "none"
		if len(known) > 0 {
			list = strings.Join(known, ", ")
		}
		p.add("%s.params.%s: not a parameter of %s (known: %s)", where, key, what, list)
	}
}
