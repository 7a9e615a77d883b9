package notifier

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/schemas"
)

// The delivery log entry is the one record the notifier writes for every
// webhook, so it is built without schemas.NewRecord's run-time JSON Schema
// validation, which cost more CPU than the whole HTTP request it logs
// (BenchmarkAttemptRecord: about 60 us against 4 us). What is written stays
// what webhook.attempt.v1 accepts: checkAttempt states the schema's rules in
// Go, and FuzzAttemptRecord shows that it accepts and refuses exactly what
// the schema does. Whoever changes the schema file runs that fuzz test: it
// looks for any attempt on which the two disagree.

// attemptTemplate is NewRecord's record for a webhook.attempt.v1, made once:
// its headers are NewRecord's by construction (spec version, type, source,
// content type, data schema), and attemptRecord only fills in the three that
// change per record.
var attemptTemplate = func() *kgo.Record {
	at := time.Unix(0, 0).UTC()
	rec, err := schemas.NewRecord(schemas.TopicWebhookDeliveries, "000000000000000000000000", schemas.Meta{
		ID: "template", Type: schemas.TypeWebhookAttempt, Source: eventSource, Subject: "000000000000000000000000", Time: at},
		&schemas.WebhookAttempt{EventID: "e", EventType: "t", CallID: "000000000000000000000000", WorkspaceID: "w",
			Sequence: 1, Attempt: 1, MaxAttempts: 1, AttemptedAt: at, Result: schemas.WebhookFailed})
	if err != nil {
		panic("notifier: webhook.attempt.v1 template does not match its schema: " + err.Error())
	}
	return rec
}()

// attemptRecord is the delivery log record of a: a CloudEvent keyed by call
// id, with the headers schemas.NewRecord writes, or an error saying which
// rule of webhook.attempt.v1 a breaks.
func attemptRecord(a *schemas.WebhookAttempt) (*kgo.Record, error) {
	if err := checkAttempt(a); err != nil {
		return nil, fmt.Errorf("schemas: %s: %w", schemas.TypeWebhookAttempt, err)
	}
	b, err := appendAttempt(make([]byte, 0, 384), a)
	if err != nil {
		return nil, fmt.Errorf("schemas: %s: %w", schemas.TypeWebhookAttempt, err)
	}
	hs := slices.Clone(attemptTemplate.Headers)
	for i := range hs {
		switch hs[i].Key {
		case schemas.HeaderID:
			hs[i].Value = []byte(schemas.NewID())
		case schemas.HeaderTime:
			at := a.AttemptedAt
			if at.IsZero() {
				at = time.Now() // as NewRecord does
			}
			hs[i].Value = at.UTC().AppendFormat(nil, time.RFC3339Nano)
		case schemas.HeaderSubject:
			hs[i].Value = []byte(a.CallID)
		}
	}
	return &kgo.Record{Topic: schemas.TopicWebhookDeliveries, Key: []byte(a.CallID), Value: b, Headers: hs}, nil
}

// checkAttempt holds a to the rules of webhook.attempt.v1.schema.json.
// Lengths are in characters, as JSON Schema counts them (each byte of
// invalid UTF-8 becomes one U+FFFD when encoded, and counts as one here).
// Times and durations that JSON cannot carry are refused by the encoder.
func checkAttempt(a *schemas.WebhookAttempt) error {
	var errs []error
	length := func(field, s string, lo, hi int) {
		if n := utf8.RuneCountInString(s); n < lo || n > hi {
			errs = append(errs, fmt.Errorf("/%s: length must be within %d..%d, got %d", field, lo, hi, n))
		}
	}
	atLeast := func(field string, v, lo int) {
		if v < lo {
			errs = append(errs, fmt.Errorf("/%s: must be >= %d, got %d", field, lo, v))
		}
	}
	length("event_id", a.EventID, 1, 256)
	length("event_type", a.EventType, 1, 256)
	if !isCallID(a.CallID) {
		errs = append(errs, fmt.Errorf("/call_id: must be 24 lowercase hex digits, got %q", a.CallID))
	}
	length("workspace_id", a.WorkspaceID, 1, 64)
	atLeast("sequence", a.Sequence, 1)
	atLeast("attempt", a.Attempt, 1)
	atLeast("max_attempts", a.MaxAttempts, 1)
	length("url", a.URL, 0, 2048)
	if a.DurationSeconds < 0 || math.IsNaN(a.DurationSeconds) {
		errs = append(errs, fmt.Errorf("/duration_seconds: must be >= 0, got %v", a.DurationSeconds))
	}
	if a.StatusCode != 0 && (a.StatusCode < 100 || a.StatusCode > 599) {
		errs = append(errs, fmt.Errorf("/status_code: must be within 100..599, got %d", a.StatusCode))
	}
	length("error", a.Error, 0, 2048)
	switch a.Result {
	case schemas.WebhookSuccess, schemas.WebhookRetry, schemas.WebhookExhausted,
		schemas.WebhookFailed, schemas.WebhookGone, schemas.WebhookSSRFRefused:
	default:
		errs = append(errs, fmt.Errorf("/result: unknown result %q", a.Result))
	}
	if (a.Result == schemas.WebhookRetry) != (a.NextAttemptAt != nil) {
		errs = append(errs, errors.New("/next_attempt_at: required exactly when result is retry"))
	}
	if a.Result == schemas.WebhookSuccess && a.StatusCode == 0 {
		errs = append(errs, errors.New("/status_code: required when result is success"))
	}
	return errors.Join(errs...)
}

// appendAttempt appends a's JSON, byte for byte what schemas.NewRecord's
// encoder (encoding/json, HTML escaping off) writes, without its reflection:
// the fields in WebhookAttempt's order, empty optional ones left out.
func appendAttempt(b []byte, a *schemas.WebhookAttempt) ([]byte, error) {
	b = appendJSONString(append(b, `{"event_id":`...), a.EventID)
	b = appendJSONString(append(b, `,"event_type":`...), a.EventType)
	b = appendJSONString(append(b, `,"call_id":`...), a.CallID)
	b = appendJSONString(append(b, `,"workspace_id":`...), a.WorkspaceID)
	b = strconv.AppendInt(append(b, `,"sequence":`...), int64(a.Sequence), 10)
	b = strconv.AppendInt(append(b, `,"attempt":`...), int64(a.Attempt), 10)
	b = strconv.AppendInt(append(b, `,"max_attempts":`...), int64(a.MaxAttempts), 10)
	if a.Redelivery {
		b = append(b, `,"redelivery":true`...)
	}
	b = appendJSONString(append(b, `,"url":`...), a.URL)
	var err error
	if b, err = appendJSONTime(append(b, `,"attempted_at":`...), a.AttemptedAt); err != nil {
		return nil, err
	}
	if b, err = appendJSONFloat(append(b, `,"duration_seconds":`...), a.DurationSeconds); err != nil {
		return nil, err
	}
	if a.StatusCode != 0 {
		b = strconv.AppendInt(append(b, `,"status_code":`...), int64(a.StatusCode), 10)
	}
	if a.Error != "" {
		b = appendJSONString(append(b, `,"error":`...), a.Error)
	}
	b = appendJSONString(append(b, `,"result":`...), string(a.Result))
	if a.NextAttemptAt != nil {
		if b, err = appendJSONTime(append(b, `,"next_attempt_at":`...), *a.NextAttemptAt); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendJSONString is encoding/json's string encoding with HTML escaping
// off: ", \ and control characters escaped, invalid UTF-8 replaced by
// U+FFFD, U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(append(b, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(append(b, s[start:]...), '"')
}

// appendJSONFloat is encoding/json's float64 encoding.
func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("json: unsupported value: %v", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1] // e-09 is written e-9
		b = b[:n-1]
	}
	return b, nil
}

// appendJSONTime is time.Time's JSON (RFC 3339, refused outside years 0..9999).
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	j, err := t.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return append(b, j...), nil
}

// isCallID reports whether s matches ^[0-9a-f]{24}$.
func isCallID(s string) bool {
	if len(s) != 24 {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
