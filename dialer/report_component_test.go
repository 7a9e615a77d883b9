package dialer

import (
	"slices"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/schemas"
)

// Agent reports through the embedded broker and the fake LiveKit, as
// ingest's report endpoint writes them.

func (c *component) report(callID, ws string, r schemas.AgentReport) {
	c.t.Helper()
	now := time.Now().UTC()
	r.At = now
	rec, err := schemas.NewRecord(schemas.TopicRequested, callID, schemas.Meta{Type: schemas.TypeAgentReportReceived, Source: "/test/ingest"},
		schemas.AgentReportReceived{CallID: callID, WorkspaceID: ws, ReceivedAt: now, Report: r})
	if err != nil {
		c.t.Fatal(err)
	}
	produce(c.t, c.prod, rec)
}

// An opt-out in the agent's result puts the number on the do-not-call
// list: the agent's hangup ends the call, and the next call to the number
// ends suppressed without a dial.
func TestAgentOptOutListsTheNumber(t *testing.T) {
	c := complianceComponent(t, "", nil)
	c.d = startDialer(t, c.cfg)
	const number = "+15550100999" // the fake answers and holds
	id := c.request("ws_allday", "agent_allday", number)
	c.waitStatus(id, schemas.StatusAnswered)
	c.report(id, "ws_allday", schemas.AgentReport{ID: "res", Type: schemas.ReportTypeResult,
		Result: &schemas.ReportResult{Disposition: "do_not_call", OptOut: true}})
	c.report(id, "ws_allday", schemas.AgentReport{ID: "bye", Type: schemas.ReportTypeHangup})
	c.waitEnded(id)
	end := c.log.ended(t, id)
	if end.Outcome != schemas.OutcomeCompleted || end.EndedBy != schemas.EndedByAgent {
		t.Fatalf("ended %+v", end)
	}
	testutil.Eventually(t, 10*time.Second, "the room deleted", func() bool { return c.lk.deletes(end.RoomName) > 0 })
	testutil.Eventually(t, 10*time.Second, "the opt-out counted", func() bool {
		return c.d.metric("dialstream_dialer_agent_opt_outs_total") == 1
	})
	next := c.request("ws_allday", "agent_allday", number)
	c.refused(next, schemas.OutcomeSuppressed, "do-not-call list (opt_out")
}

// A transfer asks LiveKit once, even when the report is sent again, and the
// call ends transferred by the agent.
func TestAgentTransferThroughLiveKit(t *testing.T) {
	c := complianceComponent(t, "", nil)
	c.d = startDialer(t, c.cfg)
	id := c.request("ws_allday", "agent_allday", "+15550101999")
	c.waitStatus(id, schemas.StatusAnswered)
	tr := schemas.AgentReport{ID: "xfer", Type: schemas.ReportTypeTransfer, Transfer: &schemas.ReportTransfer{To: "+15550100777"}}
	c.report(id, "ws_allday", tr)
	c.report(id, "ws_allday", tr)
	c.waitEnded(id)
	end := c.log.ended(t, id)
	if end.Outcome != schemas.OutcomeTransferred || end.EndedBy != schemas.EndedByAgent {
		t.Fatalf("ended %+v", end)
	}
	if got := c.lk.transfersIn(end.RoomName); !slices.Equal(got, []string{"tel:+15550100777"}) {
		t.Fatalf("transfers asked of LiveKit: %v", got)
	}
	reports := 0
	for _, ev := range c.log.callEvents(t, id) {
		if ev.Status == schemas.StatusAgentReport {
			reports++
		}
	}
	if reports != 1 {
		t.Fatalf("%d report events for one report sent twice", reports)
	}
}
