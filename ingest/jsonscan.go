package ingest

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Reading request bodies. encoding/json's Decoder reads a body's members one
// token at a time through reflection; for POST /v1/api/call that was about
// a tenth of the handler. The body is checked once (json.Valid, the same
// scanner Unmarshal runs first), after which splitting a document that is
// known to be valid takes a few loops over its bytes. Strings without
// escapes are the bytes between their quotes; the rest go to encoding/json,
// so every string reads exactly as it did. FuzzReadObject holds the scanner
// to the Decoder it replaced (readObjectDecoder) on arbitrary documents.

type member struct {
	key string
	val json.RawMessage
}

// validJSON returns doc without the whitespace around its value, or the
// error json.Unmarshal gives for it: the same bytes a json.RawMessage
// would hold, without copying them.
func validJSON(doc []byte) (json.RawMessage, error) {
	if !json.Valid(doc) {
		var probe json.RawMessage
		if err := json.Unmarshal(doc, &probe); err != nil {
			return nil, err
		}
		return probe, nil // not reached: Unmarshal refuses what Valid refuses
	}
	return bytes.Trim(doc, " \t\r\n"), nil
}

// readObject splits a valid JSON document into its top-level members in
// order, with the keys that occur more than once (encoding/json would keep
// the last silently). ok is false when the document is not an object. The
// values alias doc.
func readObject(doc []byte) (members []member, dups []string, ok bool) {
	i := skipSpace(doc, 0)
	if i >= len(doc) || doc[i] != '{' {
		return nil, nil, false
	}
	i++
	for {
		i = skipSpace(doc, i)
		if i < len(doc) && doc[i] == ',' {
			i = skipSpace(doc, i+1)
		}
		if i >= len(doc) {
			return readObjectDecoder(doc) // not valid JSON after all
		}
		if doc[i] == '}' {
			return members, dups, true
		}
		kend := skipString(doc, i)
		if kend < 0 {
			return readObjectDecoder(doc)
		}
		k, _ := jsonString(doc[i:kend])
		i = skipSpace(doc, kend)
		if i >= len(doc) || doc[i] != ':' {
			return readObjectDecoder(doc)
		}
		i = skipSpace(doc, i+1)
		vend := skipValue(doc, i)
		if vend < 0 {
			return readObjectDecoder(doc)
		}
		v := json.RawMessage(doc[i:vend:vend])
		i = vend
		if hasMember(members, k) {
			dups = append(dups, k)
			continue
		}
		members = append(members, member{k, v})
	}
}

// hasMember is a linear search: bodies have a handful of members, and a
// map per body cost more than the search.
func hasMember(ms []member, k string) bool {
	for i := range ms {
		if ms[i].key == k {
			return true
		}
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string that starts at b[i], or
// -1 when there is none.
func skipString(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}

// skipValue returns the index after the value that starts at b[i] in a
// valid document, or -1 when there is none.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				if i = skipString(b, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	}
	start := i
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\r', '\n':
			return i
		}
		i++
	}
	if i == start {
		return -1
	}
	return i
}

// readObjectDecoder is readObject with encoding/json's Decoder: the
// reference the scanner is held to, and its answer for a document that
// turns out not to be valid JSON.
func readObjectDecoder(doc []byte) (members []member, dups []string, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, false
		}
		k, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, false
		}
		if seen[k] {
			dups = append(dups, k)
			continue
		}
		seen[k] = true
		members = append(members, member{k, v})
	}
	return members, dups, true
}

// jsonString decodes a JSON string value; ok is false for any other value.
// A string without escapes, in valid UTF-8, is its bytes; anything else is
// decoded by encoding/json (escapes, and invalid UTF-8 turned into U+FFFD).
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	if n := len(raw); n >= 2 && raw[n-1] == '"' {
		inner := raw[1 : n-1]
		if bytes.IndexByte(inner, '\\') < 0 && bytes.IndexByte(inner, '"') < 0 && !hasControl(inner) && utf8.Valid(inner) {
			return string(inner), true
		}
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}
