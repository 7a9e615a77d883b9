// Package schemas holds Dialstream's event contracts: the JSON Schemas of every
// CloudEvent the pipeline writes to Kafka, their Go types, the topic names, and
// the CloudEvents binary-mode encoding of a record.
//
// The JSON Schema files in this folder are the contract. They are embedded and
// compiled at init, and every producer and consumer validates against them, so
// the files cannot drift from the code: change a file and the tests of every
// service see it.
package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

//go:embed *.schema.json
var files embed.FS

// FS exposes the schema files, e.g. for serving them or for documentation.
func FS() fs.FS { return files }

// compiled maps a schema name ("call.requested.v1") to its compiled schema.
var compiled = mustCompile()

func mustCompile() map[string]*jsonschema.Schema {
	m, err := compile(files)
	if err != nil {
		panic(fmt.Sprintf("schemas: embedded schema files do not compile: %v", err))
	}
	return m
}

func compile(fsys fs.FS) (map[string]*jsonschema.Schema, error) {
	names, err := fs.Glob(fsys, "*.schema.json")
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	urls := make(map[string]string, len(names))
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		id, _ := doc.(map[string]any)["$id"].(string)
		if id == "" {
			return nil, fmt.Errorf("%s: missing $id", n)
		}
		if err := c.AddResource(id, doc); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		urls[strings.TrimSuffix(n, ".schema.json")] = id
	}
	out := make(map[string]*jsonschema.Schema, len(urls))
	for name, id := range urls {
		s, err := c.Compile(id)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = s
	}
	return out, nil
}

// FieldError is one problem found in an event, located by JSON pointer.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every problem the schema found in one document.
type ValidationError struct {
	Schema string
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return fmt.Sprintf("does not match schema %s: %s", e.Schema, strings.Join(parts, "; "))
}

// ErrUnknownSchema is returned for a schema name no file defines.
var ErrUnknownSchema = errors.New("unknown schema")

var printer = message.NewPrinter(language.English)

// Validate checks raw JSON against the named schema ("call.requested.v1").
// A syntax error and a schema violation are both *ValidationError, so a
// caller can turn either into a clear message without a type switch.
// Where a read-side precheck covers data (precheckRaw, precheck.go), it
// accepts without interpreting the schema; everything else, and every
// refusal, is the schema's.
func Validate(schema string, data []byte) error {
	if precheckRaw(schema, data) {
		return nil
	}
	return interpret(schema, data)
}

// validateInto is Validate, then data decoded into v unless v is nil; the
// read-side precheck decodes a call request into v itself.
func validateInto(schema string, data []byte, v any) error {
	check := Validate
	if r, ok := v.(*CallRequested); ok {
		if precheckRawInto(schema, data, r) {
			return nil
		}
		check = interpret // the precheck has had its say
	}
	if err := check(schema, data); err != nil {
		return err
	}
	if v == nil {
		return nil
	}
	if r, ok := v.(*CallRequested); ok {
		*r = CallRequested{} // the precheck may have filled it in part
	}
	if err := json.Unmarshal(data, v); err != nil {
		return &ValidationError{Schema: schema, Fields: []FieldError{{Field: "/", Message: "does not decode: " + err.Error()}}}
	}
	return nil
}

// interpret is Validate by the schema interpreter alone: the contract the
// prechecks are tested against.
func interpret(schema string, data []byte) error {
	s, ok := compiled[schema]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownSchema, schema)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return &ValidationError{Schema: schema, Fields: []FieldError{{Field: "/", Message: "not valid JSON: " + err.Error()}}}
	}
	if err := s.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return err
		}
		return &ValidationError{Schema: schema, Fields: leaves(ve)}
	}
	return nil
}

// leaves flattens the schema library's error tree into the innermost causes,
// which are the ones that name a field and say what is wrong with it.
func leaves(ve *jsonschema.ValidationError) []FieldError {
	var out []FieldError
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			out = append(out, FieldError{
				Field:   "/" + strings.Join(e.InstanceLocation, "/"),
				Message: e.ErrorKind.LocalizedString(printer),
			})
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// Names lists the schema names, sorted.
func Names() []string {
	out := make([]string, 0, len(compiled))
	for n := range compiled {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ValidateValue marshals v and validates it, for producers that build a Go
// value: what they write is checked against the same files as what they read.
// Where a precheck covers v (precheck.go), it decides instead of the schema
// interpreter, and it only ever accepts what the schema accepts.
//
// HTML escaping is off: the client's metadata must reach its webhook as it
// was sent, and json.Marshal would rewrite <, > and & as \u003c... inside it.
func ValidateValue(schema string, v any) ([]byte, error) {
	b, err := encode(v)
	if err != nil {
		return nil, err
	}
	if precheck(schema, v) {
		return b, nil
	}
	if err := interpret(schema, b); err != nil {
		return nil, err
	}
	return b, nil
}

// encode is v's JSON as every producer of this package writes it:
// encoding/json without HTML escaping, no trailing newline.
func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
