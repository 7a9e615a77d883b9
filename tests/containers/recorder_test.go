package containers

import (
	"context"
	"testing"
	"time"

	"github.com/dialstream/dialstream/tests/invariants"
)

// SIGKILL the recorder under the call load and start it again 10 s later:
// the batch it was writing is rolled back with its offsets (one database
// transaction), and it goes on from the offsets in the database. Besides
// the pipeline's invariants, every accepted call's record, read through
// ingest's GET /v1/api/call/:callId, must then hold exactly the call's
// events on the topic, each once, in sequence order (CheckRecords).
func TestRecorderKilled(t *testing.T) {
	runScenario(t, scenario{opts: topoOptions{dialers: 2, notifiers: 2, recorder: true},
		fault: func(ctx context.Context, tp *topology, rec *invariants.Recorder) proof {
			written := func() float64 {
				return tp.metric(ctx, "recorder", "dialstream_recorder_records_total", "topic", "events", "result", "written")
			}
			tp.at(ctx, 10*time.Second)
			before := written()
			tp.kill(ctx, "recorder")
			killed := time.Now()
			tp.logf("the recorder had written %v event records", before)
			tp.at(ctx, 20*time.Second)
			tp.restart(ctx, "recorder")
			back := time.Now()
			return func(o invariants.Observed, _ invariants.Report) []evidence {
				recs := tp.checkRecords(ctx, o, 60*time.Second)
				var down int
				for _, e := range o.Events {
					if !e.Written.Before(killed) && e.Written.Before(back) {
						down++
					}
				}
				return []evidence{
					{what: "event records the recorder had written before the SIGKILL (dialstream_recorder_records_total{topic=events,result=written})",
						n: int(before)},
					{what: "event records written on the topic while the recorder was down", n: down},
					{what: "event records the restarted recorder wrote (its dialstream_recorder_records_total)", n: int(written())},
					{what: "call records exactly as the events topic says, read through GET /v1/api/call/:callId", n: recs.Matching},
				}
			}
		}})
}

// checkRecords reads every accepted call's record through ingest until all
// of them are exactly as the events topic says (the recorder may still be
// catching up) or within passes, logs the verdict and fails the test for
// each problem left.
func (tp *topology) checkRecords(ctx context.Context, o invariants.Observed, within time.Duration) invariants.RecordsReport {
	tp.t.Helper()
	api := tp.client()
	deadline := time.Now().Add(within)
	var rep invariants.RecordsReport
	for {
		recs := map[string]invariants.CallRecord{}
		var errs []string
		for _, q := range o.Requests {
			if !q.Accepted {
				continue
			}
			r, err := api.Call(ctx, q.CallID)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			recs[q.CallID] = r
		}
		rep = invariants.CheckRecords(o, recs)
		if len(rep.Problems) == 0 || time.Now().After(deadline) {
			if len(errs) > 0 {
				tp.t.Logf("reading the records: %d errors, the first: %s", len(errs), errs[0])
			}
			break
		}
		tp.wait(ctx, time.Second, "check the records")
	}
	tp.t.Logf("RECORDS %s:\n%s", tp.t.Name(), rep.Table())
	for _, p := range rep.Problems {
		tp.t.Errorf("call records: %s", p)
	}
	if rep.Calls == 0 {
		tp.t.Error("call records: no accepted call to check")
	}
	return rep
}
