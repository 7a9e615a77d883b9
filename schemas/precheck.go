package schemas

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Prechecks: Go code that decides, for the Go values a hot path writes,
// what the schema would decide for their JSON, without interpreting the
// schema. Interpreting call.requested.v1 took about 30 µs a record (the
// validator walks the schema, decodes the JSON into maps, runs six regular
// expressions), the largest single cost of POST /v1/api/call; this check
// takes well under a microsecond.
//
// The schema files stay the contract. A precheck only ever says "the
// schema accepts this"; anything it does not accept goes to the schema,
// which then refuses it with its own words (the 422's field messages come
// from the schema, byte for byte as before), or, for the parts a precheck
// does not cover (a campaign reference), accepts it. TestPrecheckMatchesSchema
// and FuzzPrecheckCallRequested hold the precheck to the schema both ways:
// every value it accepts the schema accepts, and every value the schema
// accepts it accepts too (else the fast path would silently stop being
// taken), so a change to the schema file that the code does not follow
// fails them.
//
// Weighed and not taken: generating the checks from the schema files. Five
// patterns and three lengths do not repay a generator, and the tests that
// compare against the schema are needed either way.

// The read side (precheckRaw) serves the consumers of call.requested (the
// recorder, the dialer), which get bytes, not a value: interpreting the
// schema was a quarter of the recorder's CPU a call. It decodes the bytes
// into the value, asks conforms, and re-encodes the value as ValidateValue
// does: only when that gives back the very same bytes is the answer
// conforms' (the schema judges bytes, and these are the bytes of a value
// it accepts). Anything else a producer may write (a field the struct does
// not know, another spelling of a key or a string, a duplicate key,
// whitespace, a campaign reference) is not those bytes, and goes to the
// schema. TestPrecheckRawMatchesSchema and FuzzPrecheckRaw hold it to the
// interpreter.

// precheckRaw reports whether schema certainly accepts data. false means
// "ask the schema".
func precheckRaw(schema string, data []byte) bool {
	var r CallRequested
	return precheckRawInto(schema, data, &r)
}

// precheckRawInto is precheckRaw decoding into r, which holds the record
// when it returns true (and anything when false).
func precheckRawInto(schema string, data []byte, r *CallRequested) bool {
	if schema != schemaCallRequested {
		return false
	}
	if json.Unmarshal(data, r) != nil || !r.conforms() {
		return false
	}
	b, err := encode(r)
	return err == nil && bytes.Equal(b, data)
}

// precheck reports whether schema certainly accepts v's JSON (as
// ValidateValue encodes it). false means "ask the schema".
func precheck(schema string, v any) bool {
	if schema != schemaCallRequested {
		return false
	}
	switch r := v.(type) {
	case CallRequested:
		return r.conforms()
	case *CallRequested:
		return r != nil && r.conforms()
	}
	return false
}

const schemaCallRequested = "call.requested.v1"

// conforms is call.requested.v1.schema.json in Go, for a value without a
// campaign reference (the scheduler's records carry one; they are few and
// go to the schema). encoding/json writes every field the schema requires
// (no omitempty on them) and no field it does not know, and a time.Time
// that encodes at all encodes as an RFC 3339 date-time, so what is left to
// check is each string's pattern or length, the variables' count and
// names, and that metadata is an object.
//
// Strings are checked as Go strings, the schema checks them after
// encoding/json turned each invalid UTF-8 byte into U+FFFD: the patterns
// allow only ASCII (so both refuse such a byte, except callback_url's
// [^\s], which both allow), and the lengths count one character per
// invalid byte either way.
func (r *CallRequested) conforms() bool {
	if r.Campaign != nil {
		return false
	}
	if !isLowerHex(r.CallID, 24) || !isName(r.WorkspaceID) || !isE164(r.To) || !isName(r.CallAgentID) {
		return false
	}
	if r.RoomName != "" && !isRoomName(r.RoomName) {
		return false
	}
	if r.CallbackURL != "" && !isCallbackURL(r.CallbackURL) {
		return false
	}
	if len(r.DynamicVariables) > 64 {
		return false
	}
	for k, v := range r.DynamicVariables {
		if !isVariableName(k) || runesOver(v, 4096) {
			return false
		}
	}
	if len(r.Metadata) > 0 && firstNonSpace(r.Metadata) != '{' {
		return false
	}
	return !runesOver(r.IdempotencyKey, 255)
}

// isLowerHex: ^[0-9a-f]{n}$.
func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isName: ^[A-Za-z0-9_-]{1,64}$ (workspace and agent ids).
func isName(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i]) {
			return false
		}
	}
	return true
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// isE164: ^\+[1-9][0-9]{6,14}$.
func isE164(s string) bool {
	if len(s) < 8 || len(s) > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9' {
		return false
	}
	for i := 2; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isRoomName: ^[A-Za-z0-9_-]{1,64}-[a-z0-9]{10}$. The suffix has a fixed
// length, so the one way the pattern can split the string is the last 11
// bytes.
func isRoomName(s string) bool {
	n := len(s)
	if n < 12 || n > 64+11 || s[n-11] != '-' || !isName(s[:n-11]) {
		return false
	}
	for i := n - 10; i < n; i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// isCallbackURL: maxLength 2048 and ^https?://[^\s]+$, where \s is RE2's
// (Go's regexp, which the schema library uses): [\t\n\f\r ].
func isCallbackURL(s string) bool {
	var rest string
	switch {
	case len(s) > 8 && s[:8] == "https://":
		rest = s[8:]
	case len(s) > 7 && s[:7] == "http://":
		rest = s[7:]
	default:
		return false
	}
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case '\t', '\n', '\f', '\r', ' ':
			return false
		}
	}
	return !runesOver(s, 2048)
}

// isVariableName: ^[A-Za-z_][A-Za-z0-9_.-]{0,63}$.
func isVariableName(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	if c := s[0]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isNameByte(c) && c != '.' {
			return false
		}
	}
	return true
}

// runesOver reports whether s has more than n characters as the schema
// counts them (one per invalid UTF-8 byte, as encoding/json writes it).
func runesOver(s string, n int) bool {
	if len(s) <= n {
		return false
	}
	return utf8.RuneCountInString(s) > n
}

func firstNonSpace(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}
