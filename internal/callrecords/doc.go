// Package callrecords is the call records database: every call's request,
// lifecycle events and webhook delivery attempts, kept for
// CALL_RECORDS_RETENTION, written by the recorder (and by an ingest
// replica for its own requests) and read by ingest's call-state routes.
// PostgreSQL in production (pgx), SQLite as the embedded default (modernc,
// pure Go: the build stays CGO-free); one schema and one set of migrations
// (goose, migrations/), and queries both engines run.
//
// # What is stored: the records, not a rendering of them
//
// The API's answers are rendered today by ingest's view code (ingest/view.go)
// from the records its in-memory projection kept (ingest/store.go). So
// that the answers stay byte for byte what they are, the database keeps
// those same records, as bytes, and ingest renders them with the same
// code; the columns beside them exist only to find, filter and order
// calls, and for dashboards. Raw JSON is BYTEA, never jsonb, which would
// reorder a client's metadata. The projection's fields map as follows:
//
//	projection (ingest/store.go)      store (this package)                 table.column
//	callRec.id, .ws                   Call.ID, Call.WorkspaceID            calls.call_id, workspace_id
//	callRec.key {at, id}, .rank       Call.Key {At, ID}                    calls.sort_at (Unix ns), sort_rank
//	callRec.req.req (CallRequested)   Call.Request.Data: json.Unmarshal    calls.request
//	callRec.req.partition, .offset    Call.Request.Partition, .Offset      calls.request_partition, request_offset
//	callRec.req.local                 Call.Request.Local                   calls.request_local
//	callRec.events[i].id, .seq,       Call.Events[i].ID, .Sequence,        call_events.event_id, sequence,
//	  .status                           .Status                              status
//	callRec.events[i].at              decode Call.Events[i].Value          call_events.data (occurred_at as
//	                                    (eventFacts.OccurredAt)              written, zone offset included)
//	callRec.events[i].rec             Call.Events[i].Value, .Headers;      call_events.data, headers (JSON)
//	                                    Event.Record(callID) rebuilds it
//	callRec.agent, .outcome           Call.Agent, Call.Outcome             calls.call_agent_id, outcome
//	callRec.status()                  Call.Status                          calls.status (of the highest sequence)
//	callRec.cancelAt                  Call.Cancel: json.Unmarshal          calls.cancel (the first
//	                                    (CallCancel).RequestedAt             call.cancel's data)
//	callRec.deliveries (newest 200)   Store.Deliveries: Delivery.Data      webhook_deliveries.data, in
//	                                    json.Unmarshal (WebhookAttempt)      (partition, offset) order
//	callRec.visible()                 only visible calls are returned      calls.visible
//
// A call scheduled for later (call.scheduled, issue 15) is in calls with
// status "scheduled" until its request or an event is known; its
// scheduled_calls row gives Call.StartAt, and Call.Request (with
// Request.Scheduled set) while the released request is not known
// (scheduled.go).
//
// Times the view renders without .UTC() (an event's occurred_at,
// cancel_requested_at, next_attempt_at) must come from the stored JSON,
// decoded as the projection decoded it, not from the BIGINT columns: those
// keep no zone offset. Decoding the stored bytes with the projection's own
// types reproduces the projection's values exactly.
//
// # The rules, one for one with the projection
//
// The writes (write.go) apply ingest/store.go's rules, each as one
// conditional statement, so concurrent writers cannot undo each other:
//
//   - the first record of a call id fixes its workspace; records naming it
//     from another workspace change nothing, and reads from another
//     workspace find nothing (missing and foreign look alike);
//   - a call's list key moves only to a higher rank (a guess from the
//     first record seen < an ingest replica's own request < the request
//     read from Kafka < the dialer's requested_at on its events); among
//     guesses the earlier time wins;
//   - the request kept is the first in its partition (an earlier offset
//     replaces a later one; another partition changes nothing; the same
//     record read back replaces the replica's own write);
//   - an event whose sequence the call already has changes nothing; the
//     outcome is the ended event's; the agent is the first one seen;
//   - a delivery attempt is identified by its offset on the deliveries
//     topic, and attempts alone do not make a call visible;
//   - the first cancel is kept; a cancel of an unknown call is ignored;
//   - no call is created for a record older than Options.Retention.
//
// # What ingest calls
//
//	any read of the records first          Store.Offsets(recorder group): wait until the recorder's offsets on
//	                                       calls.requested pass this replica's accepted requests; after 100 ms
//	                                       (or 2 s unread) Writer.PutRequest(req, rec.Value, partition, offset, true)
//	GET /v1/api/call/:id                   Store.Get(ws, id)
//	GET /v1/api/calls                      Store.List(ws, Filter{...}, limit) -> calls, next cursor Key
//	GET /v1/api/call/:id/deliveries        Store.Deliveries(ws, id)
//	POST .../cancel after Kafka's ack      Store.Get, then Store.PutCancel(cc, rec.Value), then Store.Get
//	POST .../redeliver                     Store.Get; Call.Events[i].Record(id) is the original record
//	GET /v1/api/calls/export               Store.Export(ws, from, to, fn), oldest first, batched
//	/readyz                                Store.Ping
//	POST /v1/api/call with start_at        Store.PutScheduled(sc, rec.Value, rec.Partition, rec.Offset), optional
//	GET /v1/api/campaigns/:id              Store.Campaign(ws, id)
//	GET /v1/api/campaigns                  Store.Campaigns(ws, status, after, limit) -> campaigns, next CampaignKey
//	GET /v1/api/campaigns/:id/contacts     Store.CampaignContacts(ws, id, status, after, limit) -> contacts, next contact id
//	GET /v1/api/campaigns/:id/export       Store.ExportCampaignContacts(ws, id, fn), CSV row order, batched
//	POST /v1/api/campaigns/:id/contacts    Store.CampaignNumbers(ws, id, numbers): numbers the campaign has
//
// # Campaigns
//
// The campaign tables (migrations/00002) are a copy of the scheduler's
// compacted state topic: a row per campaign (campaigns) and per contact
// (campaign_contacts), each keeping the state record's value as written
// (a schemas.CampaignState or ContactState: the reads return it, counters
// as the scheduler keeps them), replaced by the key's next record and
// deleted by its tombstone (campaign_state.go). Retention deletes a
// campaign that finished before CALL_RECORDS_RETENTION with its contacts;
// a workspace purge deletes its campaigns and contacts too.
//
// # Indexes
//
// Get is the primary key (call_id; the workspace is checked on the row).
// The list walks calls_list (workspace_id, sort_at, call_id) backwards, or
// the filter's own index: calls_by_agent, calls_by_outcome (ended calls
// only), calls_live (calls not ended; status=ended walks calls_list, since
// nearly every call ends). The export walks calls_list forwards, the
// retention calls_by_age. Campaigns list on campaigns_list (or
// campaigns_by_status), contacts page on the primary key (or
// campaign_contacts_by_status), export on campaign_contacts_by_row,
// numbers on campaign_contacts_by_number, campaign retention on
// campaigns_by_finish, purge on campaign_contacts_by_workspace.
// plans_test.go checks every one on both engines.
// Call ids are 24 lowercase hex digits, which every collation orders as
// bytes do, so the cursor's order is the same on both engines.
package callrecords
