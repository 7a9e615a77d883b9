package invariants

import (
	"strings"
	"testing"
)

// recordsOf are the records the API would show for a run whose recorder
// wrote every event once.
func recordsOf(o Observed) map[string]CallRecord {
	recs := map[string]CallRecord{}
	for id, cv := range calls(o.Events) {
		rec := CallRecord{CallID: id}
		for s := 1; s <= len(cv.seqs); s++ {
			e := cv.seqs[s]
			rec.Events = append(rec.Events, RecordEvent{ID: e.CEID, Sequence: s, Status: e.Status, Outcome: e.Outcome})
			rec.Status, rec.Outcome = e.Status, e.Outcome
		}
		recs[id] = rec
	}
	return recs
}

func TestCheckRecords(t *testing.T) {
	cases := []struct {
		name   string
		change func(map[string]CallRecord)
		want   string // a substring of the problems; "" means it passes
	}{
		{"every record as the topic says", func(map[string]CallRecord) {}, ""},
		{"a record not found", func(r map[string]CallRecord) { delete(r, callB) }, "accepted calls without a record: 1: " + callB},
		{"an event missing", func(r map[string]CallRecord) {
			rec := r[callA]
			rec.Events = append(rec.Events[:2:2], rec.Events[3:]...)
			r[callA] = rec
		}, "4 events [1:queued 2:dialing 4:answered 5:ended], the topic has 5"},
		{"an event twice", func(r map[string]CallRecord) {
			rec := r[callB]
			rec.Events = append(rec.Events, rec.Events[2])
			r[callB] = rec
		}, "4 events [1:queued 2:dialing 3:ended 3:ended], the topic has 3"},
		{"events out of order", func(r map[string]CallRecord) {
			rec := r[callA]
			rec.Events[1], rec.Events[2] = rec.Events[2], rec.Events[1]
			r[callA] = rec
		}, "event 2 is " + callA + "-3 seq 3 ringing/"},
		{"another outcome than its ended event", func(r map[string]CallRecord) {
			rec := r[callB]
			rec.Outcome = "failed"
			r[callB] = rec
		}, "record says ended/failed, its last lifecycle event ended/busy"},
	}
	for _, tc := range cases {
		o := healthy()
		recs := recordsOf(o)
		tc.change(recs)
		rep := CheckRecords(o, recs)
		got := strings.Join(rep.Problems, "\n")
		switch {
		case tc.want == "" && got != "":
			t.Errorf("%s: problems %s", tc.name, got)
		case tc.want != "" && !strings.Contains(got, tc.want):
			t.Errorf("%s: problems %q, want one containing %q", tc.name, got, tc.want)
		case tc.want == "" && (rep.Calls != 2 || rep.Matching != 2 || rep.Events != 8):
			t.Errorf("%s: %d calls, %d matching, %d events; want 2, 2, 8", tc.name, rep.Calls, rep.Matching, rep.Events)
		}
	}
}

// The agent's post-call report follows ended on the topic; the record keeps
// the call ended with its outcome, which is right. A record whose status
// followed the report is wrong.
func TestCheckRecordsReportAfterEnd(t *testing.T) {
	o := healthy()
	var end Event
	for _, e := range o.Events {
		if e.CallID == callB && e.Status == "ended" {
			end = e
		}
	}
	rep := end
	rep.CEID, rep.Sequence, rep.Status, rep.Outcome = callB+"-4", 4, "agent_report", ""
	o.Events = append(o.Events, rep)
	recs := recordsOf(o)
	b := recs[callB]
	b.Status, b.Outcome = "ended", "busy"
	recs[callB] = b
	if r := CheckRecords(o, recs); len(r.Problems) != 0 {
		t.Errorf("a report after the end: %v", r.Problems)
	}
	b.Status, b.Outcome = "agent_report", ""
	recs[callB] = b
	if r := CheckRecords(o, recs); len(r.Problems) != 1 || !strings.Contains(r.Problems[0], "record says agent_report/, its last lifecycle event ended/busy") {
		t.Errorf("a record that took the report's status: %v", r.Problems)
	}
}
