package ingest

import (
	"encoding/json"
	"reflect"
	"testing"
)

// jsonSeeds are documents whose splitting a hand-written scanner can get
// wrong: escapes in keys and values, quotes and brackets inside strings,
// nesting, whitespace everywhere, repeated and odd keys, invalid UTF-8.
var jsonSeeds = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a" : "x" , "b":[1,{"c":"]}"}],"a":null}`, "{\n\t\"k\\\"ey\":\"v\\\\\",\"\\u00e9\":true}",
	`{"a":{"b":{"c":[[],{}]}},"d":-1.5e+10,"e":"\"}"}`, `[1,2]`, `"x"`, `null`, `1`, `{"a":"\ud800"}`, "{\"\xff\":\"\xfe\"}",
	`{"to":"+12025550123","call_agent_id":"a","dynamic_variables":{"firstName":"Ada","Zipcode":94105},"metadata":{"a":[1,{"b":null}]}}`,
	`{"":""}`, `{"a":1,"a":2,"a":3}`, `{"a":[]  ,  "b":{}  }`, `{"a":"\/\b\f\n\r\t"}`,
}

// sameAsDecoder checks readObject against the Decoder it replaced on one
// valid document, and jsonString against json.Unmarshal on each member.
func sameAsDecoder(t *testing.T, doc []byte) {
	t.Helper()
	probe, err := validJSON(doc)
	var ref json.RawMessage
	refErr := json.Unmarshal(doc, &ref)
	if (err == nil) != (refErr == nil) || (err != nil && err.Error() != refErr.Error()) {
		t.Fatalf("validJSON(%q): %v; json.Unmarshal: %v", doc, err, refErr)
	}
	if err != nil {
		return
	}
	if string(probe) != string(ref) {
		t.Fatalf("validJSON(%q) = %q; json.Unmarshal keeps %q", doc, probe, ref)
	}
	got, gotDups, gotOK := readObject(probe)
	want, wantDups, wantOK := readObjectDecoder(ref)
	if gotOK != wantOK || !reflect.DeepEqual(gotDups, wantDups) || len(got) != len(want) {
		t.Fatalf("readObject(%q) = %q %q %v; Decoder: %q %q %v", doc, got, gotDups, gotOK, want, wantDups, wantOK)
	}
	for i := range got {
		if got[i].key != want[i].key || string(got[i].val) != string(want[i].val) {
			t.Fatalf("readObject(%q) member %d = %q:%s; Decoder: %q:%s", doc, i, got[i].key, got[i].val, want[i].key, want[i].val)
		}
		s, ok := jsonString(got[i].val)
		// json.Unmarshal takes null into a string without an error and
		// leaves it empty: a string value is one that starts with a quote.
		var ws string
		werr := json.Unmarshal(got[i].val, &ws)
		wantString := werr == nil && got[i].val[0] == '"'
		if ok != wantString || s != ws {
			t.Fatalf("jsonString(%s) = %q, %v; json.Unmarshal: %q, %v", got[i].val, s, ok, ws, werr)
		}
		if got[i].val[0] == '{' {
			sameAsDecoder(t, got[i].val)
		}
	}
}

func TestReadObjectMatchesDecoder(t *testing.T) {
	for _, s := range jsonSeeds {
		sameAsDecoder(t, []byte(s))
	}
}

// FuzzReadObject: go test -fuzz FuzzReadObject ./ingest
func FuzzReadObject(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) { sameAsDecoder(t, doc) })
}
