package ingest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/dialstream/dialstream/schemas"
)

// The campaign write routes (issue 15; docs/architecture.md, "Campaigns and
// scheduled calls"). Ingest validates and writes commands to
// dialstream.campaigns.commands, keyed by the campaign id, acks=all before it
// answers; the scheduler owns the campaign from there. Ingest keeps no
// campaign of its own beyond ownCampaigns (read-your-writes and the 404 of a
// campaign the records do not have yet).

// campaignStore is what the campaign write routes ask the call records
// database (the recorder fills its campaign tables from the scheduler's
// state topic): *callrecords.Store, or a fake in tests.
type campaignStore interface {
	Campaign(ctx context.Context, ws, campaignID string) (*schemas.CampaignState, bool, error)
	CampaignNumbers(ctx context.Context, ws, campaignID string, numbers []string) (map[string]string, error)
}

// Caps of the campaign routes.
const (
	// maxCampaignBodyBytes caps POST /v1/api/campaigns, inline contacts
	// included (about 10,000 of them): the body is validated whole before
	// anything is written, so it is held whole. Larger lists go to the
	// streamed contacts route.
	maxCampaignBodyBytes = 4 << 20
	maxCampaignName      = 200
	maxWindows           = 28
	maxTimezoneLength    = 64
)

var campaignFields = []string{"name", "call_agent_id", "callback_url", "schedule", "pacing", "retry", "start", "contacts"}

func campaignNotFound(id string) *apiError {
	id = schemas.Clip(strings.ToValidUTF8(id, ""), 64)
	return &apiError{code: http.StatusNotFound, reason: reasonUnknownCampaign, message: fmt.Sprintf("campaign %s not found", id)}
}

// newCampaignID is 24 lowercase hex of crypto randomness: unguessable, so
// an id says nothing about another workspace's campaigns.
func newCampaignID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// CampaignCreated is the answer of POST /v1/api/campaigns.
type CampaignCreated struct {
	CampaignID string                 `json:"campaign_id"`
	Status     schemas.CampaignStatus `json:"status"` // draft, or running with start
	Contacts   ContactsReport         `json:"contacts"`
}

// ContactsReport says what became of the contacts of one upload.
type ContactsReport struct {
	Accepted int `json:"accepted"`
	// Skipped counts every row not imported; Errors lists the first
	// maxReportedRows of them with why.
	Skipped         int            `json:"skipped"`
	Errors          []ContactError `json:"errors"`
	ErrorsTruncated bool           `json:"errors_truncated,omitempty"`
}

// ContactError is one row of an upload that was not imported.
type ContactError struct {
	Row       int    `json:"row"`
	ContactID string `json:"contact_id,omitempty"`
	To        string `json:"to,omitempty"`
	Reason    string `json:"reason"`
}

// CampaignControlResponse is the answer of a control route.
type CampaignControlResponse struct {
	Status     string                 `json:"status"` // always "success"
	CampaignID string                 `json:"campaign_id"`
	Action     schemas.CampaignAction `json:"action"`
}

// ownCampaigns remembers the campaigns this replica created, until the
// call records have them: a client that got its 201 can upload contacts,
// control and read its campaign on this replica at once, before the
// scheduler and the recorder caught up (as ownwrites.go does for calls).
// Weighed and not taken: waiting for the recorder before answering. It
// would tie the 201 to a service that is not on the write path at all.
// Bounded: past maxOwnCampaigns the oldest are forgotten, by which time the
// records have them.
type ownCampaigns struct {
	mu    sync.Mutex
	byID  map[string]*ownCampaign
	order []string
}

const maxOwnCampaigns = 10_000

type ownCampaign struct {
	def      schemas.Campaign
	status   schemas.CampaignStatus
	accepted int // contacts accepted through this replica
	paused   *time.Time
	started  *time.Time
	finished *time.Time
}

func newOwnCampaigns() *ownCampaigns { return &ownCampaigns{byID: map[string]*ownCampaign{}} }

func (o *ownCampaigns) add(def schemas.Campaign, status schemas.CampaignStatus, accepted int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	oc := &ownCampaign{def: def, status: status, accepted: accepted}
	if status == schemas.CampaignRunning {
		at := def.CreatedAt
		oc.started = &at
	}
	if _, known := o.byID[def.CampaignID]; !known {
		// Once in order per id: a second copy would let the first one's
		// eviction delete the newer entry.
		o.order = append(o.order, def.CampaignID)
	}
	o.byID[def.CampaignID] = oc
	if len(o.order) > maxOwnCampaigns {
		delete(o.byID, o.order[0])
		o.order = o.order[1:]
	}
}

// get returns a copy of workspace ws's campaign id, if this replica made it.
func (o *ownCampaigns) get(ws, id string) (ownCampaign, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	oc, ok := o.byID[id]
	if !ok || oc.def.WorkspaceID != ws {
		return ownCampaign{}, false
	}
	return *oc, true
}

func (o *ownCampaigns) addAccepted(id string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if oc, ok := o.byID[id]; ok {
		oc.accepted += n
	}
}

// control applies an acknowledged control to the local view the way the
// scheduler will (a control that changes nothing there changes nothing
// here).
func (o *ownCampaigns) control(id string, a schemas.CampaignAction, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	oc, ok := o.byID[id]
	if !ok {
		return
	}
	switch {
	case a == schemas.ActionStart && oc.status == schemas.CampaignDraft:
		oc.status, oc.started = schemas.CampaignRunning, &at
	case a == schemas.ActionPause && oc.status == schemas.CampaignRunning:
		oc.status, oc.paused = schemas.CampaignPaused, &at
	case a == schemas.ActionResume && oc.status == schemas.CampaignPaused:
		oc.status, oc.paused = schemas.CampaignRunning, nil
	case a == schemas.ActionCancel && oc.status != schemas.CampaignCompleted && oc.status != schemas.CampaignCanceled:
		oc.status, oc.finished = schemas.CampaignCanceled, &at
	}
}

// campaignRef is what the write routes need to know of an existing campaign.
type campaignRef struct {
	id     string
	status schemas.CampaignStatus
	agent  string // call_agent_id: whose compliance policy its contacts meet
}

// findCampaign is workspace ws's campaign id from the records, else from
// this replica's own writes; a 404 when neither has it (another
// workspace's campaign looks exactly like one that exists nowhere).
func (h *handler) findCampaign(ctx context.Context, ws, id string) (campaignRef, *apiError) {
	if !callIDPattern.MatchString(id) {
		return campaignRef{}, campaignNotFound(id)
	}
	if h.campaigns != nil {
		ctx, cancel := context.WithTimeout(ctx, recordsTimeout)
		defer cancel()
		st, ok, err := h.campaigns.Campaign(ctx, ws, id)
		if err != nil {
			return campaignRef{}, h.recordsUnavailable(ctx, err)
		}
		if ok {
			ref := campaignRef{id: id, status: st.Status, agent: st.Campaign.CallAgentID}
			// A control acknowledged here may be newer than the records.
			if oc, mine := h.ownCamps.get(ws, id); mine && st.Status != schemas.CampaignCompleted {
				ref.status = oc.status
			}
			return ref, nil
		}
	}
	if oc, ok := h.ownCamps.get(ws, id); ok {
		return campaignRef{id: id, status: oc.status, agent: oc.def.CallAgentID}, nil
	}
	return campaignRef{}, campaignNotFound(id)
}

func finalCampaign(s schemas.CampaignStatus) bool {
	return s == schemas.CampaignCompleted || s == schemas.CampaignCanceled
}

// createCampaign serves POST /v1/api/campaigns: the campaign.created
// command, then its inline contacts in records of at most
// MaxContactsPerRecord, all acknowledged before the 201. Every problem with
// the campaign's own fields is a 422 and writes nothing; a bad contact is
// reported in the answer and skipped, as in an upload. The checks run in
// createCall's order, the Idempotency-Key store (409/422/replay) last
// before Kafka.
func (h *handler) createCampaign(c *gin.Context) {
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
	body, aerr := h.readBodyUpTo(c, maxCampaignBodyBytes)
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	now := h.now().UTC()
	def, contacts, ferrs, err := parseCampaign(body, now)
	if err != nil {
		h.fail(c, &apiError{code: http.StatusBadRequest, reason: reasonMalformed, message: err.Error()})
		return
	}
	if len(ferrs) > 0 {
		h.fail(c, invalidFields(ferrs))
		return
	}
	if _, ok := h.reg.Agent(ws.ID, def.CallAgentID); !ok {
		h.fail(c, &apiError{code: http.StatusNotFound, reason: reasonUnknownAgent,
			message: fmt.Sprintf("agent %s not found", def.CallAgentID),
			fields:  []FieldError{{Field: "call_agent_id", Message: "no agent with this id in workspace " + ws.ID}}})
		return
	}
	claim, answered := h.claimIdempotencyKey(c, routeCampaigns, ws.ID, idemKey, campaignFingerprint(def, contacts), "campaign")
	if answered {
		return
	}
	// Every failure below releases the key, even once something was
	// written: the retry writes under the same derived campaign id, and the
	// scheduler drops what it has already (idempotency.go).
	defer claim.done()
	def.CampaignID, def.WorkspaceID, def.CreatedAt = newCampaignID(), ws.ID, now
	if idemKey != "" {
		def.CampaignID = deriveCampaignID(h.secret, ws.ID, idemKey, campaignBodyHash(body))
	}
	rec, err := schemas.NewRecord(schemas.TopicCampaignCommands, def.CampaignID,
		schemas.Meta{Type: schemas.TypeCampaignCreated, Source: EventSource, Subject: def.CampaignID}, def)
	if err != nil {
		h.schemaGap(c, err, "campaign_id", def.CampaignID, ws.ID)
		return
	}
	ctx := c.Request.Context()
	if err := h.produceAll(ctx, rec); err != nil {
		h.log.WarnContext(ctx, "campaign not created: Kafka did not acknowledge", "campaign_id", def.CampaignID, "workspace_id", ws.ID, "error", err.Error())
		h.fail(c, &apiError{code: http.StatusServiceUnavailable, reason: reasonKafkaUnavailable, retryAfter: 2,
			message: fmt.Sprintf("the campaign was not created: Kafka did not acknowledge it within %s; retry later", h.cfg.Kafka.ProduceTimeout)})
		return
	}
	status := schemas.CampaignDraft
	if def.Start {
		status = schemas.CampaignRunning
	}
	// Known to this replica from here: a later upload or control on it
	// finds it even if the inline contacts fail below.
	h.ownCamps.add(*def, status, 0)
	up := h.newUpload(ctx, ws, def.CampaignID, def.CallAgentID)
	for i, raw := range contacts {
		up.addJSON(i+1, raw)
	}
	if aerr := up.finish(); aerr != nil {
		aerr.message = fmt.Sprintf("campaign %s was created, but only %d of its contacts were written before Kafka stopped acknowledging; upload the rest to /v1/api/campaigns/%s/contacts (contacts already written are reported as already in the campaign)", def.CampaignID, up.report.Accepted, def.CampaignID)
		h.fail(c, aerr)
		return
	}
	h.log.InfoContext(ctx, "campaign created", "campaign_id", def.CampaignID, "workspace_id", ws.ID, "status", status,
		"contacts", up.report.Accepted, "skipped", up.report.Skipped)
	resp, _ := json.Marshal(CampaignCreated{CampaignID: def.CampaignID, Status: status, Contacts: up.report})
	claim.complete(storedResponse{code: http.StatusCreated, body: resp})
	c.Data(http.StatusCreated, "application/json; charset=utf-8", resp)
}

// campaignFingerprint hashes a create as it would be written, before its
// id, workspace and time are set: the campaign's fields normalized as
// parsed (member order, whitespace, null for absent, start_at's offset do
// not count), then each inline contact as canonical JSON, in order. A
// contact is hashed as sent, not normalized: "+1 202 555 0123" and
// "+12025550123" differ here, which a retry that resends its bytes never
// meets.
func campaignFingerprint(def *schemas.Campaign, contacts []json.RawMessage) [32]byte {
	d := *def
	d.CampaignID, d.WorkspaceID, d.CreatedAt = "", "", time.Time{}
	h := sha256.New()
	w := func(b []byte) { fmt.Fprintf(h, "%d:%s", len(b), b) }
	b, _ := json.Marshal(d) // a struct of plain fields: it always marshals
	w(b)
	w([]byte(fmt.Sprint(len(contacts))))
	for _, raw := range contacts {
		w(canonicalJSON(raw))
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// campaignBodyHash is the SHA-256 of a create's body as canonical JSON
// (member order and white space do not count), for its derived campaign id.
// Weighed and not taken: the fingerprint of the 422 comparison. It hashes
// the body as parsed into schemas.Campaign, so a change to that struct's
// JSON would give a retry that straddles an upgrade a new id, that is a
// second campaign dialing the same contacts; the raw body does not change
// with the code. The cost: two bodies the fingerprint calls equal but that
// differ as JSON (a start_at with another offset) are replayed while the
// store has the key and are two campaigns after; a retry resends its bytes.
func campaignBodyHash(body []byte) [32]byte {
	return sha256.Sum256(canonicalJSON(body))
}

// schemaGap answers a record that passed ingest's checks but not its schema:
// a gap between the two, still the client's input (422 naming the field).
func (h *handler) schemaGap(c *gin.Context, err error, idName, id, ws string) {
	var ve *schemas.ValidationError
	if errors.As(err, &ve) {
		h.log.WarnContext(c.Request.Context(), "request passed ingest checks but failed the schema", idName, id, "workspace_id", ws, "error", err)
		h.fail(c, invalidFields(schemaFields(ve)))
		return
	}
	h.log.ErrorContext(c.Request.Context(), "build record", idName, id, "workspace_id", ws, "error", err)
	h.fail(c, &apiError{code: http.StatusInternalServerError, reason: reasonInternal, message: "internal error"})
}

// campaignControl serves POST /v1/api/campaigns/:campaignId/<action>: one
// campaign.control command, applied by the scheduler in order with the
// campaign's other commands. 202 means it is durable.
func (h *handler) campaignControl(action schemas.CampaignAction) gin.HandlerFunc {
	return func(c *gin.Context) {
		ws := workspaceOf(c)
		if aerr := h.admit(ws); aerr != nil {
			h.fail(c, aerr)
			return
		}
		if _, aerr := h.optionalBody(c, nil); aerr != nil {
			h.fail(c, aerr)
			return
		}
		ctx := c.Request.Context()
		ref, aerr := h.findCampaign(ctx, ws.ID, c.Param("campaignId"))
		if aerr != nil {
			h.fail(c, aerr)
			return
		}
		if finalCampaign(ref.status) {
			h.fail(c, &apiError{code: http.StatusConflict, reason: reasonCampaignEnded,
				message: fmt.Sprintf("campaign %s is %s; it cannot be %s", ref.id, ref.status, pastTense[action])})
			return
		}
		cc := schemas.CampaignControl{CampaignID: ref.id, WorkspaceID: ws.ID, Action: action, RequestedAt: h.now().UTC()}
		rec, err := schemas.NewRecord(schemas.TopicCampaignCommands, ref.id,
			schemas.Meta{Type: schemas.TypeCampaignControl, Source: EventSource, Subject: ref.id}, cc)
		if err != nil {
			h.schemaGap(c, err, "campaign_id", ref.id, ws.ID)
			return
		}
		if err := h.produceAll(ctx, rec); err != nil {
			h.log.WarnContext(ctx, "campaign control not written: Kafka did not acknowledge", "campaign_id", ref.id, "workspace_id", ws.ID, "action", action, "error", err.Error())
			h.fail(c, &apiError{code: http.StatusServiceUnavailable, reason: reasonKafkaUnavailable, retryAfter: 2,
				message: fmt.Sprintf("the %s was not written: Kafka did not acknowledge it within %s; retry later (a repeated control is harmless)", action, h.cfg.Kafka.ProduceTimeout)})
			return
		}
		h.ownCamps.control(ref.id, action, cc.RequestedAt)
		h.log.InfoContext(ctx, "campaign control written", "campaign_id", ref.id, "workspace_id", ws.ID, "action", action)
		writeJSON(c, http.StatusAccepted, CampaignControlResponse{Status: "success", CampaignID: ref.id, Action: action})
	}
}

var pastTense = map[schemas.CampaignAction]string{
	schemas.ActionStart: "started", schemas.ActionPause: "paused", schemas.ActionResume: "resumed", schemas.ActionCancel: "canceled",
}

// parseCampaign decodes and validates a POST /v1/api/campaigns body. It
// returns errMalformed (400) when the body is not a JSON object, or the
// field errors (422); the contacts come back raw, each checked as the
// upload checks it.
func parseCampaign(body []byte, now time.Time) (*schemas.Campaign, []json.RawMessage, []FieldError, error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, nil, nil, errMalformed{"request body is empty; send a JSON object"}
	}
	var probe json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, nil, nil, errMalformed{syntaxMessage(err)}
	}
	members, dups, ok := readObject(probe)
	if !ok {
		return nil, nil, nil, errMalformed{"request body must be a JSON object, got " + jsonKind(probe)}
	}
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	for _, k := range dups {
		add(k, "appears more than once; send each field once")
	}
	get := map[string]json.RawMessage{}
	for _, m := range members {
		if !slices.Contains(campaignFields, m.key) {
			add(m.key, "unknown field; the fields are %s", strings.Join(campaignFields, ", "))
			continue
		}
		if !isNull(m.val) {
			get[m.key] = m.val
		}
	}
	d := &schemas.Campaign{}
	if raw, ok := get["name"]; !ok {
		add("name", "required: a name for the campaign, up to %d characters", maxCampaignName)
	} else if s, ok := jsonString(raw); !ok {
		add("name", "must be a string, got %s", jsonKind(raw))
	} else if n := utf8.RuneCountInString(s); strings.TrimSpace(s) == "" || n > maxCampaignName {
		add("name", "must be 1 to %d characters, not blank", maxCampaignName)
	} else {
		d.Name = s
	}
	if raw, ok := get["call_agent_id"]; !ok {
		add("call_agent_id", "required: the id of the agent that places the calls")
	} else if s, ok := jsonString(raw); !ok {
		add("call_agent_id", "must be a string, got %s", jsonKind(raw))
	} else if !agentIDRE.MatchString(s) {
		add("call_agent_id", "must be 1 to 64 letters, digits, _ or -")
	} else {
		d.CallAgentID = s
	}
	if raw, ok := get["callback_url"]; ok {
		if s, ok := jsonString(raw); !ok {
			add("callback_url", "must be a string holding an absolute http or https URL, got %s", jsonKind(raw))
		} else if u, msg := checkCallbackURL(s); msg != "" {
			add("callback_url", "%s", msg)
		} else {
			d.CallbackURL = u
		}
	}
	if raw, ok := get["schedule"]; !ok {
		add("schedule", "required: {\"windows\":[{\"days\":[\"mon\",\"tue\",\"wed\",\"thu\",\"fri\"],\"start\":\"10:00\",\"end\":\"19:00\"}]}, with optional start_at, end_at, default_timezone")
	} else {
		errs = append(errs, parseSchedule(raw, now, &d.Schedule)...)
	}
	if raw, ok := get["pacing"]; !ok {
		add("pacing", "required: {\"calls_per_second\": 1, \"max_concurrent\": 10}")
	} else {
		errs = append(errs, parsePacing(raw, &d.Pacing)...)
	}
	if raw, ok := get["retry"]; ok {
		errs = append(errs, parseRetry(raw, &d.Retry)...)
	}
	if raw, ok := get["start"]; ok {
		if string(raw) != "true" && string(raw) != "false" {
			add("start", "must be a boolean, got %s", jsonKind(raw))
		}
		d.Start = string(raw) == "true"
	}
	var contacts []json.RawMessage
	if raw, ok := get["contacts"]; ok {
		if err := json.Unmarshal(raw, &contacts); err != nil || raw[0] != '[' {
			add("contacts", "must be an array of contacts, got %s", jsonKind(raw))
		}
	}
	if len(errs) > maxReports {
		errs = append(errs[:maxReports], FieldError{Field: "", Message: fmt.Sprintf("%d more errors not shown", len(errs)-maxReports)})
	}
	if len(errs) > 0 {
		return nil, nil, errs, nil
	}
	return d, contacts, nil, nil
}

// strictDecode decodes raw into v, refusing unknown members: a misspelled
// "calls_per_sec" must not leave the pacing at zero unnoticed.
func strictDecode(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return fmt.Errorf("%s must be %s, got a JSON %s", ute.Field, ute.Type.Kind(), ute.Value)
		}
		return err
	}
	return nil
}

func parseSchedule(raw json.RawMessage, now time.Time, out *schemas.CampaignSchedule) []FieldError {
	var errs []FieldError
	add := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if raw[0] != '{' {
		add("schedule", "must be an object, got %s", jsonKind(raw))
		return errs
	}
	var s schemas.CampaignSchedule
	if err := strictDecode(raw, &s); err != nil {
		add("schedule", "%s (fields: windows, start_at, end_at, default_timezone; times in RFC 3339)", strings.TrimPrefix(err.Error(), "json: "))
		return errs
	}
	if s.EndAt != nil {
		if !s.EndAt.After(now) {
			add("schedule.end_at", "must be in the future")
		}
		if s.StartAt != nil && !s.EndAt.After(*s.StartAt) {
			add("schedule.end_at", "must be later than start_at")
		}
	}
	if s.DefaultTimezone != "" {
		if msg := checkTimezone(s.DefaultTimezone); msg != "" {
			add("schedule.default_timezone", "%s", msg)
		}
	}
	if len(s.Windows) == 0 || len(s.Windows) > maxWindows {
		add("schedule.windows", "must hold 1 to %d windows, e.g. [{\"days\":[\"mon\",\"fri\"],\"start\":\"10:00\",\"end\":\"19:00\"}]", maxWindows)
	}
	for i, w := range s.Windows {
		f := fmt.Sprintf("schedule.windows[%d]", i)
		if len(w.Days) == 0 {
			add(f+".days", "must name at least one day: mon, tue, wed, thu, fri, sat, sun")
		}
		seen := map[string]bool{}
		for _, d := range w.Days {
			if !slices.Contains(schemas.Weekdays[:], d) {
				add(f+".days", "%q is not a day; the days are mon, tue, wed, thu, fri, sat, sun", schemas.Clip(d, 16))
			} else if seen[d] {
				add(f+".days", "%q appears more than once", d)
			}
			seen[d] = true
		}
		start, ok1 := clockMinutes(w.Start)
		end, ok2 := clockMinutes(w.End)
		if !ok1 || start == 24*60 {
			add(f+".start", "must be a time HH:MM from 00:00 to 23:59, got %q", schemas.Clip(w.Start, 16))
		}
		if !ok2 {
			add(f+".end", "must be a time HH:MM from 00:01 to 24:00, got %q", schemas.Clip(w.End, 16))
		}
		if ok1 && ok2 && end <= start {
			add(f+".end", "must be later than start (windows do not cross midnight; split one that does into two)")
		}
	}
	if s.StartAt != nil {
		t := s.StartAt.UTC()
		s.StartAt = &t
	}
	if s.EndAt != nil {
		t := s.EndAt.UTC()
		s.EndAt = &t
	}
	*out = s
	return errs
}

// clockMinutes reads "HH:MM" (00:00 to 24:00) as minutes of the day.
func clockMinutes(s string) (int, bool) {
	if len(s) != 5 || s[2] != ':' {
		return 0, false
	}
	h, m := atoiSafe(s[:2]), atoiSafe(s[3:])
	if h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, false
	}
	return h*60 + m, true
}

// checkTimezone says why s is not an IANA zone the scheduler can use.
func checkTimezone(s string) string {
	if s == "" || len(s) > maxTimezoneLength || !utf8.ValidString(s) {
		return fmt.Sprintf("must be an IANA time zone name of at most %d characters, e.g. America/New_York", maxTimezoneLength)
	}
	if s == "Local" {
		return "must be an IANA time zone name, e.g. America/New_York; Local names the server's zone"
	}
	if _, err := time.LoadLocation(s); err != nil {
		return fmt.Sprintf("%q is not an IANA time zone name, e.g. America/New_York", schemas.Clip(s, 64))
	}
	return ""
}

func parsePacing(raw json.RawMessage, out *schemas.Pacing) []FieldError {
	var errs []FieldError
	if raw[0] != '{' {
		return []FieldError{{Field: "pacing", Message: "must be an object {\"calls_per_second\": 1, \"max_concurrent\": 10}, got " + jsonKind(raw)}}
	}
	var p struct {
		CallsPerSecond *float64 `json:"calls_per_second"`
		MaxConcurrent  *int     `json:"max_concurrent"`
	}
	if err := strictDecode(raw, &p); err != nil {
		return []FieldError{{Field: "pacing", Message: strings.TrimPrefix(err.Error(), "json: ") + " (fields: calls_per_second, max_concurrent)"}}
	}
	if p.CallsPerSecond == nil || *p.CallsPerSecond <= 0 || *p.CallsPerSecond > 1000 {
		errs = append(errs, FieldError{Field: "pacing.calls_per_second", Message: "required: a number greater than 0 and at most 1000"})
	} else {
		out.CallsPerSecond = *p.CallsPerSecond
	}
	if p.MaxConcurrent == nil || *p.MaxConcurrent < 1 || *p.MaxConcurrent > 100000 {
		errs = append(errs, FieldError{Field: "pacing.max_concurrent", Message: "required: an integer from 1 to 100000"})
	} else {
		out.MaxConcurrent = *p.MaxConcurrent
	}
	return errs
}

func parseRetry(raw json.RawMessage, out *schemas.RetryPolicy) []FieldError {
	if raw[0] != '{' {
		return []FieldError{{Field: "retry", Message: "must be an object keyed by outcome (busy, no_answer, voicemail, failed), got " + jsonKind(raw)}}
	}
	var p schemas.RetryPolicy
	if err := strictDecode(raw, &p); err != nil {
		return []FieldError{{Field: "retry", Message: strings.TrimPrefix(err.Error(), "json: ") + " (keys: busy, no_answer, voicemail, failed; each {\"delay_seconds\": 600, \"max_attempts\": 3})"}}
	}
	var errs []FieldError
	for _, r := range []struct {
		name string
		rule *schemas.RetryRule
	}{{"busy", p.Busy}, {"no_answer", p.NoAnswer}, {"voicemail", p.Voicemail}, {"failed", p.Failed}} {
		if r.rule == nil {
			continue
		}
		if r.rule.DelaySeconds < 0 || r.rule.DelaySeconds > 2592000 {
			errs = append(errs, FieldError{Field: "retry." + r.name + ".delay_seconds", Message: "must be an integer from 0 to 2592000 (30 days)"})
		}
		if r.rule.MaxAttempts < 1 || r.rule.MaxAttempts > 20 {
			errs = append(errs, FieldError{Field: "retry." + r.name + ".max_attempts", Message: "required: an integer from 1 to 20, the attempts in all (the first included)"})
		}
	}
	*out = p
	return errs
}
