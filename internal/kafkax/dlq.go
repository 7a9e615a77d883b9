package kafkax

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// DLQ headers say why a record was dead-lettered and where it came from, so an
// operator can find it, fix the cause and replay it.
const (
	HeaderDLQErrorClass     = "dlq_error_class"
	HeaderDLQError          = "dlq_error"
	HeaderDLQAttempts       = "dlq_attempts"
	HeaderDLQSourceTopic    = "dlq_source_topic"
	HeaderDLQSourcePart     = "dlq_source_partition"
	HeaderDLQSourceOffset   = "dlq_source_offset"
	HeaderDLQLastStatusCode = "dlq_last_status_code"
)

// DLQRecord copies src (key, value, headers) for dlqTopic and adds the DLQ
// headers. class is a short bounded word (it also labels metrics); reason is
// the human-readable error. extra headers are appended as given.
func DLQRecord(src *kgo.Record, dlqTopic, class, reason string, attempts int, extra ...kgo.RecordHeader) *kgo.Record {
	hs := make([]kgo.RecordHeader, 0, len(src.Headers)+6+len(extra))
	hs = append(hs, src.Headers...)
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderDLQErrorClass, Value: []byte(class)},
		kgo.RecordHeader{Key: HeaderDLQError, Value: []byte(reason)},
		kgo.RecordHeader{Key: HeaderDLQAttempts, Value: []byte(strconv.Itoa(attempts))},
		kgo.RecordHeader{Key: HeaderDLQSourceTopic, Value: []byte(src.Topic)},
		kgo.RecordHeader{Key: HeaderDLQSourcePart, Value: []byte(strconv.Itoa(int(src.Partition)))},
		kgo.RecordHeader{Key: HeaderDLQSourceOffset, Value: []byte(strconv.FormatInt(src.Offset, 10))},
	)
	hs = append(hs, extra...)
	return &kgo.Record{Topic: dlqTopic, Key: src.Key, Value: src.Value, Headers: hs}
}

// Header returns the value of the last header named key, or "".
func Header(r *kgo.Record, key string) string {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value)
		}
	}
	return ""
}
