package dialer

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/livekit/protocol/webhook"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/schemas"
)

const (
	webhookPath     = "/livekit/webhook"
	maxWebhookBytes = 1 << 20
	webhookTimeout  = 10 * time.Second
)

// serveWebhook turns a signed LiveKit webhook about a call into a command on
// the call's partition. It answers 200 only once the command is durable, so
// LiveKit's retry covers a Kafka outage; an unsigned or forged request is
// refused with 401 and produces nothing.
func (d *dialer) serveWebhook(w http.ResponseWriter, r *http.Request) {
	cmd, part, callTrace, ok := d.receiveWebhook(w, r)
	if !ok {
		return
	}
	// The command continues the call's trace, which the room's metadata
	// carries; LiveKit's request (traced if LiveKit ever sends a
	// traceparent) is a link. A room without it leaves the request's trace,
	// which applying the command links into the call's.
	ctx := obs.Propagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("http.request.method", r.Method), attribute.String("http.route", webhookPath),
		attribute.String("livekit.webhook.event", cmd.Event),
		attribute.String("dialstream.call_id", cmd.CallID), attribute.String("dialstream.workspace_id", cmd.WorkspaceID))}
	if call := trace.SpanContextFromContext(obs.ContextWithTraceParent(context.Background(), callTrace.TraceParent, callTrace.TraceState)); call.IsValid() {
		opts = append(opts, trace.WithLinks(trace.LinkFromContext(ctx)))
		ctx = trace.ContextWithRemoteSpanContext(ctx, call)
	}
	ctx, span := d.tracer.Start(ctx, "POST "+webhookPath, opts...)
	defer span.End()
	rec, err := commandRecord(TypeLiveKitEvent, cmd.CallID, part, cmd.OccurredAt, cmd)
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, webhookTimeout)
		err = d.prod.ProduceSync(pctx, rec).FirstErr()
		cancel()
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		d.m.webhooks.WithLabelValues(whError).Inc()
		d.log.ErrorContext(ctx, "dialer: webhook not recorded", "call_id", cmd.CallID, "workspace_id", cmd.WorkspaceID, "event", cmd.Event, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "error", "message": "could not record the event; retry"})
		return
	}
	d.m.webhooks.WithLabelValues(whAccepted).Inc()
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// receiveWebhook reads and checks a webhook: it answers a refused, unreadable
// or ignored one itself, and returns ok with the command to write for one
// about a call. Everything that decodes outside input is here, apart from the
// write (FuzzWebhook exercises it on its own).
func (d *dialer) receiveWebhook(w http.ResponseWriter, r *http.Request) (cmd livekitEvent, part int32, call roomMetadata, ok bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxWebhookBytes)
	body, err := webhook.Receive(r, auth.NewSimpleKeyProvider(d.cfg.LiveKitAPIKey, d.cfg.LiveKitAPISecret))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			d.m.webhooks.WithLabelValues(whBadRequest).Inc()
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"status": "error", "message": "body too large"})
			return cmd, part, call, false
		}
		d.m.webhooks.WithLabelValues(whUnauthorized).Inc()
		d.log.Warn("dialer: webhook refused: not signed by the LiveKit API key", "remote", r.RemoteAddr, "err", err)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"status": "error", "message": "invalid webhook signature"})
		return cmd, part, call, false
	}
	ev := &livekit.WebhookEvent{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true, AllowPartial: true}).Unmarshal(body, ev); err != nil {
		d.m.webhooks.WithLabelValues(whBadRequest).Inc()
		writeJSON(w, http.StatusBadRequest, map[string]string{"status": "error", "message": "not a LiveKit webhook event"})
		return cmd, part, call, false
	}
	cmd, part, call, ok = d.webhookCommand(ev, time.Now())
	if !ok {
		d.m.webhooks.WithLabelValues(whIgnored).Inc()
		writeJSON(w, http.StatusOK, map[string]string{"status": "ignored"})
	}
	return cmd, part, call, ok
}

// webhookCommand maps a LiveKit webhook to a command for the call whose
// room it is about. The room's metadata names the call, its partition and
// its trace context (returned with it); the SIP participant's attributes are
// the fallback.
func (d *dialer) webhookCommand(ev *livekit.WebhookEvent, now time.Time) (cmd livekitEvent, part int32, call roomMetadata, ok bool) {
	switch ev.GetEvent() {
	case lkParticipantJoined, lkParticipantLeft, lkConnectionAborted, lkRoomFinished:
	default:
		return livekitEvent{}, 0, roomMetadata{}, false
	}
	var meta roomMetadata
	_ = json.Unmarshal([]byte(ev.GetRoom().GetMetadata()), &meta)
	pi := ev.GetParticipant()
	if !callIDRE.MatchString(meta.CallID) {
		meta.CallID = pi.GetAttributes()["dialstream.call_id"]
		meta.WorkspaceID = pi.GetAttributes()["dialstream.workspace_id"]
	}
	if !callIDRE.MatchString(meta.CallID) || meta.WorkspaceID == "" || len(meta.WorkspaceID) > 64 {
		return livekitEvent{}, 0, roomMetadata{}, false // not a Dialstream room
	}
	if pi != nil && pi.GetIdentity() != calleeIdentity(meta.CallID) {
		return livekitEvent{}, 0, roomMetadata{}, false // the agent or another participant
	}
	// LiveKit stamps events in whole seconds; the receive time is more
	// precise unless the webhook was delayed.
	at := now.UTC()
	if c := ev.GetCreatedAt(); c > 0 && now.Sub(time.Unix(c, 0)) > 5*time.Second {
		at = time.Unix(c, 0).UTC()
	}
	cmd = livekitEvent{
		CallID: meta.CallID, WorkspaceID: meta.WorkspaceID, Event: ev.GetEvent(), WebhookID: schemas.Clip(ev.GetId(), 128),
		RoomName: schemas.Clip(ev.GetRoom().GetName(), 128), OccurredAt: at,
	}
	if pi != nil {
		cmd.ParticipantIdentity = schemas.Clip(pi.GetIdentity(), 128)
		cmd.ParticipantKind = schemas.Clip(pi.GetKind().String(), 32)
		cmd.SIPCallStatus = schemas.Clip(pi.GetAttributes()[livekit.AttrSIPCallStatus], 32)
		if r := pi.GetDisconnectReason(); r != livekit.DisconnectReason_UNKNOWN_REASON {
			cmd.DisconnectReason = schemas.Clip(r.String(), 128)
		}
	}
	if ev.GetEvent() == lkRoomFinished && ev.GetRoomEndReason() != livekit.RoomEndReason_ROOM_END_UNKNOWN {
		cmd.RoomEndReason = schemas.Clip(ev.GetRoomEndReason().String(), 128)
	}
	return cmd, d.partitionOf(meta), meta, true
}

// partitionOf is the call's partition: the one named in its room metadata,
// else the Kafka default (murmur2) partition of its id.
func (d *dialer) partitionOf(meta roomMetadata) int32 {
	if meta.Partition != nil && *meta.Partition >= 0 && int(*meta.Partition) < d.totalParts {
		return *meta.Partition
	}
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic(schemas.TopicRequested).
		Partition(&kgo.Record{Key: []byte(meta.CallID)}, d.totalParts))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
