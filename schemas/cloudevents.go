package schemas

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// CloudEvents binary mode over Kafka (CloudEvents Kafka protocol binding):
// attributes travel as ce_-prefixed headers, the record value is the data.
//
// Trace context is not an attribute of these events. Records carry the plain
// W3C `traceparent` and `tracestate` headers (written and read by franz-go's
// kotel plugin; see internal/obs/tracing.go), not the CloudEvents
// distributed-tracing extension's `ce_traceparent`/`ce_tracestate`: the
// extension names the context an event was created in and is meant to stay
// fixed, while the header names the hop that carries the record, and the
// plain headers are what Kafka instrumentation reads. Keeping one of the two
// avoids two trace contexts on one record that disagree. Decode neither
// needs nor checks them: a record without trace context is a valid event.
const (
	HeaderSpecVersion = "ce_specversion"
	HeaderID          = "ce_id"
	HeaderType        = "ce_type"
	HeaderSource      = "ce_source"
	HeaderTime        = "ce_time"
	HeaderSubject     = "ce_subject"
	HeaderDataSchema  = "ce_dataschema"
	HeaderContentType = "content-type"

	SpecVersion     = "1.0"
	ContentTypeJSON = "application/json"
)

// Event is a decoded, validated CloudEvent record.
type Event struct {
	ID      string
	Type    string
	Source  string
	Subject string
	Time    time.Time
	Schema  string
	Data    []byte
	Headers map[string]string
}

// Meta carries the attributes a producer chooses for one event.
type Meta struct {
	ID      string // generated when empty
	Type    string
	Source  string // e.g. "/dialstream/ingest"
	Subject string // the call id, where there is one
	Time    time.Time
}

// NewRecord builds a CloudEvents binary-mode record for data after checking it
// against the schema of meta.Type: nothing invalid is ever written.
func NewRecord(topic, key string, meta Meta, data any) (*kgo.Record, error) {
	schema, ok := SchemaFor(meta.Type)
	if !ok {
		return nil, fmt.Errorf("schemas: no schema for event type %q", meta.Type)
	}
	b, err := ValidateValue(schema, data)
	if err != nil {
		return nil, fmt.Errorf("schemas: %s: %w", meta.Type, err)
	}
	if meta.ID == "" {
		meta.ID = NewID()
	}
	if meta.Time.IsZero() {
		meta.Time = time.Now()
	}
	hs := []kgo.RecordHeader{
		{Key: HeaderSpecVersion, Value: []byte(SpecVersion)},
		{Key: HeaderID, Value: []byte(meta.ID)},
		{Key: HeaderType, Value: []byte(meta.Type)},
		{Key: HeaderSource, Value: []byte(meta.Source)},
		{Key: HeaderTime, Value: []byte(meta.Time.UTC().Format(time.RFC3339Nano))},
		{Key: HeaderContentType, Value: []byte(ContentTypeJSON)},
		{Key: HeaderDataSchema, Value: []byte(schema)},
	}
	if meta.Subject != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderSubject, Value: []byte(meta.Subject)})
	}
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: b, Headers: hs}, nil
}

// DecodeError says why a record is not an acceptable CloudEvent. Class is a
// short, bounded word for metrics and DLQ headers.
type DecodeError struct {
	Class  string // "headers", "unknown_type", "schema"
	Err    error
	Fields []FieldError
}

func (e *DecodeError) Error() string { return e.Class + ": " + e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }

// Decode reads a CloudEvents binary-mode record and validates its data against
// the schema for its type. Every failure is a *DecodeError.
func Decode(r *kgo.Record) (*Event, error) {
	return DecodeInto(r, nil)
}

// DecodeInto is Decode, then the event's data decoded into v (a pointer,
// as json.Unmarshal takes it; nil: not decoded). Where the read-side
// precheck covers the record (precheck.go), one decoding serves both.
// A failure to decode into v is a *DecodeError of class "schema" too.
func DecodeInto(r *kgo.Record, v any) (*Event, error) {
	h := make(map[string]string, len(r.Headers))
	for _, kv := range r.Headers {
		h[kv.Key] = string(kv.Value)
	}
	var missing []FieldError
	for _, k := range []string{HeaderSpecVersion, HeaderID, HeaderType, HeaderSource} {
		if h[k] == "" {
			missing = append(missing, FieldError{Field: "header:" + k, Message: "required CloudEvents header is missing"})
		}
	}
	if v := h[HeaderSpecVersion]; v != "" && v != SpecVersion {
		missing = append(missing, FieldError{Field: "header:" + HeaderSpecVersion, Message: fmt.Sprintf("must be %q, got %q", SpecVersion, v)})
	}
	if ct := h[HeaderContentType]; ct != "" && ct != ContentTypeJSON && ct != ContentTypeJSON+"; charset=utf-8" {
		missing = append(missing, FieldError{Field: "header:" + HeaderContentType, Message: "must be application/json, got " + ct})
	}
	var t time.Time
	if ts := h[HeaderTime]; ts != "" {
		var err error
		if t, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			missing = append(missing, FieldError{Field: "header:" + HeaderTime, Message: "must be an RFC 3339 timestamp"})
		}
	}
	if len(missing) > 0 {
		return nil, &DecodeError{Class: "headers", Err: errors.New("not a CloudEvents binary-mode record"), Fields: missing}
	}
	schema, ok := SchemaFor(h[HeaderType])
	if !ok {
		return nil, &DecodeError{Class: "unknown_type", Err: fmt.Errorf("unknown event type %q", h[HeaderType]),
			Fields: []FieldError{{Field: "header:" + HeaderType, Message: "unknown event type " + h[HeaderType]}}}
	}
	if err := validateInto(schema, r.Value, v); err != nil {
		de := &DecodeError{Class: "schema", Err: err}
		var ve *ValidationError
		if errors.As(err, &ve) {
			de.Fields = ve.Fields
		}
		return nil, de
	}
	return &Event{
		ID: h[HeaderID], Type: h[HeaderType], Source: h[HeaderSource], Subject: h[HeaderSubject],
		Time: t, Schema: schema, Data: r.Value, Headers: h,
	}, nil
}

// NewID returns a random CloudEvent id.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
