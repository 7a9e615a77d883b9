package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dialstream/dialstream/internal/compliance"
)

// callRequest is a validated, normalized POST /v1/api/call body.
type callRequest struct {
	To string // E.164
	// toClass is To as the compliance rules see it, from the parse that
	// normalized it; nil when the check must classify To itself.
	toClass          *compliance.Number
	CallAgentID      string            //
	CallbackURL      string            // "" when absent
	DynamicVariables map[string]string // nil when absent
	Metadata         json.RawMessage   // the client's JSON object, nil when absent
	// StartAt, when set, makes the call a scheduled one (scheduled_calls.go);
	// DeferToCallingHours alone sets it to now.
	StartAt             *time.Time
	DeferToCallingHours bool
}

// The body's fields. Anything else is refused with 422: a misspelled
// optional field ("callbackUrl") silently ignored would be a call whose
// webhooks never arrive.
var knownFields = []string{"to", "call_agent_id", "callback_url", "dynamic_variables", "metadata", "start_at", "defer_to_calling_hours"}

var (
	agentIDRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	varKeyRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}$`)
	maxReports = 50 // field errors listed in one response
)

// limits are the caps a body is checked against.
type limits struct {
	maxVariables   int
	maxValueLength int
	defaultRegion  string
	allowTest      bool
}

// errMalformed is a body that is not a JSON object; its message is for the
// client as is.
type errMalformed struct{ msg string }

func (e errMalformed) Error() string { return e.msg }

// parseCallRequest decodes and validates a body. It returns errMalformed
// (400) when the body is not a JSON object, or the field errors (422).
func parseCallRequest(body []byte, lim limits) (*callRequest, []FieldError, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil, errMalformed{"request body is empty; send a JSON object"}
	}
	probe, err := validJSON(body)
	if err != nil {
		return nil, nil, errMalformed{syntaxMessage(err)}
	}
	fields, dups, ok := readObject(probe)
	if !ok {
		return nil, nil, errMalformed{"request body must be a JSON object, got " + jsonKind(probe)}
	}
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	for _, k := range dups {
		add(k, "appears more than once; send each field once")
	}
	for _, f := range fields {
		if !isKnownField(f.key) {
			add(f.key, "unknown field; the fields are %s", strings.Join(knownFields, ", "))
		}
	}
	get := func(k string) (json.RawMessage, bool) {
		for _, f := range fields {
			if f.key == k {
				return f.val, true
			}
		}
		return nil, false
	}
	r := &callRequest{}

	if raw, ok := get("to"); !ok || isNull(raw) {
		add("to", "required: the number to call, in E.164 format, e.g. %s", exampleNumber)
	} else if s, ok := jsonString(raw); !ok {
		add("to", "must be a string holding a phone number, e.g. %q; got %s", exampleNumber, jsonKind(raw))
	} else if p, msg := parsePhone(s, lim.defaultRegion, lim.allowTest); msg != "" {
		add("to", "%s", msg)
	} else {
		r.To, r.toClass = p.e164, p.class
	}

	if raw, ok := get("call_agent_id"); !ok || isNull(raw) {
		add("call_agent_id", "required: the id of the agent that places the call")
	} else if s, ok := jsonString(raw); !ok {
		add("call_agent_id", "must be a string, got %s", jsonKind(raw))
	} else if !agentIDRE.MatchString(s) {
		add("call_agent_id", "must be 1 to 64 letters, digits, _ or -")
	} else {
		r.CallAgentID = s
	}

	if raw, ok := get("callback_url"); ok && !isNull(raw) {
		if s, ok := jsonString(raw); !ok {
			add("callback_url", "must be a string holding an absolute http or https URL, got %s", jsonKind(raw))
		} else if u, msg := checkCallbackURL(s); msg != "" {
			add("callback_url", "%s", msg)
		} else {
			r.CallbackURL = u
		}
	}

	if raw, ok := get("dynamic_variables"); ok && !isNull(raw) {
		vars, verrs := parseVariables(raw, lim)
		errs = append(errs, verrs...)
		r.DynamicVariables = vars
	}

	if raw, ok := get("metadata"); ok && !isNull(raw) {
		if raw[0] != '{' {
			add("metadata", "must be a JSON object, got %s", jsonKind(raw))
		} else {
			r.Metadata = raw
		}
	}

	if raw, ok := get("start_at"); ok && !isNull(raw) {
		s, ok := jsonString(raw)
		t, err := time.Parse(time.RFC3339Nano, s)
		if !ok || err != nil {
			add("start_at", "must be an RFC 3339 timestamp with a zone, e.g. 2026-01-02T15:04:05Z")
		} else {
			t = t.UTC()
			r.StartAt = &t
		}
	}
	if raw, ok := get("defer_to_calling_hours"); ok && !isNull(raw) {
		if string(raw) != "true" && string(raw) != "false" {
			add("defer_to_calling_hours", "must be a boolean, got %s", jsonKind(raw))
		}
		r.DeferToCallingHours = string(raw) == "true"
	}

	if len(errs) > maxReports {
		errs = append(errs[:maxReports], FieldError{Field: "", Message: fmt.Sprintf("%d more errors not shown", len(errs)-maxReports)})
	}
	if len(errs) > 0 {
		return nil, errs, nil
	}
	return r, nil, nil
}

func parseVariables(raw json.RawMessage, lim limits) (map[string]string, []FieldError) {
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	fields, dups, ok := readObject(raw)
	if !ok {
		add("dynamic_variables", "must be a JSON object whose values are strings, got %s", jsonKind(raw))
		return nil, errs
	}
	for _, k := range dups {
		add("dynamic_variables", "key %q appears more than once", k)
	}
	if len(fields) > lim.maxVariables {
		add("dynamic_variables", "has %d keys; at most %d are allowed", len(fields), lim.maxVariables)
		return nil, errs
	}
	vars := make(map[string]string, len(fields))
	for _, f := range fields {
		if !varKeyRE.MatchString(f.key) {
			add("dynamic_variables", "key %q is not allowed: a key is 1 to 64 characters, starts with a letter or _, then letters, digits, _, . or -", f.key)
			continue
		}
		field := "dynamic_variables." + f.key
		var v string
		switch f.val[0] {
		case '"':
			v, _ = jsonString(f.val)
		case 't', 'f':
			v = string(f.val) // "true" / "false"
		case 'n':
			add(field, "is null; send a string, or leave the key out")
			continue
		case '{':
			add(field, "is an object; values must be strings (numbers and booleans are converted), so flatten nested values into their own keys")
			continue
		case '[':
			add(field, "is an array; values must be strings (numbers and booleans are converted), so join list values into one string")
			continue
		default: // a number: keep its digits exactly as sent (1.50 stays "1.50")
			v = string(f.val)
		}
		if n := utf8.RuneCountInString(v); n > lim.maxValueLength {
			add(field, "is %d characters long; at most %d are allowed", n, lim.maxValueLength)
			continue
		}
		vars[f.key] = v
	}
	return vars, errs
}

// checkCallbackURL returns the URL with its scheme lowercased, or why it is
// refused. Where it points is checked by the notifier when it delivers (after
// DNS, against its SSRF rules), not here: a name can resolve differently later.
func checkCallbackURL(s string) (string, string) {
	const want = "must be an absolute http or https URL, e.g. https://example.com/webhooks/dialstream"
	if s == "" {
		return "", "must not be empty; " + want + ", or leave callback_url out"
	}
	if n := len(s); n > schemaMaxCallbackURL {
		return "", fmt.Sprintf("is %d bytes long; at most %d are allowed", n, schemaMaxCallbackURL)
	}
	for _, c := range s {
		if unicode.IsSpace(c) || unicode.IsControl(c) {
			return "", "must not contain spaces or control characters; percent-encode them"
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", want
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", want
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return "", want + " with a host"
	}
	if p := u.Port(); p != "" {
		if n := atoiSafe(p); n < 1 || n > 65535 {
			return "", "has an invalid port " + p
		}
	}
	return u.Scheme + s[len(u.Scheme):], ""
}

func atoiSafe(s string) int {
	if len(s) > 5 {
		return -1
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func isKnownField(k string) bool {
	for _, f := range knownFields {
		if k == f {
			return true
		}
	}
	return false
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

func jsonKind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

func syntaxMessage(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, se.Error())
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "malformed JSON: unexpected end of input"
	}
	return "malformed JSON: " + err.Error()
}

// fingerprint hashes the normalized request, so formatting differences that
// do not change the call ("+1 202 555 0123" vs "+12025550123", key order,
// whitespace) count as the same body for Idempotency-Key, and any difference
// in what would be dialed or delivered does not.
func (r *callRequest) fingerprint() [32]byte {
	h := sha256.New()
	w := func(s string) {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	w(r.To)
	w(r.CallAgentID)
	w(r.CallbackURL)
	keys := make([]string, 0, len(r.DynamicVariables))
	for k := range r.DynamicVariables {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w(fmt.Sprint(len(keys))) // {} and no dynamic_variables write the same record
	for _, k := range keys {
		w(k)
		w(r.DynamicVariables[k])
	}
	w(string(canonicalJSON(r.Metadata)))
	// Only when set, so an unscheduled call hashes as it always has.
	if r.StartAt != nil || r.DeferToCallingHours {
		w("scheduled")
		if r.StartAt != nil {
			w(r.StartAt.Format(time.RFC3339Nano))
		}
		w(fmt.Sprint(r.DeferToCallingHours))
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// canonicalJSON re-encodes a JSON value with object keys sorted and no
// insignificant whitespace; numbers keep their literal text.
func canonicalJSON(raw json.RawMessage) []byte {
	if raw == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	b, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return b
}
