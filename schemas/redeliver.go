package schemas

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header prefixes of the bookkeeping a lifecycle event's record picks up on
// its way through the notifier: the notifier's own headers on a retry topic
// (notifier_attempt, notifier_due, ...) and the dead-letter headers on the
// webhook DLQ (dlq_error_class, ...; see kafkax.DLQRecord). The event itself
// is everything else: the ce_* attributes, the trace headers and the value.
const (
	HeaderPrefixNotifier = "notifier_"
	HeaderPrefixDLQ      = "dlq_"
)

// EventHeaders copies src's headers without the notifier's and the DLQ's,
// with room for extra more.
func EventHeaders(src *kgo.Record, extra int) []kgo.RecordHeader {
	hs := make([]kgo.RecordHeader, 0, len(src.Headers)+extra)
	for _, h := range src.Headers {
		if strings.HasPrefix(h.Key, HeaderPrefixNotifier) || strings.HasPrefix(h.Key, HeaderPrefixDLQ) {
			continue
		}
		hs = append(hs, h)
	}
	return hs
}

// RedeliveryRecord turns a lifecycle event record (from the events topic, a
// retry topic or the webhook DLQ) into a request to deliver it again: the
// same CloudEvent, without the notifier's and the DLQ's headers, on
// TopicWebhookRedeliver, which the notifier delivers with a fresh retry
// budget and the original webhook-id (the event's ce_id). A redelivery is
// also made to a URL marked gone, and a 2xx clears that mark. The call-state
// API's redeliver route and operators replaying the DLQ write what this
// returns.
func RedeliveryRecord(src *kgo.Record) *kgo.Record {
	return &kgo.Record{Topic: TopicWebhookRedeliver, Key: src.Key, Value: src.Value, Headers: EventHeaders(src, 0)}
}
