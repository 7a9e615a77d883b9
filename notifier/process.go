package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/schemas"
)

// eventSource is the ce_source of the records the notifier writes.
const eventSource = "/dialstream/notifier"

// notifier turns one consumed record into at most one HTTP attempt and the
// records that follow from it.
type notifier struct {
	log      *slog.Logger
	tracer   trace.Tracer
	keys     map[string][]*macKey // workspace id -> signing keys, current first
	masked   map[string]bool      // workspace id -> mask_phone_numbers
	sched    schedule
	http     *http.Client
	maxBody  int64
	m        *metrics
	producer producer
	gone     *endpoints
	rnd      func() float64
}

// producer is the part of *kgo.Client the notifier writes with.
type producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

var _ producer = (*kgo.Client)(nil)

// followUp is a record that must be written before the consumed record is
// marked, with its kind for the failure metric and, for DLQ and retry
// records, the label it counts under once written (the DLQ reason, the
// retry's schedule step).
type followUp struct {
	kind  string
	rec   *kgo.Record
	label string
}

// dlqFollowUp dead-letters the consumed record for reason.
func dlqFollowUp(j *job, reason DLQReason, errText string, attempts, lastStatus int, webhookID string) followUp {
	return followUp{produceDLQ, dlqRecord(j.rec, reason, errText, attempts, lastStatus, webhookID), string(reason)}
}

// writes are what one consumed record leads to: its delivery log entry and
// its follow-ups. The record may be marked only once every one of them is
// acknowledged (write).
type writes struct {
	ctx context.Context // the delivery's: its span is the records' parent
	log *slog.Logger    // names the call; nil: n.callLog(j) when a line is written
	j   *job
	fs  []followUp
}

// callLog is n.log naming j's call and attempt, made only for a line that
// is written: With copies and, in the JSON and text handlers, pre-formats
// its attributes, which on every webhook cost more than the attempt's one
// line, and most attempts write none but that one (which names them itself).
func (n *notifier) callLog(j *job) *slog.Logger {
	return n.log.With("call_id", j.call.CallID, "workspace_id", j.call.WorkspaceID, "event_id", j.ev.ID, "attempt", j.attempt)
}

// logger is the log naming w's call.
func (n *notifier) logger(w writes) *slog.Logger {
	if w.log != nil {
		return w.log
	}
	return n.callLog(w.j)
}

// process handles one record: the attempt, and the records that must follow
// it. It returns false only when ctx ended first (shutdown or a lost
// partition): the record then stays unmarked and is read again by whoever
// owns the partition next.
func (n *notifier) process(ctx context.Context, j *job) (writes, bool) {
	// Everything the record leads to continues its trace (the call's):
	// the webhook's traceparent and the records written below.
	if j.rec.Context != nil {
		ctx = trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(j.rec.Context))
	}
	switch {
	case j.bad != nil:
		id, ws := recordCall(j.rec)
		log := n.log.With("call_id", id, "workspace_id", ws)
		log.WarnContext(ctx, "notifier: invalid record on "+j.rec.Topic+", sent to the DLQ",
			"partition", j.rec.Partition, "offset", j.rec.Offset, "err", j.bad)
		return writes{ctx: ctx, log: log, j: j, fs: []followUp{dlqFollowUp(j, DLQInvalidEvent, j.bad.Error(), j.attempt-1, 0, "")}}, true
	case j.skip: // counted by the consumer, which finishes these without a goroutine
		return writes{}, true
	}
	id, ev := j.ev.ID, &j.call
	ctx, span := n.tracer.Start(ctx, "deliver webhook", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("dialstream.call_id", ev.CallID), attribute.String("dialstream.workspace_id", ev.WorkspaceID),
		attribute.String("cloudevents.event_id", id), attribute.String("cloudevents.event_type", j.ev.Type),
		attribute.Int("dialstream.webhook.attempt", j.attempt), attribute.Bool("dialstream.webhook.redelivery", j.redelivery),
		attribute.String("http.request.method", http.MethodPost), attribute.String("server.address", j.host)))
	defer span.End()
	a := schemas.WebhookAttempt{
		EventID: id, EventType: j.ev.Type, CallID: ev.CallID, WorkspaceID: ev.WorkspaceID, Sequence: ev.Sequence,
		Attempt: j.attempt, MaxAttempts: n.sched.attempts(), Redelivery: j.redelivery,
		URL: ev.CallbackURL, AttemptedAt: time.Now(),
	}

	// Refusals decided before any request: logged as attempts so a call's
	// delivery list says why nothing arrived.
	refuse := func(res Result, reason DLQReason, msg string) (writes, bool) {
		a.Result, a.Error = schemas.WebhookResult(res), schemas.Clip(msg, 1024)
		n.m.attempt(res)
		span.SetAttributes(attribute.String("dialstream.webhook.result", string(res)))
		span.SetStatus(codes.Error, msg)
		n.callLog(j).WarnContext(ctx, "notifier: webhook not delivered, sent to the DLQ", "result", res, "reason", msg)
		return n.logged(ctx, j, &a, []followUp{dlqFollowUp(j, reason, msg, j.attempt-1, 0, id)}), true
	}
	if j.urlErr != nil {
		return refuse(ResultFailed, DLQUndeliverable, j.urlErr.Error())
	}
	keys := n.keys[ev.WorkspaceID]
	if len(keys) == 0 {
		return refuse(ResultFailed, DLQUndeliverable, fmt.Sprintf("workspace %q is unknown or has no webhook_secrets; deliveries are never unsigned", ev.WorkspaceID))
	}
	if since, gone := n.gone.goneSince(ev.WorkspaceID, ev.CallbackURL); gone && !j.redelivery {
		return refuse(ResultGone, DLQGone, fmt.Sprintf("callback_url answered 410 Gone at %s; deliveries to it are stopped (a redelivery retries it)", since.UTC().Format(time.RFC3339)))
	}
	var body []byte
	var err error
	if j.campaign != nil {
		body, err = buildCampaignBody(id, j.ev.Type, j.campaign)
	} else {
		body, err = buildBody(id, j.ev.Type, ev, n.masked[ev.WorkspaceID])
	}
	if err != nil {
		return refuse(ResultFailed, DLQUndeliverable, "render body: "+err.Error())
	}

	r := post(ctx, n.http, ev.CallbackURL, id, keys, body, n.maxBody)
	if ctx.Err() != nil {
		return writes{}, false
	}
	a.AttemptedAt, a.DurationSeconds = r.at, r.duration.Seconds()
	if r.status >= 100 && r.status <= 599 {
		a.StatusCode = r.status
	}
	a.Error = schemas.Clip(r.errorText(), 1024)

	var fs []followUp
	var res Result
	switch {
	case r.refused() != nil:
		res = ResultSSRFRefused
		fs = append(fs, dlqFollowUp(j, DLQSSRFRefused, a.Error, j.attempt, 0, id))
	case r.err == nil && success(r.status):
		res = ResultSuccess
		if !j.ev.Time.IsZero() {
			n.m.eventToDelivery.Observe(time.Since(j.ev.Time).Seconds())
		}
		if _, gone := n.gone.goneSince(ev.WorkspaceID, ev.CallbackURL); gone {
			// Only a redelivery gets here: the URL works again.
			if rec, err := n.endpointChange(ctx, ev, id, schemas.EndpointActive, r.status); err == nil {
				fs = append(fs, followUp{produceEndpoint, rec, ""})
			}
		}
	case r.err == nil && r.status == http.StatusGone:
		res = ResultGone
		if rec, err := n.endpointChange(ctx, ev, id, schemas.EndpointGone, r.status); err == nil {
			fs = append(fs, followUp{produceEndpoint, rec, ""})
		}
		fs = append(fs, dlqFollowUp(j, DLQGone, a.Error, j.attempt, r.status, id))
	case r.err != nil || retryable(r.status):
		ra := time.Duration(0)
		if r.hasRA {
			ra = r.retryAfter
		}
		if delay, topic, ok := n.sched.next(j.attempt, ra, n.rnd); ok {
			res = ResultRetry
			due := time.Now().Add(delay)
			a.NextAttemptAt = &due
			fs = append(fs, followUp{produceRetry, retryRecord(j.rec, topic, id, j.attempt+1, due, r.status, a.Error), strconv.Itoa(j.attempt)})
		} else {
			res = ResultExhausted
			fs = append(fs, dlqFollowUp(j, DLQExhausted, a.Error, j.attempt, r.status, id))
		}
	default:
		res = ResultFailed
		fs = append(fs, dlqFollowUp(j, DLQFinalStatus, a.Error, j.attempt, r.status, id))
	}
	a.Result = schemas.WebhookResult(res)
	n.m.attempt(res)
	span.SetAttributes(attribute.String("dialstream.webhook.result", string(res)))
	if a.StatusCode != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", a.StatusCode))
	}
	if res != ResultSuccess {
		span.SetStatus(codes.Error, a.Error)
	}
	n.m.observe(res, r.duration)
	lvl := slog.LevelInfo
	if res != ResultSuccess {
		lvl = slog.LevelWarn
	}
	if n.log.Enabled(ctx, lvl) {
		// callLog's attributes, inline: the same line without With's copy.
		n.log.Log(ctx, lvl, "notifier: webhook attempt", "call_id", ev.CallID, "workspace_id", ev.WorkspaceID, "event_id", id,
			"attempt", j.attempt, "result", res, "status", r.status, "error", a.Error,
			"duration_seconds", a.DurationSeconds, "next_attempt_at", a.NextAttemptAt)
	}
	return n.logged(ctx, j, &a, fs), true
}

// endpointChange records a URL's new state locally at once and returns the
// record that tells the other replicas.
func (n *notifier) endpointChange(ctx context.Context, ev *schemas.CallEvent, id string, st schemas.EndpointState, status int) (*kgo.Record, error) {
	ep := schemas.WebhookEndpoint{WorkspaceID: ev.WorkspaceID, URL: ev.CallbackURL, State: st,
		ChangedAt: time.Now().UTC(), StatusCode: status, CallID: ev.CallID, EventID: id}
	n.gone.set(schemas.WebhookEndpointKey(ev.WorkspaceID, ev.CallbackURL), st, ep.ChangedAt)
	rec, err := endpointRecord(ep)
	if err != nil {
		n.log.ErrorContext(ctx, "notifier: endpoint record does not match its schema", "call_id", ev.CallID, "workspace_id", ev.WorkspaceID, "err", err)
	}
	return rec, err
}

// logged adds a's delivery log entry to the follow-ups fs. An entry that
// breaks its schema (a bug here, never the event's fault) is logged and left
// out rather than holding the event back forever.
func (n *notifier) logged(ctx context.Context, j *job, a *schemas.WebhookAttempt, fs []followUp) writes {
	rec, err := attemptRecord(a)
	if err != nil {
		n.callLog(j).ErrorContext(ctx, "notifier: delivery log entry does not match its schema", "err", err)
		return writes{ctx: ctx, j: j, fs: fs}
	}
	return writes{ctx: ctx, j: j, fs: append(fs, followUp{kind: produceLog, rec: rec})}
}

// write produces every record of w at once and calls done(true) when all
// are acknowledged: the delivery log entry and the follow-ups that keep the
// event alive (next retry, DLQ, gone mark) are durable before the consumed
// record is marked, so a crash repeats an attempt rather than losing it or
// its line of history. The caller holds no delivery slot meanwhile: franz-go
// batches the records of every delivery finishing at about the same time
// into one produce request, instead of one round trip to the broker per
// webhook while a slot idles. A record that fails is retried with backoff
// (rewrite) until acknowledged; if w.ctx ends first, done(false) leaves the
// record unmarked, as watermill does when its poison-queue publish fails.
func (n *notifier) write(w writes, done func(ok bool)) {
	if len(w.fs) == 0 {
		done(true)
		return
	}
	var mu sync.Mutex
	var failed []followUp
	left := len(w.fs)
	for _, f := range w.fs {
		// The first try produces f.rec itself: every follow-up is built for
		// this one write, so nothing else reads it meanwhile, and rewrite
		// copies it (fresh) only after this promise has run.
		n.producer.Produce(w.ctx, f.rec, func(_ *kgo.Record, err error) {
			mu.Lock()
			if err != nil {
				failed = append(failed, f)
				n.writeFailed(w, f, err)
			} else {
				n.produced(f)
			}
			left--
			last := left == 0
			mu.Unlock()
			switch {
			case !last:
			case len(failed) == 0:
				done(true)
			default:
				// Not in franz-go's promise goroutine: rewrite waits.
				go func() { done(n.rewrite(w, failed)) }()
			}
		})
	}
}

// rewrite retries the records of fs that failed, with backoff, until each is
// acknowledged (true) or w.ctx ends (false).
func (n *notifier) rewrite(w writes, fs []followUp) bool {
	wait := backoff.Doubling{Next: 100 * time.Millisecond, Max: 5 * time.Second}
	for len(fs) > 0 {
		if !wait.Wait(w.ctx) {
			return false
		}
		recs := make([]*kgo.Record, len(fs))
		for i, f := range fs {
			recs[i] = fresh(f.rec)
		}
		results := n.producer.ProduceSync(w.ctx, recs...)
		var failed []followUp
		for i, r := range results {
			if r.Err == nil {
				n.produced(fs[i])
				continue
			}
			failed = append(failed, fs[i])
			n.writeFailed(w, fs[i], r.Err)
		}
		fs = failed
	}
	return true
}

// fresh copies rec for one more produce: franz-go owns a record until its
// promise has run, and the producer's trace hook rewrites traceparent in its
// headers in place, so every retry gets its own record and headers (the
// traceparent left by an earlier try is replaced by the retry's own).
func fresh(rec *kgo.Record) *kgo.Record {
	return &kgo.Record{Topic: rec.Topic, Key: rec.Key, Value: rec.Value, Headers: slices.Clone(rec.Headers)}
}

// writeFailed counts and logs a failed write, unless the delivery's context
// ended (shutdown, lost partition): that failure is the stop, not Kafka's.
func (n *notifier) writeFailed(w writes, f followUp, err error) {
	if w.ctx.Err() != nil {
		return
	}
	n.m.produceFailures.WithLabelValues(f.kind).Inc()
	n.logger(w).ErrorContext(w.ctx, "notifier: write failed; the event stays unmarked until it succeeds",
		"kind", f.kind, "topic", f.rec.Topic, "err", err)
}

// produced counts a follow-up once it is acknowledged.
func (n *notifier) produced(f followUp) {
	switch f.kind {
	case produceDLQ:
		n.m.dlq.WithLabelValues(f.label).Inc()
	case produceRetry:
		n.m.retries.WithLabelValues(f.label).Inc()
	}
}

func defaultRand() float64 { return rand.Float64() }

// tracerName names the notifier's spans.
const tracerName = "github.com/dialstream/dialstream/notifier"

// recordCall names the call an invalid record is about, as far as it can be
// told, for the log line that says it went to the DLQ.
func recordCall(rec *kgo.Record) (callID, workspaceID string) {
	var body struct {
		CallID      string `json:"call_id"`
		WorkspaceID string `json:"workspace_id"`
	}
	_ = json.Unmarshal(rec.Value, &body)
	callID, workspaceID = body.CallID, body.WorkspaceID
	if callID == "" {
		callID = string(rec.Key)
	}
	if callID == "" || len(callID) > 64 {
		callID = "unknown"
	}
	if workspaceID == "" || len(workspaceID) > 64 {
		workspaceID = "unknown"
	}
	return callID, workspaceID
}
