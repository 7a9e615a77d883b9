package notifier

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/schemas"
)

// Headers the notifier adds to records on the retry topics and the DLQ. The
// record itself stays the original lifecycle CloudEvent (same ce_* headers,
// same data), so a DLQ record can be replayed as it is
// (schemas.RedeliveryRecord drops these headers again).
const (
	// HeaderAttempt is the attempt number the record is for (1-based).
	HeaderAttempt = schemas.HeaderPrefixNotifier + "attempt"
	// HeaderDue is when the attempt may be made (RFC 3339).
	HeaderDue = schemas.HeaderPrefixNotifier + "due"
	// HeaderLastStatus and HeaderLastError describe the previous attempt.
	HeaderLastStatus = schemas.HeaderPrefixNotifier + "last_status"
	HeaderLastError  = schemas.HeaderPrefixNotifier + "last_error"
	// HeaderNotifierWebhookID is the webhook-id of every attempt (the event's ce_id).
	HeaderNotifierWebhookID = schemas.HeaderPrefixNotifier + "webhook_id"
	// HeaderOrigin is topic/partition/offset where the event was first read.
	HeaderOrigin = schemas.HeaderPrefixNotifier + "origin"
)

// job is one consumed record, decoded once when it is polled.
type job struct {
	rec  *kgo.Record
	ev   *schemas.Event
	call schemas.CallEvent
	// campaign is set for a campaign webhook's event (campaign.event.v1):
	// call then holds its routing facts (the campaign id in CallID, the
	// workspace, the campaign's sequence and callback_url), so the delivery,
	// retry and DLQ paths are the same as a call's.
	campaign   *schemas.CampaignEventData
	bad        error // not a valid lifecycle event: DLQ
	skip       bool  // valid, but nothing to deliver
	attempt    int
	due        time.Time
	redelivery bool
	url        *url.URL
	urlErr     error
	host       string // for the per-host cap; "" when no request will be made
}

func parseJob(rec *kgo.Record) *job {
	j := &job{rec: rec, attempt: 1, redelivery: rec.Topic == schemas.TopicWebhookRedeliver}
	if n, err := strconv.Atoi(kafkax.Header(rec, HeaderAttempt)); err == nil && n >= 1 {
		j.attempt = n
	}
	if t, err := time.Parse(time.RFC3339Nano, kafkax.Header(rec, HeaderDue)); err == nil {
		j.due = t
	}
	if ev, ok := decodeCallEvent(rec, &j.call); ok {
		j.ev = ev
		return j.route()
	}
	j.call = schemas.CallEvent{} // json.Unmarshal below would merge into what the fast path left
	ev, err := schemas.Decode(rec)
	if err != nil {
		j.bad = err
		return j
	}
	j.ev = ev
	switch s, _ := schemas.SchemaFor(ev.Type); s {
	case schemas.SchemaCallEvent:
		if err := json.Unmarshal(ev.Data, &j.call); err != nil {
			j.bad = fmt.Errorf("schema: %w", err)
			return j
		}
	case schemas.SchemaCampaignEvent:
		var ce schemas.CampaignEventData
		if err := json.Unmarshal(ev.Data, &ce); err != nil {
			j.bad = fmt.Errorf("schema: %w", err)
			return j
		}
		j.campaign = &ce
		j.call = schemas.CallEvent{CallID: ce.CampaignID, WorkspaceID: ce.WorkspaceID, Sequence: ce.Sequence,
			OccurredAt: ce.OccurredAt, CallbackURL: ce.CallbackURL}
	default:
		// A valid event of another kind: not ours to deliver.
		j.skip = true
		return j
	}
	return j.route()
}

// route reads the callback URL of a decoded event: none means nothing to
// deliver.
func (j *job) route() *job {
	if j.call.CallbackURL == "" {
		j.skip = true
		return j
	}
	j.url, j.urlErr = parseCallbackURL(j.call.CallbackURL)
	if j.urlErr == nil {
		j.host = j.url.Host
	}
	return j
}

// parseCallbackURL accepts absolute http and https URLs only.
func parseCallbackURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("callback_url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("callback_url: scheme must be http or https, got %q", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, errors.New("callback_url: no host")
	}
	return u, nil
}

// origin says where the event was first read from.
func origin(r *kgo.Record) string {
	if o := kafkax.Header(r, HeaderOrigin); o != "" {
		return o
	}
	return fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
}

// retryRecord is the event again, for topic, due at due for attempt.
func retryRecord(src *kgo.Record, topic, webhookID string, attempt int, due time.Time, lastStatus int, lastErr string) *kgo.Record {
	hs := schemas.EventHeaders(src, 6)
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderAttempt, Value: []byte(strconv.Itoa(attempt))},
		kgo.RecordHeader{Key: HeaderDue, Value: []byte(due.UTC().Format(time.RFC3339Nano))},
		kgo.RecordHeader{Key: HeaderLastStatus, Value: []byte(strconv.Itoa(lastStatus))},
		kgo.RecordHeader{Key: HeaderLastError, Value: []byte(schemas.Clip(lastErr, 1024))},
		kgo.RecordHeader{Key: HeaderNotifierWebhookID, Value: []byte(webhookID)},
		kgo.RecordHeader{Key: HeaderOrigin, Value: []byte(origin(src))},
	)
	return &kgo.Record{Topic: topic, Key: src.Key, Value: src.Value, Headers: hs}
}

// dlqRecord is the event for the webhook DLQ, with kafkax's DLQ headers
// (class, reason, attempts, source) plus the last HTTP status and webhook-id.
func dlqRecord(src *kgo.Record, reason DLQReason, errText string, attempts, lastStatus int, webhookID string) *kgo.Record {
	var extra []kgo.RecordHeader
	if lastStatus > 0 {
		extra = append(extra, kgo.RecordHeader{Key: kafkax.HeaderDLQLastStatusCode, Value: []byte(strconv.Itoa(lastStatus))})
	}
	if webhookID != "" {
		extra = append(extra, kgo.RecordHeader{Key: HeaderNotifierWebhookID, Value: []byte(webhookID)})
	}
	extra = append(extra, kgo.RecordHeader{Key: HeaderOrigin, Value: []byte(origin(src))})
	clean := *src
	clean.Headers = schemas.EventHeaders(src, 0)
	return kafkax.DLQRecord(&clean, schemas.TopicWebhookDLQ, string(reason), schemas.Clip(errText, 1024), attempts, extra...)
}
