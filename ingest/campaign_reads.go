package ingest

import (
	"context"
	"math"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/dialstream/dialstream/internal/callrecords"
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
		v = CampaignView{Campaign: st.Campaign, Status: st.Status, Counters: st.Counters.Clone(),
			StartedAt: st.StartedAt, PausedAt: st.PausedAt, FinishedAt: st.FinishedAt}
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
