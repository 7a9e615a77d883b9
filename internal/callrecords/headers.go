package callrecords

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// header is one record header as stored: its value as text when it is
// UTF-8 (every ce_* header and traceparent are), else base64 (JSON's []byte).
type header struct {
	Key   string  `json:"k"`
	Value *string `json:"v,omitempty"`
	Bytes []byte  `json:"b,omitempty"`
}

// encodeHeaders keeps a record's headers in order, as JSON that an
// operator can read in the database.
func encodeHeaders(hs []kgo.RecordHeader) ([]byte, error) {
	out := make([]header, len(hs))
	for i, h := range hs {
		out[i].Key = h.Key
		if utf8.Valid(h.Value) {
			v := string(h.Value)
			out[i].Value = &v
		} else {
			out[i].Bytes = h.Value
		}
	}
	return json.Marshal(out)
}

func decodeHeaders(b []byte) ([]kgo.RecordHeader, error) {
	var in []header
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("callrecords: stored headers: %w", err)
	}
	out := make([]kgo.RecordHeader, len(in))
	for i, h := range in {
		out[i].Key = h.Key
		if h.Value != nil {
			out[i].Value = []byte(*h.Value)
		} else {
			out[i].Value = h.Bytes
		}
	}
	return out, nil
}
