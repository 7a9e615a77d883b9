package invariants

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/dialstream/dialstream/schemas"
)

// The call records as a user reads them (GET /v1/api/call/:callId, served
// from the database the recorder writes), judged against the events topic:
// for the tests that fault the recorder.

// CallRecord is GET /v1/api/call/:callId's call, the fields a check reads.
type CallRecord struct {
	CallID  string        `json:"callId"`
	Status  string        `json:"status"`
	Outcome string        `json:"outcome"`
	EndedBy string        `json:"ended_by"`
	Reason  string        `json:"reason"`
	Events  []RecordEvent `json:"events"`
}

// RecordEvent is one event of a call record, as the API lists it.
type RecordEvent struct {
	ID       string `json:"id"`
	Sequence int    `json:"sequence"`
	Status   string `json:"status"`
	Outcome  string `json:"outcome"`
}

// Call reads GET /v1/api/call/:callId.
func (c Client) Call(ctx context.Context, id string) (CallRecord, error) {
	var env struct {
		Call CallRecord `json:"call"`
	}
	err := c.Do(ctx, http.MethodGet, "/call/"+url.PathEscape(id), "", "", &env)
	return env.Call, err
}

// RecordsReport is the verdict on the call records: every accepted call's
// record holds exactly the call's distinct events on the topic, each once,
// in sequence order, and its status and outcome are its last lifecycle
// event's (the agent's reports are not stages of the call).
type RecordsReport struct {
	Calls    int // accepted calls
	Matching int // of them, records exactly as the topic says
	Events   int // events in the matching records
	Problems []string
}

// Table is the report's one line.
func (r RecordsReport) Table() string {
	return fmt.Sprintf("  records   %d accepted calls, %d records exactly as the events topic says (%d events); %d records differ",
		r.Calls, r.Matching, r.Events, r.Calls-r.Matching)
}

// CheckRecords compares each accepted call's record (records, by call id;
// a call missing from it was not found) with the events topic.
func CheckRecords(o Observed, records map[string]CallRecord) RecordsReport {
	var r RecordsReport
	cs := calls(o.Events)
	var missing, differ []string
	for _, q := range o.Requests {
		if !q.Accepted {
			continue
		}
		r.Calls++
		cv := cs[q.CallID]
		rec, ok := records[q.CallID]
		switch {
		case !ok:
			missing = append(missing, q.CallID)
			continue
		case cv == nil:
			differ = append(differ, fmt.Sprintf("call %s has a record and no event on the topic", q.CallID))
			continue
		}
		if why := recordDiffers(cv, rec); why != "" {
			differ = append(differ, fmt.Sprintf("call %s: %s", q.CallID, why))
			continue
		}
		r.Matching++
		r.Events += len(rec.Events)
	}
	slices.Sort(missing)
	slices.Sort(differ)
	if len(missing) > 0 {
		r.Problems = append(r.Problems, listing("accepted calls without a record", missing))
	}
	if len(differ) > 0 {
		r.Problems = append(r.Problems, listing("records that differ from the events topic", differ))
	}
	return r
}

// recordDiffers says how a record differs from the call's events ("": it
// does not).
func recordDiffers(cv *callView, rec CallRecord) string {
	seqs := slices.Sorted(maps.Keys(cv.seqs))
	var got []string
	for _, e := range rec.Events {
		got = append(got, fmt.Sprintf("%d:%s", e.Sequence, e.Status))
	}
	if len(rec.Events) != len(seqs) {
		return fmt.Sprintf("%d events [%s], the topic has %d", len(rec.Events), strings.Join(got, " "), len(seqs))
	}
	for i, s := range seqs {
		e, want := rec.Events[i], cv.seqs[s]
		if e.Sequence != s || e.ID != want.CEID || e.Status != want.Status || e.Outcome != want.Outcome {
			return fmt.Sprintf("event %d is %s seq %d %s/%s, the topic's is %s seq %d %s/%s (record: [%s])", i+1,
				e.ID, e.Sequence, e.Status, e.Outcome, want.CEID, s, want.Status, want.Outcome, strings.Join(got, " "))
		}
	}
	// An agent's report is not a stage of the call: the record's status is
	// its last lifecycle event's (a post-call report follows ended).
	for i := len(seqs) - 1; i >= 0; i-- {
		last := cv.seqs[seqs[i]]
		if last.Status == string(schemas.StatusAgentReport) {
			continue
		}
		if rec.Status != last.Status || rec.Outcome != last.Outcome {
			return fmt.Sprintf("record says %s/%s, its last lifecycle event %s/%s", rec.Status, rec.Outcome, last.Status, last.Outcome)
		}
		break
	}
	return ""
}
