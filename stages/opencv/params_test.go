package opencv

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mlink-project/mlink/pipeline"
)

// The params keys config validation accepts for each backend
// (pipeline.ParamKeys) are exactly those the backend reads: a probe key
// makes each constructor list what it knows.
func TestBackendsReadTheParamsValidationAccepts(t *testing.T) {
	known := regexp.MustCompile(`params\.probe_key: unknown to [a-z0-9-]+ \(known: ([a-z_, ]+)\)`)
	for _, c := range []struct {
		backend string
		output  pipeline.OutputType
		open    func(*pipeline.ModelSpec) error
	}{
		{pipeline.BackendHOG, pipeline.TypeBoxes, func(s *pipeline.ModelSpec) error { _, err := NewHOG(s); return err }},
		{pipeline.BackendMOG2, pipeline.TypeClass, func(s *pipeline.ModelSpec) error { _, err := NewMOG2(s); return err }},
		{pipeline.BackendCascade, pipeline.TypeBoxes, func(s *pipeline.ModelSpec) error {
			_, err := NewCascade(s, "/usr/share/opencv4/haarcascades/haarcascade_fullbody.xml")
			return err
		}},
	} {
		spec := &pipeline.ModelSpec{Name: "m", Backend: c.backend, Output: c.output, Params: map[string]float64{"probe_key": 1}}
		err := c.open(spec)
		if err == nil {
			t.Fatalf("%s took an unknown params key", c.backend)
		}
		m := known.FindStringSubmatch(err.Error())
		if m == nil {
			t.Fatalf("%s: %v", c.backend, err)
		}
		read := strings.Split(m[1], ", ")
		slices.Sort(read)
		if want := pipeline.ParamKeys(c.backend, ""); !slices.Equal(read, want) {
			t.Errorf("%s reads params %v, validation accepts %v", c.backend, read, want)
		}
	}
}
