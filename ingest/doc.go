// Package ingest is Dialstream's front door: the HTTP API that turns
// POST /v1/api/call into a call.requested CloudEvent on the Kafka topic
// dialstream.calls.requested, and answers only after Kafka acknowledged it
// (acks=all, idempotent producer), so a 2xx means the call is durable.
//
// # POST /v1/api/call
//
// Headers: Authorization: Bearer <api key>; x-workspace-id: <workspace>;
// Content-Type: application/json; optional Idempotency-Key.
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
// # Other endpoints
//
// GET /healthz: the process serves. GET /readyz: 200 only while Kafka answers
// a metadata request (checked at most once a second). GET /metrics: the
// process registry (dialstream_ingest_* and franz-go's client metrics as
// dialstream_ingest_kafka_*).
package ingest
