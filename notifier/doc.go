// Package notifier delivers every call-lifecycle event to the call's
// callback_url as a signed Standard Webhook, at least once, or dead-letters
// it with the reason. The design, with the table of what each answer leads
// to, is docs/architecture.md, Webhooks out.
//
// The consumer group dialstream-notifier reads dialstream.calls.events,
// dialstream.webhooks.redeliver and every dialstream.webhooks.retry.<delay>
// topic. Each event is POSTed once; a retryable failure (408, 429, 5xx,
// timeout, connection error) goes to the retry topic of the next step of
// NOTIFIER_RETRY_SCHEDULE with its attempt number and due time; a final one
// (the last attempt, 3xx, other 4xx, 410 Gone, SSRF refusal, bad URL) goes
// to dialstream.webhooks.dlq with kafkax's DLQ headers. Every attempt, and
// every refusal made without a request, is logged as a webhook.attempt.v1
// event on dialstream.webhooks.deliveries, keyed by call id, before the event
// is committed.
//
// # Guarantees, and what a receiver should do
//
// Delivery is at least once (docs/architecture.md, Invariant 3: every event
// delivered). A record is committed only when its attempt and the records
// that follow from it (its delivery log entry, a retry, a DLQ record) are
// durable, so a crash, a restart or a rebalance repeats an attempt rather
// than losing one: a receiver can see the same event more than once. Every attempt of one event carries the same
// webhook-id (the event's CloudEvent id, stable across retries,
// redeliveries and re-emission), so de-duplicate on webhook-id.
//
// One call's events are sent one at a time, in order, while they succeed at
// the first attempt. An event that goes through a retry topic no longer
// holds back the call's later events, so a receiver can see sequence 4
// before a retried sequence 3: order by data.sequence, not by arrival.
//
// Verify webhook-signature (Verify) with the workspace's secret and reject a
// webhook-timestamp far from now; during a secret rotation a delivery
// carries one signature per secret. Every attempt also carries W3C
// traceparent in the trace of the request that asked for the call (not
// signed).
//
// A receiver that hangs, is slow or answers with an endless body holds at
// most NOTIFIER_MAX_IN_FLIGHT_PER_HOST deliveries for NOTIFIER_TIMEOUT each,
// and its failures wait in retry topics rather than in place, so other
// receivers keep getting their events (docs/architecture.md, Invariant 4:
// isolation). No webhook reaches a private, loopback or metadata address,
// however its host is spelled or re-resolved (ssrf.go).
//
// # Where to start reading
//
//	config.go     Config, LoadConfig, withDefaults, Validate: every NOTIFIER_* variable
//	run.go        Run: topics, the Kafka clients, the loops, the ops server, the drain
//	consume.go    the consumer: per-partition buffers, per-host caps, marks in offset order
//	records.go    decoding a consumed record into a job; the retry and DLQ records
//	decode.go     the fast path of that decoding for the events the dialer writes
//	process.go    one job: its attempt and the records that must follow before it is marked
//	attempt.go    the delivery log record, built without the run-time schema validator
//	deliver.go    the HTTP client and one POST, bounded
//	retry.go      retryable, the schedule, its retry topics (RetryTopic, RetryTopics)
//	sign.go       Standard Webhooks signing (Sign) and verifying (Verify)
//	body.go       the JSON body of a webhook (Payload)
//	ssrf.go       the dial guard: which addresses no webhook may reach
//	endpoints.go  410 Gone memory on dialstream.webhooks.endpoints
//	metrics.go    dialstream_notifier_*, the DLQ reasons, consumer lag
package notifier
