package pipeline

import (
	"fmt"
	"math"
	"reflect"
	"strings"
)

// checkFinite reports every NaN or infinite number in the config (YAML's
// .nan and .inf): range checks such as `x < 0 || x > 1` let NaN through,
// and no setting means anything with it. Paths are the YAML keys.
func checkFinite(p *problems, v reflect.Value, path string) {
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			p.add("%s: %v is not a number", path, f)
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			checkFinite(p, v.Elem(), path)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if path != "" {
				name = path + "." + name
			}
			checkFinite(p, v.Field(i), name)
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			checkFinite(p, v.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			checkFinite(p, iter.Value(), fmt.Sprintf("%s.%v", path, iter.Key()))
		}
	}
}
