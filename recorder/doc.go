// Package recorder keeps the call records: a consumer group that reads the
// call topics (requests and cancels on dialstream.calls.requested,
// lifecycle events on dialstream.calls.events, webhook attempts on
// dialstream.webhooks.deliveries) and writes each call's record, its
// events and its delivery attempts into the call records database
// (internal/callrecords: PostgreSQL in production, SQLite embedded), which
// ingest's read routes answer from. It also reads the scheduler's topics
// once they exist: the compacted dialstream.campaigns.state into the
// campaign tables, and call.scheduled records on
// dialstream.campaigns.commands, which make a call scheduled for later
// visible before its release. Kafka stays the source of truth; the
// database is a read model that outlives the topics' retention, for
// CALL_RECORDS_RETENTION (400 days by default).
//
// What it guarantees:
//
//   - Effectively once. A batch's rows and the partitions' next offsets
//     commit in one database transaction, and a member reads on from the
//     offsets the database holds, never from Kafka's; a member that lost
//     a partition cannot overwrite its successor's offsets
//     (callrecords.ErrOffsetMoved). A crash, a SIGKILL or a rebalance
//     neither loses nor doubles a row (crash_test.go), and each row is
//     keyed so that a replay would change nothing anyway (an event by its
//     call and sequence, an attempt by its offset).
//   - Each call's events are stored once per sequence and read back in
//     sequence order, whatever order the topics were read in.
//   - A record it cannot read is counted (dialstream_recorder_records_total
//     {result="invalid"}) and passed over; it never stalls a partition. A
//     database that refuses or does not answer stops the recorder's
//     progress, not its data: the batch is read again from the stored
//     offsets after a pause (doubling to 30 s), and /readyz says why.
//   - Retention: every RECORDER_RETENTION_INTERVAL, the calls requested
//     before CALL_RECORDS_RETENTION are deleted with their events and
//     attempts, a bounded batch per transaction; Purge deletes one
//     workspace's records on request.
//
// Where to start reading: consume.go (the group member: assignment, the
// batch transaction, rewinds), apply.go (what each record becomes),
// retention.go (the delete loop and Purge), run.go (wiring), config.go
// (RECORDER_*, DATABASE_URL, CALL_RECORDS_RETENTION), metrics.go
// (dialstream_recorder_*). docs/architecture.md, "Scale", says how it
// scales: by partitions of its group, like the dialer and the notifier.
package recorder
