// Package ingest is Dialstream's front door: the HTTP API that turns POST
// /v1/api/call into a call.requested record on dialstream.calls.requested,
// and the routes that follow and control a call afterwards (get, list,
// export, cancel, deliveries, redeliver). The API itself is described once: in the
// README for people and in openapi.json (served at GET /openapi.json) for
// machines, checked against real answers by openapi_test.go.
//
// # Guarantees
//
//   - A 2xx means the record is durable: ingest answers only after Kafka
//     acknowledged it with acks=all through an idempotent producer
//     (docs/architecture.md, Invariant 1: durable before 2xx).
//   - A retry with the same Idempotency-Key never places a second call, on
//     this replica or another (idempotency.go).
//   - Bad input gets a 4xx naming the field, never a 5xx (FuzzCreateCall;
//     docs/architecture.md, Invariant 5: bad input).
//   - A call of another workspace is answered exactly like a call that does
//     not exist.
//   - The call state is the call records database (internal/callrecords),
//     which the recorder fills from Kafka: eventually consistent with the
//     pipeline, with read-your-writes for the call a replica accepted (its
//     reads wait until the recorder's stored offsets pass it, or write it
//     themselves after 100 ms), alike on every replica, and
//     nothing of the history in ingest's memory.
//
// # Where to start reading
//
//	config.go       Config, LoadConfig, withDefaults, Validate: every INGEST_* variable
//	run.go          Run: the Kafka client, topics, the records database, the HTTP server, the drain
//	handler.go      the Gin engine and its routes; POST /v1/api/call from request to record
//	auth.go         the /v1/api group's middleware: API key and x-workspace-id
//	request.go      decoding and validating the body of POST /v1/api/call
//	jsonscan.go     splitting a valid JSON body into its members without reflection
//	phone.go        numbers to E.164 (one parse, kept for the compliance check), and the +1 555 01x xxxx test range
//	idempotency.go  Idempotency-Key: replay, 409/422, call ids that survive a replica change
//	produce.go      the Producer, waiting for the acknowledgement, the client's options
//	calls.go        the call-state and control routes: get, list, cancel, deliveries, redeliver
//	records.go      the call records database behind them: a stored call back to what the view renders
//	ownwrites.go    read-your-writes: reads wait for the recorder's offsets to pass this replica's accepted requests (or write them)
//	export.go       GET /v1/api/calls/export: a time range streamed as CSV or NDJSON
//	view.go         the bodies of the call-state routes
//	response.go     the error envelope and the closed set of refusal reasons
//	ops.go          /healthz, /readyz, /metrics through internal/ops, on the API's listener
//	metrics.go      dialstream_ingest_* and the route patterns they are labelled by
//	trace.go        a span per request and per record, in the client's trace
//	openapi.go      the embedded OpenAPI 3.1 document
//
// # What a request costs
//
// POST /v1/api/call is measured against a bare Gin handler that does only
// the same acks=all produce, in one process and one run:
// go run ./ingest/loadgen -n 20000 -c 64 -rounds 2 (add -cpuprofile to see
// where the time goes). The hot functions have benchmarks, so a regression
// shows in a diff: BenchmarkCreateCall, BenchmarkParseCallRequest,
// BenchmarkParsePhone, BenchmarkReadObject, BenchmarkOwnWrites here, and
// BenchmarkNewRecordCallRequested, BenchmarkValidateCallRequested in schemas.
// Where the handler stopped interpreting a schema or calling a library twice
// (schemas/precheck.go, parsePhone, readObject), an equivalence test and a
// fuzz target hold the fast path to the slow one. The figures and the
// profile of what is left are in docs/architecture.md ("What POST
// /v1/api/call costs").
package ingest
