package schemas

// Topic names. Every record of one call is keyed by its call id on every topic,
// so one call's records stay in one partition, in order. The requested and
// state topics must have the same partition count: the dialer relies on a call
// landing in the same partition number of both.
const (
	// TopicRequested carries commands for calls: call.requested (from ingest or
	// any producer), call.cancel, and the dialer's own follow-up commands for a
	// call (dial results, LiveKit webhooks), so one partition owner applies every
	// change to a call in order.
	TopicRequested = "dialstream.calls.requested"
	// TopicEvents carries the call-lifecycle events (queued ... ended).
	TopicEvents = "dialstream.calls.events"
	// TopicState is the dialer's compacted record of each call's progress.
	TopicState = "dialstream.calls.state"
	// TopicRequestsDLQ receives records of TopicRequested that could not be
	// accepted (bad JSON, schema-invalid, unknown agent), with headers saying why.
	TopicRequestsDLQ = "dialstream.calls.requested.dlq"
	// TopicSuppressions is compacted: the do-not-call lists, one Suppression
	// per workspace and number (SuppressionKey), a tombstone to remove one.
	// Every dialer and ingest replica reads all of it; see
	// internal/compliance.
	TopicSuppressions = "dialstream.suppressions"
)
