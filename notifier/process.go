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
	keys     map[string][][]byte // workspace id -> signing keys, current first
	masked   map[string]bool     // workspace id -> mask_phone_numbers
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

// process handles one record. It returns false only when ctx ended first
// (shutdown or a lost partition): the record then stays unmarked and is read
// again by whoever owns the partition next.
func (n *notifier) process(ctx context.Context, j *job) bool {
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
		return n.finish(ctx, log, nil, []followUp{dlqFollowUp(j, DLQInvalidEvent, j.bad.Error(), j.attempt-1, 0, "")})
	case j.skip: // counted by the consumer, which finishes these without a goroutine
		return true
	}
	id, ev := j.ev.ID, &j.call
	log := n.log.With("call_id", ev.CallID, "workspace_id", ev.WorkspaceID, "event_id", id, "attempt", j.attempt)
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
	refuse := func(res Result, reason DLQReason, msg string) bool {
		a.Result, a.Error = schemas.WebhookResult(res), schemas.Clip(msg, 1024)
		n.m.attempts.WithLabelValues(string(res)).Inc()
		span.SetAttributes(attribute.String("dialstream.webhook.result", string(res)))
		span.SetStatus(codes.Error, msg)
		log.WarnContext(ctx, "notifier: webhook not delivered, sent to the DLQ", "result", res, "reason", msg)
		return n.finish(ctx, log, &a, []followUp{dlqFollowUp(j, reason, msg, j.attempt-1, 0, id)})
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
		return false
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
	n.m.attempts.WithLabelValues(string(res)).Inc()
	span.SetAttributes(attribute.String("dialstream.webhook.result", string(res)))
	if a.StatusCode != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", a.StatusCode))
	}
	if res != ResultSuccess {
		span.SetStatus(codes.Error, a.Error)
	}
	n.m.latency.WithLabelValues(string(res)).Observe(r.duration.Seconds())
	lvl := slog.LevelInfo
	if res != ResultSuccess {
		lvl = slog.LevelWarn
	}
	log.Log(ctx, lvl, "notifier: webhook attempt", "result", res, "status", r.status, "error", a.Error,
		"duration_seconds", a.DurationSeconds, "next_attempt_at", a.NextAttemptAt)
	return n.finish(ctx, log, &a, fs)
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

// finish writes the delivery log entry and the follow-up records. The log is
// written asynchronously and a failure there is only counted: losing a line of
// history must not cause a second delivery. Follow-ups are what keeps the
// event alive (next retry, DLQ, gone mark): they are retried with backoff
// until they are acknowledged, and only then may the consumed record be
// marked. If ctx ends first, it returns false and the record stays unmarked,
// as watermill does when its poison-queue publish fails. Records are written
// with ctx's span as their parent, so they stay in the call's trace; log
// names the call.
func (n *notifier) finish(ctx context.Context, log *slog.Logger, a *schemas.WebhookAttempt, fs []followUp) bool {
	if a != nil {
		if rec, err := schemas.NewRecord(schemas.TopicWebhookDeliveries, a.CallID, schemas.Meta{
			Type: schemas.TypeWebhookAttempt, Source: eventSource, Subject: a.CallID, Time: a.AttemptedAt}, a); err != nil {
			log.ErrorContext(ctx, "notifier: delivery log entry does not match its schema", "err", err)
		} else {
			n.producer.Produce(context.WithoutCancel(ctx), rec, func(_ *kgo.Record, err error) {
				if err != nil {
					n.m.produceFailures.WithLabelValues(produceLog).Inc()
					log.WarnContext(ctx, "notifier: delivery log write failed", "err", err)
				}
			})
		}
	}
	wait := backoff.Doubling{Next: 100 * time.Millisecond, Max: 5 * time.Second}
	for len(fs) > 0 {
		recs := make([]*kgo.Record, len(fs))
		for i, f := range fs {
			// A fresh record each time: franz-go owns a record until its
			// promise has run.
			// Its own headers too: the producer's trace hook rewrites
			// traceparent in place.
			recs[i] = &kgo.Record{Topic: f.rec.Topic, Key: f.rec.Key, Value: f.rec.Value, Headers: slices.Clone(f.rec.Headers)}
		}
		results := n.producer.ProduceSync(ctx, recs...)
		var failed []followUp
		for i, r := range results {
			if r.Err == nil {
				n.produced(fs[i])
				continue
			}
			failed = append(failed, fs[i])
			n.m.produceFailures.WithLabelValues(fs[i].kind).Inc()
			log.ErrorContext(ctx, "notifier: follow-up write failed; the event stays unmarked until it succeeds",
				"kind", fs[i].kind, "topic", fs[i].rec.Topic, "err", r.Err)
		}
		fs = failed
		if len(fs) > 0 && !wait.Wait(ctx) {
			return false
		}
	}
	return true
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
