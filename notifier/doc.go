// Package notifier delivers every call-lifecycle event to the call's
// callback_url as a signed webhook, at least once, or dead-letters it with
// the reason.
//
// # Flow
//
// The consumer group dialstream-notifier reads dialstream.calls.events, every
// dialstream.webhooks.retry.<delay> topic and dialstream.webhooks.redeliver.
// Each event is POSTed once (body: see Payload). A retryable failure (408,
// 429, 5xx, timeout, connection error) is written to the retry topic of the
// next schedule step with its attempt number and due time, and the consumed
// record is marked only after that write is acknowledged; the retry topic's
// consumer holds the record until it is due, then attempts again. After the
// last attempt, or on a final failure (3xx: redirects are never followed;
// 4xx other than 408/410/429; SSRF refusal; bad URL), the event goes to
// dialstream.webhooks.dlq with kafkax's DLQ headers (dlq_error_class is a
// DLQReason, dlq_error the text, dlq_last_status_code the last HTTP status).
// A 410 Gone also marks the URL gone on the compacted topic
// dialstream.webhooks.endpoints: later events for it go straight to the DLQ
// (reason gone) until a redelivery to it succeeds. Every attempt, and every
// refusal made without a request, is logged as a dialstream.webhook.attempt.v1
// event on dialstream.webhooks.deliveries, keyed by call id.
//
// # Guarantees, and what a receiver should do
//
// Delivery is at least once. A record is committed only when its attempt and
// the records that follow from it are durable, so a crash, a restart or a
// rebalance repeats an attempt rather than losing one: a receiver can see the
// same event more than once. Every attempt of one event carries the same
// webhook-id (the event's CloudEvent id, stable across retries, redeliveries
// and re-emission of the event), so de-duplicate on webhook-id.
//
// Every attempt also carries W3C traceparent (and tracestate when there is
// one) in the trace of the call: the trace id is that of the request that
// asked for the call (its traceparent, or one ingest started), so a receiver
// that traces sees its webhook handling under the client's own request.
// These headers are not signed.
//
// One call's events are sent one at a time, in order, while they succeed at
// the first attempt. An event that goes through a retry topic no longer
// holds back the call's later events, so a receiver can see sequence 4
// before a retried sequence 3. Order by data.sequence (1, 2, 3... per call),
// not by arrival: e.g. keep the highest sequence seen per call_id and ignore
// a status older than it.
//
// Verify webhook-signature (Standard Webhooks, see Verify) with the
// workspace's secret and reject a webhook-timestamp far from now. During a
// secret rotation a delivery carries one signature per secret.
//
// # Isolation of receivers
//
// A receiver that hangs, is slow, or answers with an endless body holds at
// most NOTIFIER_MAX_IN_FLIGHT_PER_HOST deliveries for NOTIFIER_TIMEOUT each and
// makes the notifier read at most NOTIFIER_MAX_RESPONSE_BYTES of each answer;
// its failures move to retry topics instead of being retried in place, so
// other receivers keep getting their events.
//
// # SSRF
//
// The HTTP client dials through a guard that resolves the host, checks every
// address (loopback, RFC 1918, link-local, CGNAT, unique-local, unspecified,
// multicast, reserved and cloud metadata ranges; IPv4 inside IPv6 judged as
// IPv4) and connects to the address it checked, so DNS rebinding cannot swap
// it. Numeric host spellings (0x7f000001, 2130706433) are judged as the
// address they mean. Environment proxies are not used. NOTIFIER_ALLOW_CIDRS
// exempts networks (dev and tests allow-list loopback).
package notifier
