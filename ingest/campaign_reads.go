package ingest

import (
	"context"
	"encoding/base64"
	"encoding/csv"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/obs"
	"github.com/dialstream/dialstream/schemas"
)

// The campaign read routes answer from the call records' campaign tables
// (the recorder writes the scheduler's state there), and for a campaign this
// replica created that the tables do not have yet, from ownCampaigns: a
// client sees its campaign at once, draft or running, with the contacts
// accepted so far counted as queued.

var _ campaignStore = (*callrecords.Store)(nil)

// CampaignView is a campaign as GET /v1/api/campaigns/:campaignId shows it.
type CampaignView struct {
	schemas.Campaign
	Status            schemas.CampaignStatus   `json:"status"`
	Counters          schemas.CampaignCounters `json:"counters"`
	StartedAt         *time.Time               `json:"started_at,omitempty"`
	PausedAt          *time.Time               `json:"paused_at,omitempty"`
	FinishedAt        *time.Time               `json:"finished_at,omitempty"`
	EstimatedFinishAt *time.Time               `json:"estimated_finish_at,omitempty"`
}

// CampaignEnvelope is the answer of GET /v1/api/campaigns/:campaignId.
type CampaignEnvelope struct {
	Status   string       `json:"status"` // always "success"
	Campaign CampaignView `json:"campaign"`
}

// campaignView is a stored campaign state as the API shows it.
func campaignView(st *schemas.CampaignState) CampaignView {
	return CampaignView{Campaign: st.Campaign, Status: st.Status, Counters: st.Counters.Clone(),
		StartedAt: st.StartedAt, PausedAt: st.PausedAt, FinishedAt: st.FinishedAt}
}

// getCampaign serves GET /v1/api/campaigns/:campaignId.
func (h *handler) getCampaign(c *gin.Context) {
	ws := workspaceOf(c)
	id := c.Param("campaignId")
	if !callIDPattern.MatchString(id) {
		h.fail(c, campaignNotFound(id))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), recordsTimeout)
	defer cancel()
	var v CampaignView
	st, ok, err := h.campaigns.Campaign(ctx, ws.ID, id)
	switch {
	case err != nil:
		h.fail(c, h.recordsUnavailable(ctx, err))
		return
	case ok:
		v = campaignView(st)
		// A control acknowledged here may be newer than the records.
		if oc, mine := h.ownCamps.get(ws.ID, id); mine && st.Status != schemas.CampaignCompleted {
			v.Status = oc.status
		}
	default:
		oc, mine := h.ownCamps.get(ws.ID, id)
		if !mine {
			h.fail(c, campaignNotFound(id))
			return
		}
		v = CampaignView{Campaign: oc.def, Status: oc.status, StartedAt: oc.started, PausedAt: oc.paused, FinishedAt: oc.finished,
			Counters: schemas.CampaignCounters{Contacts: oc.accepted,
				ByState: map[schemas.ContactStatus]int{schemas.ContactQueued: oc.accepted}, ByOutcome: map[schemas.Outcome]int{}}}
	}
	v.EstimatedFinishAt = estimateFinish(v.Status, v.Counters, v.Pacing, h.now())
	writeJSON(c, http.StatusOK, CampaignEnvelope{Status: "success", Campaign: v})
}

// estimateFinish is, for a running campaign, now plus its open contacts
// over its pacing: the soonest it can finish if every open contact needs one
// more call and windows allow calling all along. It ignores retries and
// windows on purpose: both depend on outcomes and zones not known yet, and
// a floor the client can read is more honest than a guess.
func estimateFinish(status schemas.CampaignStatus, ct schemas.CampaignCounters, p schemas.Pacing, now time.Time) *time.Time {
	if status != schemas.CampaignRunning || p.CallsPerSecond <= 0 {
		return nil
	}
	open := ct.Contacts
	for s, n := range ct.ByState {
		if s.Final() {
			open -= n
		}
	}
	secs := math.Ceil(float64(max(open, 0)) / p.CallsPerSecond)
	at := now.UTC().Add(time.Duration(secs) * time.Second).Truncate(time.Second)
	return &at
}

// CampaignList is the answer of GET /v1/api/campaigns.
type CampaignList struct {
	Status     string         `json:"status"` // always "success"
	Campaigns  []CampaignView `json:"campaigns"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

// ContactView is one contact of a campaign with its attempts.
type ContactView struct {
	ContactID string                   `json:"contact_id"`
	To        string                   `json:"to"`
	Row       int                      `json:"row,omitempty"`
	Timezone  string                   `json:"timezone,omitempty"`
	Status    schemas.ContactStatus    `json:"status"`
	Outcome   schemas.Outcome          `json:"outcome,omitempty"`
	NextDueAt *time.Time               `json:"next_due_at,omitempty"`
	Attempts  []schemas.ContactAttempt `json:"attempts"`
	UpdatedAt time.Time                `json:"updated_at"`
}

// ContactList is the answer of GET /v1/api/campaigns/:campaignId/contacts.
type ContactList struct {
	Status     string        `json:"status"` // always "success"
	CampaignID string        `json:"campaign_id"`
	Contacts   []ContactView `json:"contacts"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

func contactView(cs *schemas.ContactState, mask bool) ContactView {
	to := cs.Contact.To
	if mask {
		to = obs.MaskPhone(to)
	}
	v := ContactView{ContactID: cs.Contact.ContactID, To: to, Row: cs.Contact.Row, Timezone: cs.Contact.Timezone, Status: cs.Status,
		Outcome: cs.Outcome, NextDueAt: cs.NextDueAt, Attempts: cs.Attempts, UpdatedAt: cs.UpdatedAt}
	if v.Attempts == nil {
		v.Attempts = []schemas.ContactAttempt{}
	}
	return v
}

// pageQuery reads status, limit and cursor; status must be one of
// statuses.
func pageQuery(raw string, statuses []string) (status string, limit int, cursor string, errs []FieldError) {
	limit = defaultListLimit
	params, errs := readQuery(raw, []string{"status", "limit", "cursor"})
	for _, p := range params {
		switch p.key {
		case "status":
			if !slices.Contains(statuses, p.value) {
				errs = append(errs, FieldError{Field: "status", Message: "must be one of " + strings.Join(statuses, ", ") + "; got " + strconv.Quote(schemas.Clip(p.value, 64))})
			}
			status = p.value
		case "limit":
			n, err := strconv.Atoi(p.value)
			if err != nil || n < 1 || n > maxListLimit {
				errs = append(errs, FieldError{Field: "limit", Message: fmt.Sprintf("must be an integer from 1 to %d", maxListLimit)})
			}
			limit = n
		case "cursor":
			b, err := base64.RawURLEncoding.DecodeString(p.value)
			if err != nil || len(b) == 0 || !utf8.Valid(b) {
				errs = append(errs, FieldError{Field: "cursor", Message: "is not a cursor this API returned; pass next_cursor from the previous page as it is"})
			}
			cursor = string(b)
		}
	}
	sortByField(errs)
	return status, limit, cursor, errs
}

var (
	campaignStatusWords = func() (out []string) {
		for _, s := range schemas.CampaignStatuses {
			out = append(out, string(s))
		}
		return out
	}()
	contactStatusWords = func() (out []string) {
		for _, s := range schemas.ContactStatuses {
			out = append(out, string(s))
		}
		return out
	}()
)

// listCampaigns serves GET /v1/api/campaigns: newest first, from the
// records (a campaign shows here once the recorder has it; GET by id shows
// this replica's own at once).
func (h *handler) listCampaigns(c *gin.Context) {
	ws := workspaceOf(c)
	status, limit, cursor, ferrs := pageQuery(c.Request.URL.RawQuery, campaignStatusWords)
	var after *callrecords.CampaignKey
	if cursor != "" {
		at, id, ok := strings.Cut(cursor, ".")
		n, err := strconv.ParseInt(at, 10, 64)
		if !ok || err != nil || !callIDPattern.MatchString(id) {
			ferrs = append(ferrs, FieldError{Field: "cursor", Message: "is not a cursor this API returned; pass next_cursor from the previous page as it is"})
		} else {
			after = &callrecords.CampaignKey{CreatedAt: time.Unix(0, n).UTC(), CampaignID: id}
		}
	}
	if len(ferrs) > 0 {
		h.fail(c, badQuery(ferrs))
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), recordsTimeout)
	defer cancel()
	sts, next, err := h.st.Campaigns(ctx, ws.ID, schemas.CampaignStatus(status), after, limit)
	if err != nil {
		h.fail(c, h.recordsUnavailable(ctx, err))
		return
	}
	out := CampaignList{Status: "success", Campaigns: make([]CampaignView, 0, len(sts))}
	now := h.now()
	for _, st := range sts {
		v := campaignView(&st)
		v.EstimatedFinishAt = estimateFinish(v.Status, v.Counters, v.Pacing, now)
		out.Campaigns = append(out.Campaigns, v)
	}
	if next != nil {
		out.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(next.CreatedAt.UnixNano(), 10) + "." + next.CampaignID))
	}
	writeJSON(c, http.StatusOK, out)
}

// listCampaignContacts serves GET /v1/api/campaigns/:campaignId/contacts.
func (h *handler) listCampaignContacts(c *gin.Context) {
	ws := workspaceOf(c)
	status, limit, cursor, ferrs := pageQuery(c.Request.URL.RawQuery, contactStatusWords)
	if len(ferrs) > 0 {
		h.fail(c, badQuery(ferrs))
		return
	}
	ref, aerr := h.findCampaign(c.Request.Context(), ws.ID, c.Param("campaignId"))
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), recordsTimeout)
	defer cancel()
	cs, next, err := h.st.CampaignContacts(ctx, ws.ID, ref.id, schemas.ContactStatus(status), cursor, limit)
	if err != nil {
		h.fail(c, h.recordsUnavailable(ctx, err))
		return
	}
	out := ContactList{Status: "success", CampaignID: ref.id, Contacts: make([]ContactView, 0, len(cs))}
	for i := range cs {
		out.Contacts = append(out.Contacts, contactView(&cs[i], ws.MaskPhoneNumbers))
	}
	if next != "" {
		out.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(next))
	}
	writeJSON(c, http.StatusOK, out)
}

// exportCampaign serves GET /v1/api/campaigns/:campaignId/export: every
// contact as CSV, streamed row by row from the records (no page in
// memory). A database failing half-way cuts the body short (logged): the
// status line is gone by then.
func (h *handler) exportCampaign(c *gin.Context) {
	ws := workspaceOf(c)
	ref, aerr := h.findCampaign(c.Request.Context(), ws.ID, c.Param("campaignId"))
	if aerr != nil {
		h.fail(c, aerr)
		return
	}
	var w *csv.Writer
	started := false
	start := func() {
		c.Header("Content-Type", "text/csv; charset=utf-8")
		c.Header("Content-Disposition", `attachment; filename="campaign-`+ref.id+`.csv"`)
		c.Status(http.StatusOK)
		w = csv.NewWriter(c.Writer)
		_ = w.Write([]string{"contact_id", "to", "status", "outcome", "attempts", "last_call_id", "row"})
		started = true
	}
	err := h.st.ExportCampaignContacts(c.Request.Context(), ws.ID, ref.id, func(cs *schemas.ContactState) error {
		if !started {
			start()
		}
		v := contactView(cs, ws.MaskPhoneNumbers)
		last := ""
		if n := len(v.Attempts); n > 0 {
			last = v.Attempts[n-1].CallID
		}
		row := ""
		if v.Row > 0 {
			row = strconv.Itoa(v.Row)
		}
		if err := w.Write([]string{v.ContactID, v.To, string(v.Status), string(v.Outcome), strconv.Itoa(len(v.Attempts)), last, row}); err != nil {
			return err
		}
		return w.Error()
	})
	if err != nil && !started {
		h.fail(c, h.recordsUnavailable(c.Request.Context(), err))
		return
	}
	if !started {
		start()
	}
	w.Flush()
	if err != nil {
		h.log.WarnContext(c.Request.Context(), "campaign export cut short", "campaign_id", ref.id, "workspace_id", ws.ID, "error", err.Error())
	}
}
