package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/compliance"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/internal/registry"
	"github.com/dialstream/dialstream/schemas"
)

// EventSource is the ce_source of the records ingest writes.
const EventSource = "/dialstream/ingest"

// HeaderReplayed marks an answer replayed for a repeated Idempotency-Key.
const HeaderReplayed = "Idempotent-Replayed"

type handler struct {
	cfg      Config
	reg      *registry.Registry
	p        Producer
	log      *slog.Logger
	tracer   trace.Tracer
	m        *metrics
	idem     *idemStore
	secret   []byte
	limiters map[string]*rate.Limiter
	lim      limits
	ready    readiness
	// st is the call records database every call-state route reads
	// (records.go); ingest writes its own acknowledged cancels into it,
	// and its acknowledged requests when the recorder is late, for
	// read-your-writes.
	st *callrecords.Store
	// own holds this replica's acknowledged requests until the recorder
	// (or ingest itself) has written them into st (ownwrites.go).
	own *ownWrites
	// inFlight holds a token per API request being served (overload.go).
	inFlight chan struct{}
	// comp checks each call against the workspace's compliance policy and
	// do-not-call list at request time (compliance.go); now is its clock.
	comp *compliance.Checker
	now  func() time.Time
	// supWait, set by Run, waits for the suppression follower to apply a
	// produced offset (read-your-writes); nil: writes apply locally.
	supWait func(ctx context.Context, partition int32, offset int64) error
	// campaigns is st's campaign tables, nil while the store has none
	// (campaigns.go); ownCamps the campaigns this replica created.
	campaigns campaignStore
	ownCamps  *ownCampaigns
	// scheduled remembers the calls this replica scheduled, so that their
	// cancel also reaches the scheduler (scheduled_calls.go).
	scheduled *ownScheduled
	// events fans the call events out to GET /v1/api/events/stream
	// (events_hub.go); Run gives it its Kafka feed.
	events *eventHub
}

// NewHandler returns the HTTP API (a Gin engine): every route of the OpenAPI
// document, and the ops endpoints (ops.go). Records go to p, the client of
// the cluster cfg.Kafka names; *kgo.Client is the production Producer, and
// /readyz pings it. The call-state routes answer from cfg.Store, or from
// cfg.DatabaseURL opened for the life of the process when it is nil.
// cfg.Registry is loaded from cfg.RegistryPath when nil. Metrics are
// registered on cfg.Metrics, so one registry serves one handler.
func NewHandler(cfg Config, p Producer) (http.Handler, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	if p == nil {
		return nil, errors.New("ingest: NewHandler: nil Producer")
	}
	if cfg.Store == nil {
		st, err := openRecords(context.Background(), cfg)
		if err != nil {
			return nil, err
		}
		cfg.Store = st
	}
	h, err := newHandler(cfg, p)
	if err != nil {
		return nil, err
	}
	return h.engine(), nil
}

// openRecords opens the call records database of cfg.DatabaseURL.
func openRecords(ctx context.Context, cfg Config) (*callrecords.Store, error) {
	st, err := callrecords.Open(ctx, cfg.DatabaseURL, callrecords.Options{Retention: cfg.CallsRetention, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	return st, nil
}

func newHandler(cfg Config, p Producer) (*handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("ingest: no call records store")
	}
	if cfg.Registry == nil {
		r, err := registry.Load(cfg.RegistryPath)
		if err != nil {
			return nil, fmt.Errorf("ingest: %w", err)
		}
		cfg.Registry = r
	}
	h := &handler{
		cfg:      cfg,
		reg:      cfg.Registry,
		p:        p,
		log:      cfg.Logger.With("component", "ingest"),
		tracer:   cfg.TracerProvider.Tracer(tracerName),
		idem:     newIdemStore(cfg.IdempotencyTTL, cfg.IdempotencyMaxKeys),
		limiters: map[string]*rate.Limiter{},
		lim: limits{
			maxVariables:   cfg.MaxVariables,
			maxValueLength: cfg.MaxValueLength,
			defaultRegion:  cfg.DefaultRegion,
			allowTest:      !cfg.RejectTestNumbers,
		},
	}
	h.st = cfg.Store
	h.campaigns = cfg.Store
	h.ownCamps = newOwnCampaigns()
	h.scheduled = newOwnScheduled()
	h.events = newEventHub(cfg.EventStreamsPerWorkspace, cfg.EventStreamsMax, h.log)
	h.events.frame = h.sseFrame
	h.inFlight = make(chan struct{}, cfg.MaxInFlight)
	if cfg.Suppressions == nil {
		cfg.Suppressions = compliance.NewTable()
		h.cfg.Suppressions = cfg.Suppressions
	}
	h.comp = &compliance.Checker{Policies: cfg.Registry, Suppressions: cfg.Suppressions}
	h.now = cfg.Now
	if h.now == nil {
		h.now = time.Now
	}
	h.secret = []byte(cfg.IdempotencySecret)
	if len(h.secret) == 0 {
		h.secret = []byte(defaultIdemSecret)
	}
	if pg, ok := p.(Pinger); ok {
		h.ready.p = pg
	}
	for _, w := range cfg.Registry.Workspaces() {
		rps := w.Limits.RequestsPerSecond
		h.limiters[w.ID] = rate.NewLimiter(rate.Limit(rps), max(1, int(math.Ceil(rps))))
	}
	m, err := newMetrics(cfg.Metrics, gauges{
		idemKeys: func() float64 { return float64(h.idem.len()) },
		streams:  func() float64 { return float64(h.events.streams()) },
	})
	if err != nil {
		return nil, fmt.Errorf("ingest: register metrics: %w", err)
	}
	h.m = m
	h.own = newOwnWrites(cfg.Store, cfg.RecorderGroup, m.ownSettled, h.log)
	h.events.dropped = m.streamsDropped.Inc
	return h, nil
}

func (h *handler) engine() *gin.Engine {
	if os.Getenv(gin.EnvGinMode) == "" {
		gin.SetMode(gin.ReleaseMode)
	}
	e := gin.New()
	e.HandleMethodNotAllowed = true
	// No redirect for a trailing or doubled slash ("/v1/api/suppressions/",
	// ".../suppressions//"): Gin's would answer an HTML 301 or a 307 that
	// makes the client resend its body and key to another route, none of it
	// in the OpenAPI document. Such a path is a JSON 404 like any other
	// (found by FuzzAuthHeaders).
	e.RedirectTrailingSlash = false
	_ = e.SetTrustedProxies(nil)
	e.Use(h.traceRequest, h.m.instrument, h.recover)
	api := e.Group(apiPrefix, h.limitInFlight, h.authenticated)
	rel := func(route string) string { return strings.TrimPrefix(route, apiPrefix) }
	api.POST(rel(routeCall), h.createCall)
	api.GET(rel(routeCallState), h.getCall)
	api.POST(rel(routeCallCancel), h.cancelCall)
	api.GET(rel(routeCallDeliveries), h.deliveries)
	api.POST(rel(routeCallRedeliver), h.redeliver)
	api.GET(rel(routeCalls), h.listCalls)
	api.GET(rel(routeCallsExport), h.exportCalls)
	api.PUT(rel(routeSuppression), h.putSuppression)
	api.DELETE(rel(routeSuppression), h.deleteSuppression)
	api.GET(rel(routeSuppression), h.getSuppression)
	api.GET(rel(routeSuppressions), h.listSuppressions)
	api.POST(rel(routeSuppressionsImport), h.importSuppressions)
	api.GET(rel(routeSuppressionsExport), h.exportSuppressions)
	api.POST(rel(routeCampaigns), h.createCampaign)
	api.POST(rel(routeCampaignContacts), h.uploadContacts)
	api.GET(rel(routeCampaign), h.getCampaign)
	api.GET(rel(routeCampaigns), h.listCampaigns)
	api.GET(rel(routeCampaignContacts), h.listCampaignContacts)
	api.GET(rel(routeCampaignExport), h.exportCampaign)
	api.POST(rel(routeCampaignStart), h.campaignControl(schemas.ActionStart))
	api.POST(rel(routeCampaignPause), h.campaignControl(schemas.ActionPause))
	api.POST(rel(routeCampaignResume), h.campaignControl(schemas.ActionResume))
	api.POST(rel(routeCampaignCancel), h.campaignControl(schemas.ActionCancel))
	// A stream is open for as long as its client listens: it takes no
	// in-flight token for its life (overload.go), only its workspace's
	// stream slot (events_hub.go).
	e.GET(routeEventsStream, h.limitInFlightAtOpen, h.authenticated, h.streamEvents)
	// Agents authenticate with their call's report token, never a
	// workspace key: the route sits outside the API group (reports.go).
	e.POST(routeAgentReports, h.limitInFlight, h.agentReport)
	e.GET(routeOpenAPI, serveOpenAPI)
	h.mountOps(e)
	e.NoRoute(func(c *gin.Context) {
		h.fail(c, &apiError{code: http.StatusNotFound, reason: reasonNotFoundRoute, message: "no such endpoint: " + c.Request.Method + " " + c.Request.URL.Path})
	})
	e.NoMethod(func(c *gin.Context) {
		h.fail(c, &apiError{code: http.StatusMethodNotAllowed, reason: reasonMethodNotAllowed, message: "method " + c.Request.Method + " is not allowed here"})
	})
	return e
}

// recover turns a panic into a 500 envelope; the fuzz test holds that no
// input reaches it.
func (h *handler) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.ErrorContext(c.Request.Context(), "panic while serving request", "path", c.Request.URL.Path, "panic", fmt.Sprint(v))
			if !c.Writer.Written() {
				h.fail(c, &apiError{code: http.StatusInternalServerError, reason: reasonInternal, message: "internal error"})
			}
		}
	}()
	c.Next()
}

// createCall serves POST /v1/api/call. The checks run cheapest and least
// revealing first: who is asking (401/403, the group's authenticated), whether they may ask now (429),
// whether the request is readable (415/413/400), whether it is valid (422),
// whether its agent exists for this workspace (404), and only then the
// Idempotency-Key store (409/422/replay) and Kafka (503).
func (h *handler) createCall(c *gin.Context) {
	ws := workspaceOf(c)
	if aerr := h.admit(ws); aerr != nil {
		h.fail(c, aerr)
		return
	}
	idemKey, aerr := idempotencyKey(c)
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	body, aerr := h.readBody(c)
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	req, ferrs, err := parseCallRequest(body, h.lim)
	if err != nil {
		h.fail(c, &apiError{code: http.StatusBadRequest, reason: reasonMalformed, message: err.Error()})
		return
	}
	if len(ferrs) == 0 && req.StartAt != nil {
		ferrs = checkStartAt(*req.StartAt, h.now())
	}
	if len(ferrs) > 0 {
		h.fail(c, invalidFields(ferrs))
		return
	}
	if _, ok := h.reg.Agent(ws.ID, req.CallAgentID); !ok {
		// The same answer whether the agent is missing or another
		// workspace's: an id must not reveal that it exists elsewhere.
		h.fail(c, &apiError{code: http.StatusNotFound, reason: reasonUnknownAgent,
			message: fmt.Sprintf("agent %s not found", req.CallAgentID),
			fields:  []FieldError{{Field: "call_agent_id", Message: "no agent with this id in workspace " + ws.ID}}})
		return
	}
	var fp [32]byte // only a key's requests are compared
	if idemKey != "" {
		fp = req.fingerprint()
	}
	claim, answered := h.claimIdempotencyKey(c, routeCall, ws.ID, idemKey, fp, "call")
	if answered {
		return
	}
	defer claim.done()
	var callID, suffix string
	if idemKey != "" {
		callID, suffix = deriveIDs(h.secret, ws.ID, idemKey)
	} else {
		callID, suffix = randomIDs()
	}
	// Compliance is checked after the Idempotency-Key lookup: a retry of a
	// request already accepted gets its stored answer even when the rules
	// would refuse a new call now (the call was accepted when they allowed
	// it; the dialer checks again at the dial). A refused key is released
	// (claim.done), so the same key can be sent again once the rules allow
	// it.
	if aerr := h.checkCompliance(c.Request.Context(), ws.ID, req.CallAgentID, req.To, req.toClass); aerr != nil && !deferrable(req, aerr) {
		h.fail(c, aerr)
		return
	}

	code, resp, aerr := h.schedule(c.Request.Context(), ws, req, callID, req.CallAgentID+"-"+suffix, idemKey, claim)
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	c.Data(code, "application/json; charset=utf-8", resp)
}

// schedule writes the call's record and returns the answer. It completes
// claim on success and hands it to settleLate when the produce timed out;
// on any other failure the caller's deferred claim.done releases it.
func (h *handler) schedule(ctx context.Context, ws *registry.Workspace, req *callRequest, callID, roomName, idemKey string, claim *idemClaim) (int, []byte, *apiError) {
	data := schemas.CallRequested{
		CallID:           callID,
		WorkspaceID:      ws.ID,
		To:               req.To,
		CallAgentID:      req.CallAgentID,
		RoomName:         roomName,
		CallbackURL:      req.CallbackURL,
		DynamicVariables: req.DynamicVariables,
		Metadata:         req.Metadata,
		IdempotencyKey:   idemKey,
		RequestedAt:      time.Now().UTC(),
	}
	var rec *kgo.Record
	var err error
	startAt, scheduled := scheduledStart(req, data.RequestedAt)
	var cs *schemas.CallScheduled
	if scheduled {
		rec, cs, err = scheduledRecord(&data, startAt, req.DeferToCallingHours)
	} else {
		rec, err = schemas.NewRecord(schemas.TopicRequested, callID,
			schemas.Meta{Type: schemas.TypeCallRequested, Source: EventSource, Subject: callID}, data)
	}
	if err != nil {
		// The checks above mirror the schema, so this is a gap between them;
		// it is still the client's input, and gets a 4xx naming the field.
		var ve *schemas.ValidationError
		if errors.As(err, &ve) {
			h.log.WarnContext(ctx, "request passed ingest checks but failed the schema", "call_id", callID, "workspace_id", ws.ID, "error", err)
			return 0, nil, invalidFields(schemaFields(ve))
		}
		h.log.ErrorContext(ctx, "build call.requested record", "call_id", callID, "workspace_id", ws.ID, "error", err)
		return 0, nil, &apiError{code: http.StatusInternalServerError, reason: reasonInternal, message: "internal error"}
	}

	to := req.To
	if ws.MaskPhoneNumbers {
		to = obs.MaskPhone(to)
	}
	status, message := "success", fmt.Sprintf("Outbound call job scheduled for agent %s to number %s", req.CallAgentID, to)
	if scheduled {
		status, message = "scheduled", scheduledMessage(req, to, startAt)
	}
	answer := func(r *kgo.Record) []byte {
		b, _ := json.Marshal(CallResponse{
			Status:   status,
			Message:  message,
			CallID:   callID,
			RoomName: roomName,
			JobID:    jobID(r.Partition, r.Offset),
		})
		return b
	}
	logAttrs := []any{"call_id", callID, "workspace_id", ws.ID, "agent_id", req.CallAgentID,
		"to", obs.MaskPhone(req.To), "idempotency_key", idemKey != ""}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("dialstream.call_id", callID),
		attribute.String("dialstream.workspace_id", ws.ID))

	// The client hanging up must not cancel a produce half-way: the record
	// is either written and the answer stored for a retry, or not written.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.Kafka.ProduceTimeout)
	defer cancel()
	if scheduled {
		// Before the produce: a record acknowledged late (settleLate) is
		// a scheduled call too; an entry for one never written is harmless.
		h.scheduled.add(callID, ws.ID)
	}
	// Read-your-writes: the call is visible at once (queued, or scheduled);
	// its events merge in by sequence as the recorder reads them.
	putOwn := func(ctx context.Context, r *kgo.Record) {
		if cs != nil {
			h.putOwnScheduled(ctx, cs, r, logAttrs)
			return
		}
		h.putOwnRequest(ctx, &data, r, logAttrs)
	}
	start := time.Now()
	res, timedOut, late := produce(pctx, h.p, rec)
	h.m.observeProduce(start, res.err, timedOut)
	if res.err != nil {
		if timedOut {
			go h.settleLate(obs.SpanContextOnly(ctx), late, claim.handOff(), putOwn, answer, logAttrs)
		}
		h.log.WarnContext(ctx, "call not scheduled: Kafka did not acknowledge", append(logAttrs, "error", res.err.Error())...)
		return 0, nil, &apiError{code: http.StatusServiceUnavailable, reason: reasonKafkaUnavailable, retryAfter: 2,
			message: fmt.Sprintf("the call was not scheduled: Kafka did not acknowledge it within %s; retry later, with the same Idempotency-Key so that a retry can never place the call twice", h.cfg.Kafka.ProduceTimeout)}
	}
	body := answer(res.rec)
	putOwn(ctx, res.rec)
	claim.complete(storedResponse{code: http.StatusAccepted, body: body})
	h.m.accepted.Inc()
	h.log.InfoContext(ctx, "call scheduled", append(logAttrs, "job_id", jobID(res.rec.Partition, res.rec.Offset))...)
	return http.StatusAccepted, body, nil
}

// settleLate waits for the outcome of a record the client was told 503 about.
// If Kafka wrote it after all, the call will be placed: the Idempotency-Key
// (if any) then replays the accepted answer, so a retry learns the truth and
// writes nothing; without a key the client cannot be told, which is logged.
func (h *handler) settleLate(ctx context.Context, late <-chan produceOutcome, entry *idemEntry, putOwn func(context.Context, *kgo.Record), answer func(*kgo.Record) []byte, logAttrs []any) {
	res := <-late
	if res.err != nil {
		if entry != nil {
			h.idem.release(entry)
		}
		return
	}
	h.m.accepted.Inc()
	putOwn(ctx, res.rec)
	if entry != nil {
		h.idem.complete(entry, storedResponse{code: http.StatusAccepted, body: answer(res.rec)})
		h.log.WarnContext(ctx, "call record acknowledged after the client was answered 503; a retry with its Idempotency-Key gets the accepted answer", logAttrs...)
		return
	}
	h.log.WarnContext(ctx, "call record acknowledged after the client was answered 503; the call will be placed", logAttrs...)
}

// putOwnRequest notes this replica's acknowledged request (ownwrites.go):
// the reads of this replica wait until the recorder has written it, or
// ingest has (local: the recorder's read of the same record replaces it).
// Nothing here can fail the call: the record is durable in Kafka and the
// recorder writes it, so the client gets its 202 (a 503 would make a
// client without an Idempotency-Key place the call twice).
func (h *handler) putOwnRequest(ctx context.Context, data *schemas.CallRequested, rec *kgo.Record, logAttrs []any) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordsTimeout)
	defer cancel()
	if err := h.own.put(wctx, data, rec.Value, rec.Partition, rec.Offset); err != nil {
		h.log.WarnContext(ctx, "call written to Kafka but not to the call records yet; the recorder adds it", append(logAttrs, "error", err.Error())...)
	}
}

// admit applies the workspace's requests_per_second (per replica).
func (h *handler) admit(ws *registry.Workspace) *apiError {
	l := h.limiters[ws.ID]
	if l == nil {
		return nil
	}
	now := time.Now()
	r := l.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if r.OK() && d == 0 {
		return nil
	}
	r.CancelAt(now)
	secs := max(1, int(math.Ceil(d.Seconds())))
	return &apiError{code: http.StatusTooManyRequests, reason: reasonRateLimited, retryAfter: secs,
		message: fmt.Sprintf("rate limit exceeded: workspace %s may send %g requests per second; retry after %ds", ws.ID, ws.Limits.RequestsPerSecond, secs)}
}

// readBody enforces the content type and the body cap.
func (h *handler) readBody(c *gin.Context) ([]byte, *apiError) {
	return h.readBodyUpTo(c, h.cfg.MaxBodyBytes)
}

// readBodyUpTo is readBody with a route's own cap.
func (h *handler) readBodyUpTo(c *gin.Context, limit int64) ([]byte, *apiError) {
	ct := c.GetHeader("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != "application/json" ||
		(params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8")) {
		got := ct
		if got == "" {
			got = "none"
		}
		return nil, &apiError{code: http.StatusUnsupportedMediaType, reason: reasonUnsupportedMedia,
			message: "Content-Type must be application/json, got " + got,
			header:  http.Header{"Accept-Post": {"application/json"}}}
	}
	tooLarge := &apiError{code: http.StatusRequestEntityTooLarge, reason: reasonBodyTooLarge,
		message: fmt.Sprintf("request body is larger than %d bytes", limit)}
	if c.Request.ContentLength > limit {
		return nil, tooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, &apiError{code: http.StatusBadRequest, reason: reasonMalformed, message: "could not read the request body: " + err.Error()}
	}
	return b, nil
}

func invalidFields(fs []FieldError) *apiError {
	msg := "invalid field " + fs[0].Field + ": " + fs[0].Message
	if len(fs) > 1 {
		msg = fmt.Sprintf("the request has %d invalid fields; see errors", len(fs))
	}
	return &apiError{code: http.StatusUnprocessableEntity, reason: reasonInvalidField, message: msg, fields: fs}
}

// schemaFields turns the schema's JSON pointers ("/dynamic_variables/x")
// into the API's field names ("dynamic_variables.x").
func schemaFields(ve *schemas.ValidationError) []FieldError {
	out := make([]FieldError, 0, len(ve.Fields))
	for _, f := range ve.Fields {
		out = append(out, FieldError{Field: strings.ReplaceAll(strings.TrimPrefix(f.Field, "/"), "/", "."), Message: f.Message})
	}
	if len(out) == 0 {
		out = append(out, FieldError{Field: "", Message: ve.Error()})
	}
	return out
}
