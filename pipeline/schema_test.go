package pipeline

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// ResultSchemaFile is the JSON Schema of results, seen from this package.
const resultSchemaFile = "../docs/result.schema.json"

// fill sets every field reachable from v to a valid non-zero value, so a
// field added to Result, Output, Plan or Box and missing from the schema
// (which allows no unknown property) fails the test.
func fill(v reflect.Value) {
	switch v.Interface().(type) {
	case Kind:
		v.Set(reflect.ValueOf(KindSequence))
		return
	case OutputType:
		v.Set(reflect.ValueOf(TypeBoxes))
		return
	case Source:
		v.Set(reflect.ValueOf(SourcePredicted))
		return
	case time.Time:
		v.Set(reflect.ValueOf(time.Date(2026, 11, 22, 7, 3, 36, 0, time.UTC)))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		fill(e)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		v.SetString("hog_people")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Uint64, reflect.Uint:
		v.Set(reflect.ValueOf(1).Convert(v.Type()))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(0.5)
	}
}

func compileResultSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	s, err := jsonschema.NewCompiler().Compile(resultSchemaFile)
	if err != nil {
		t.Fatalf("%s: %v", resultSchemaFile, err)
	}
	return s
}

// ValidateResult checks encoded results against docs/result.schema.json.
func validateResult(t *testing.T, s *jsonschema.Schema, data []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(inst)
}

func TestEveryResultFieldIsInTheSchemaAndSchemaVersionIsWritten(t *testing.T) {
	var r Result
	fill(reflect.ValueOf(&r).Elem())
	data, err := Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte(`{"schema_version":1,`)) {
		t.Errorf("a result starts with its schema_version: %.60s", data)
	}
	s := compileResultSchema(t)
	if err := validateResult(t, s, data); err != nil {
		t.Errorf("a result with every field set does not match %s (a field missing from the schema?): %v", resultSchemaFile, err)
	}
	back, err := Unmarshal[Result](data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*back, r) {
		t.Errorf("round trip changed the result:\n%+v\n%+v", *back, r)
	}

	// The schema is not a formality: a source it does not know, or a
	// result without its version, fails.
	for _, bad := range []string{
		strings.Replace(string(data), `"source":"predicted"`, `"source":"guessed"`, 1),
		strings.Replace(string(data), `"schema_version":1,`, ``, 1),
	} {
		if err := validateResult(t, s, []byte(bad)); err == nil {
			t.Errorf("the schema accepts %.120s…", bad)
		}
	}
}

func TestAMinimalResultMatchesTheSchema(t *testing.T) {
	r := Result{Camera: "plaza", Seq: 1, CapturedAt: time.Now(), Outputs: map[string]*Output{
		"motion": {Model: "motion", Kind: KindVector, Type: TypeClass, Value: []float64{0, 1, 0, 0}, Label: "low", Source: SourceExact, InferMS: 6},
		"faces":  {Model: "faces", Kind: KindSequence, Type: TypeBoxes, Source: SourceExact, Error: "corrupt frame"},
	}, Plan: Plan{Camera: "plaza", Seq: 1, CapturedAt: time.Now(), Policy: "all", Exact: []string{"motion", "faces"}}}
	data, err := json.Marshal(&r)
	if err != nil {
		t.Fatal(err)
	}
	if err := validateResult(t, compileResultSchema(t), data); err != nil {
		t.Errorf("%v\n%s", err, data)
	}
}
