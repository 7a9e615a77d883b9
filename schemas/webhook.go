package schemas

import "time"

// Webhook delivery contracts. The notifier writes them; the call-state API
// reads the delivery log (a call's attempts) and writes redelivery requests.
const (
	SchemaWebhookAttempt  = "webhook.attempt.v1"
	SchemaWebhookEndpoint = "webhook.endpoint.v1"

	TypeWebhookAttempt  = "dialstream.webhook.attempt.v1"
	TypeWebhookEndpoint = "dialstream.webhook.endpoint.v1"
)

// Webhook topics. Records are keyed by call id, except on the endpoints topic
// (WebhookEndpointKey).
const (
	// TopicWebhookDeliveries is the delivery log: one WebhookAttempt per
	// attempt, keyed by call id, so one call's attempts stay in order.
	TopicWebhookDeliveries = "dialstream.webhooks.deliveries"
	// TopicWebhookDLQ receives lifecycle events the notifier gave up on (retry
	// schedule exhausted, final HTTP status, 410 Gone, SSRF refusal, bad URL)
	// and records of the events topic that are not valid CloudEvents. Each is
	// the original CloudEvent with kafkax DLQ headers saying why.
	TopicWebhookDLQ = "dialstream.webhooks.dlq"
	// TopicWebhookEndpoints is compacted: the latest WebhookEndpoint per
	// workspace and URL (410 Gone memory).
	TopicWebhookEndpoints = "dialstream.webhooks.endpoints"
	// TopicWebhookRedeliver takes lifecycle events (CloudEvents, as on the
	// events topic) to deliver again with a fresh retry budget and their
	// original webhook-id, e.g. replayed from the DLQ.
	TopicWebhookRedeliver = "dialstream.webhooks.redeliver"
	// TopicWebhookRetryPrefix starts the name of every retry topic; the rest
	// names the delay the topic holds records for ("dialstream.webhooks.retry.5m").
	TopicWebhookRetryPrefix = "dialstream.webhooks.retry."
)

func init() {
	RegisterType(TypeWebhookAttempt, SchemaWebhookAttempt)
	RegisterType(TypeWebhookEndpoint, SchemaWebhookEndpoint)
}

// WebhookResult is what one delivery attempt came to.
type WebhookResult string

const (
	// WebhookSuccess: the receiver answered 2xx.
	WebhookSuccess WebhookResult = "success"
	// WebhookRetry: a retryable failure (408, 429, 5xx, timeout, connection
	// error); another attempt is scheduled at next_attempt_at.
	WebhookRetry WebhookResult = "retry"
	// WebhookExhausted: a retryable failure on the last attempt; the event
	// went to the DLQ.
	WebhookExhausted WebhookResult = "exhausted"
	// WebhookFailed: a final failure (3xx, 4xx other than 408/410/429, bad
	// URL, unsigned workspace); the event went to the DLQ.
	WebhookFailed WebhookResult = "failed"
	// WebhookGone: the URL answered 410 Gone now or earlier; the event went to
	// the DLQ and the URL gets no more deliveries.
	WebhookGone WebhookResult = "gone"
	// WebhookSSRFRefused: the URL resolved to an address the SSRF guard
	// refuses; nothing was sent and the event went to the DLQ.
	WebhookSSRFRefused WebhookResult = "ssrf_refused"
)

// WebhookAttempt is the data of a dialstream.webhook.attempt.v1 event.
type WebhookAttempt struct {
	// EventID is the lifecycle event's ce_id: the webhook-id the receiver saw.
	EventID         string        `json:"event_id"`
	EventType       string        `json:"event_type"`
	CallID          string        `json:"call_id"`
	WorkspaceID     string        `json:"workspace_id"`
	Sequence        int           `json:"sequence"`
	Attempt         int           `json:"attempt"`
	MaxAttempts     int           `json:"max_attempts"`
	Redelivery      bool          `json:"redelivery,omitempty"`
	URL             string        `json:"url"`
	AttemptedAt     time.Time     `json:"attempted_at"`
	DurationSeconds float64       `json:"duration_seconds"`
	StatusCode      int           `json:"status_code,omitempty"`
	Error           string        `json:"error,omitempty"`
	Result          WebhookResult `json:"result"`
	NextAttemptAt   *time.Time    `json:"next_attempt_at,omitempty"`
}

// EndpointState is the delivery state of a callback URL.
type EndpointState string

const (
	EndpointGone   EndpointState = "gone"
	EndpointActive EndpointState = "active"
)

// WebhookEndpoint is the data of a dialstream.webhook.endpoint.v1 event.
type WebhookEndpoint struct {
	WorkspaceID string        `json:"workspace_id"`
	URL         string        `json:"url"`
	State       EndpointState `json:"state"`
	ChangedAt   time.Time     `json:"changed_at"`
	StatusCode  int           `json:"status_code,omitempty"`
	CallID      string        `json:"call_id,omitempty"`
	EventID     string        `json:"event_id,omitempty"`
}

// WebhookEndpointKey is the record key of a URL's state on
// TopicWebhookEndpoints. The workspace is part of it so that one workspace's
// 410 never stops deliveries of another.
func WebhookEndpointKey(workspaceID, url string) string { return workspaceID + " " + url }
