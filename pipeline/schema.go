package pipeline

import "encoding/json"

// ResultSchemaVersion is the version of the result format on
// mlink.results.<camera>, described by docs/result.schema.json. It goes up
// when a field is removed or changes meaning; added optional fields keep it.
const ResultSchemaVersion = 1

// resultFields is Result without its methods, so that MarshalJSON can
// encode the fields without calling itself.
type resultFields Result

// MarshalJSON writes the result with its top-level schema_version, so that
// every result carries it whoever encodes it (the merger, a test, a tool).
// Decoding ignores it: a result is read the same whatever its writer.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		SchemaVersion int `json:"schema_version"`
		resultFields
	}{ResultSchemaVersion, resultFields(r)})
}
