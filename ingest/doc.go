// Package ingest is Dialstream's front door: the HTTP API that turns
// POST /v1/api/call into a call.requested CloudEvent on the Kafka topic
// dialstream.calls.requested, and answers only after Kafka acknowledged it
// (acks=all, idempotent producer), so a 2xx means the call is durable; and
// the API that follows and controls calls afterwards (GET a call, list
// calls, cancel, webhook deliveries, redeliver), answered from each
// replica's projection of Kafka. The OpenAPI 3.1 document of every route is
// openapi.json, served at GET /openapi.json.
//
// # POST /v1/api/call
//
// Headers: Authorization: Bearer <api key>; x-workspace-id: <workspace>;
// Content-Type: application/json; optional Idempotency-Key; optional W3C
// traceparent/tracestate, which the call's records, lifecycle events and
// webhooks continue (same trace id; see internal/obs/tracing.go).
//
// Body fields (anything else is refused, see below):
//
//	to                 required  phone number; normalized to E.164 with libphonenumber
//	                             (nyaruka/phonenumbers). "+1 (202) 555-0123", "2025550123"
//	                             (INGEST_DEFAULT_REGION) and "tel:+12025550123" all give
//	                             +12025550123. The seed document's +1234567890 is not a
//	                             number (too few digits for +1); the answer says so and
//	                             suggests +12025550123. Dev/test calls use +1 555 010 xxxx,
//	                             see isTestNumber.
//	call_agent_id      required  an agent of the caller's workspace (1-64 of [A-Za-z0-9_-])
//	callback_url       optional  absolute http(s) URL, at most 2048 bytes, no spaces
//	dynamic_variables  optional  object, at most INGEST_MAX_VARIABLES keys matching
//	                             ^[A-Za-z_][A-Za-z0-9_.-]{0,63}$; values are strings of at
//	                             most INGEST_MAX_VALUE_LENGTH characters; numbers and
//	                             booleans become strings exactly as written (94105 ->
//	                             "94105", true -> "true"); null, objects and arrays are
//	                             refused with the key named
//	metadata           optional  any JSON object, passed through as sent (whitespace
//	                             aside) to every webhook; never given to the agent
//
// A null optional field is the same as an absent one. A field sent twice is
// refused: encoding/json would silently keep the last.
//
// Success is 202 Accepted (the call is scheduled, not placed):
//
//	{"status":"success","message":"Outbound call job scheduled for agent <agent> to number <E.164>",
//	 "callId":"<24 hex>","roomName":"<call_agent_id>-<10 [a-z0-9]>","jobId":"<partition>-<offset>"}
//
// jobId is the Kafka position of the call's record: partition and offset in
// dialstream.calls.requested (e.g. "3-1042"); with the topic name it names
// exactly one record. The record's key is the callId. In a workspace with
// mask_phone_numbers the message shows only the number's last 4 digits.
//
// Errors: {"status":"error","message":"...","errors":[{"field":"to","message":"..."}]},
// errors present when fields are at fault. Checked in this order:
//
//	401  no, malformed or unknown API key (WWW-Authenticate: Bearer ...)
//	400  x-workspace-id missing
//	403  the key's workspace is not x-workspace-id
//	429  over the workspace's limits.requests_per_second on this replica (Retry-After)
//	400  malformed Idempotency-Key
//	415  Content-Type is not application/json (charset, if any, utf-8)
//	413  body over INGEST_MAX_BODY_BYTES
//	400  body is not a JSON object (empty, malformed, an array...)
//	422  field errors, all of them at once, including unknown top-level fields:
//	     the body is well-formed JSON and the problem is a field, so it is
//	     reported like any other field error, with the field named
//	404  call_agent_id is not an agent of this workspace (an agent of another
//	     workspace gets the very same answer)
//	422  Idempotency-Key already used with a different body
//	409  Idempotency-Key of a request still being processed (Retry-After: 1)
//	503  Kafka did not acknowledge within KAFKA_PRODUCE_TIMEOUT (Retry-After: 2)
//
// Bad input never gets a 5xx (FuzzCreateCall holds this).
//
// A 503 means the record was not acknowledged in time. Almost always it was
// not written either. The exception is a record already in a request to the
// broker when time ran out: franz-go cannot withdraw it, and it may be
// written a moment later. Ingest keeps such a request's Idempotency-Key "in
// flight" until the client settles it, then stores the real outcome, so a
// retry with the same key gets the accepted answer (or goes ahead if nothing
// was written) and never writes a second call. Clients that may retry should
// therefore always send an Idempotency-Key; see idempotency.go for how the
// key also protects retries that reach another replica.
//
// # Call state and control
//
// Same authentication as POST (Bearer key + x-workspace-id; 401, 400, 403).
// Another workspace's call id is answered exactly like an id that exists
// nowhere: 404 "call <id> not found", in every route. Success bodies carry
// "status":"success"; the call's own lifecycle status is inside "call".
// While the replica's call state is still loading, these routes answer 503
// (Retry-After: 1) rather than a wrong 404.
//
//	GET  /v1/api/call/:callId             200 {"status":"success","call":Call}
//	GET  /v1/api/calls                    200 {"status":"success","calls":[CallSummary],"next_cursor":"..."}
//	POST /v1/api/call/:callId/cancel      202 {"status":"success","message","call":Call}; 409 if ended
//	GET  /v1/api/call/:callId/deliveries  200 {"status":"success","callId","deliveries":[Delivery]}
//	POST /v1/api/call/:callId/redeliver   202 {"status":"success","message","callId","events":[...]}
//
// Call (view.go): callId, status (of the latest lifecycle event; queued
// before the first), outcome and the ended event's raw facts (ended_by,
// reason, errors, sip_status_code, sip_status, disconnect_reason,
// ring_duration_seconds, talk_duration_seconds), to (last 4 digits only in a
// mask_phone_numbers workspace), call_agent_id, roomName, jobId,
// callback_url, sequence, requested_at and a timestamp per stage
// (queued_at ... ended_at), cancel_requested_at, dynamic_variables,
// metadata, and events: the lifecycle events in sequence order (id = the
// webhook-id, type, sequence, status, occurred_at, end facts on ended).
// jobId and dynamic_variables come from the call's request record, read
// from dialstream.calls.requested like the events: they are known on every
// replica, except for a call whose request is older than what the replica
// read on start.
//
// The list is newest first by (requested_at, callId); filters status,
// outcome, call_agent_id, from (inclusive) and to (exclusive, RFC 3339),
// limit (1-200, default 50) and cursor (next_cursor of the previous page,
// opaque: the position of its last call). A page holds the calls strictly
// older than the cursor, so paging never repeats or skips a call while new
// ones arrive. Unknown or repeated query parameters are a 400 naming them.
//
// Cancel writes dialstream.call.cancel.v1 (key = call id, acks=all) next
// to the request; optional body {"reason":"..."} (at most 512 characters).
// The dialer ends a queued call canceled without dialing it and hangs up a
// live one. A call already ended is a 409 carrying the call with its
// outcome. Kafka not acknowledging: 503 (Retry-After: 2).
//
// Redeliver writes the call's lifecycle events, as the original records
// (notifier.RedeliveryRecord), to dialstream.webhooks.redeliver: the notifier
// delivers them with a fresh retry budget and their original webhook-id.
// Optional body {"event_id":"..."} or {"sequence":n} for one event (both:
// 422; no such event: 404). No events yet, or no callback_url: 409.
// Cancel and redeliver count against limits.requests_per_second like POST.
//
// # Call state (store.go, follow.go)
//
// Every replica reads every partition of dialstream.calls.requested
// (call.requested and call.cancel only), dialstream.calls.events and
// dialstream.webhooks.deliveries directly, without a consumer group, from
// INGEST_CALLS_RETENTION ago on each start, into memory; a restart rebuilds
// it, so nothing is lost that Kafka holds. Bounded by INGEST_CALLS_RETENTION
// (age of requested_at, default 24h) and INGEST_CALLS_MAX (default 20000
// calls, oldest dropped first); about 6.5 KiB per typical call. store.go
// says why memory and not an embedded store. Eventually consistent with
// the pipeline (milliseconds), with read-your-writes: a call this replica
// accepted is in its state as queued when the 202 is sent, and its events
// merge in by sequence as they are read.
//
// # Other endpoints
//
// GET /healthz: the process serves. GET /readyz: 200 only while Kafka answers
// a metadata request (checked at most once a second) and once the call
// state has read every followed partition up to the end offset it had at
// start. GET /metrics: the process registry (dialstream_ingest_*: requests
// by route pattern and code, the call state's records, evictions, load time
// and loading partitions; franz-go's client metrics as
// dialstream_ingest_kafka_*). GET /openapi.json: the OpenAPI 3.1 document.
package ingest
