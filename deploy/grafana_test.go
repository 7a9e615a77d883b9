package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/callrecords/dbtest"
	"github.com/dialstream/dialstream/schemas"
)

// The call records dashboard's SQL runs on a real PostgreSQL (dbtest), on
// records written the way the recorder writes them, with Grafana's macros
// and variables expanded as Grafana expands them; its answers are the
// figures a user would read off the panels.

// TestMain stops the throwaway PostgreSQL cluster a test started, if any.
func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

const recordsDashboard = "grafana/dashboards/records/callrecords.json"

type sqlDashboard struct {
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Datasource *struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Current struct {
				Value any `json:"value"`
			} `json:"current"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title      string `json:"title"`
		Datasource struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			RawSQL string `json:"rawSql"`
			Format string `json:"format"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadSQLDashboard(t *testing.T) sqlDashboard {
	t.Helper()
	b, err := os.ReadFile(recordsDashboard)
	if err != nil {
		t.Fatal(err)
	}
	var d sqlDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// grafanaSQL expands what Grafana expands in a PostgreSQL query: the time
// range macros and the dashboard's variables (a multi-value variable as a
// list of quoted strings). Anything left that looks like a macro or a
// variable fails the test: Grafana would send it as it is.
func grafanaSQL(t *testing.T, sql string, from, to time.Time, vars map[string][]string) string {
	t.Helper()
	r := strings.NewReplacer(
		"$__unixEpochNanoFrom()", strconv.FormatInt(from.UnixNano(), 10),
		"$__unixEpochNanoTo()", strconv.FormatInt(to.UnixNano(), 10),
	)
	sql = r.Replace(sql)
	for name, vals := range vars {
		q := make([]string, len(vals))
		for i, v := range vals {
			q[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
		}
		sql = strings.ReplaceAll(sql, "$"+name, strings.Join(q, ","))
	}
	if m := regexp.MustCompile(`\$[A-Za-z_{]+`).FindString(sql); m != "" {
		t.Fatalf("%s is not expanded in:\n%s", m, sql)
	}
	return sql
}

// putCall writes a call as the recorder does: its request and its events
// up to the end (answered when talk > 0); without an outcome, a call still
// ringing.
func putCall(t *testing.T, st *callrecords.Store, n int, ws, agent string, at time.Time, outcome schemas.Outcome, talk float64) {
	t.Helper()
	ctx := context.Background()
	id := fmt.Sprintf("%024x", n)
	req := schemas.CallRequested{CallID: id, WorkspaceID: ws, To: "+15550100001", CallAgentID: agent, RequestedAt: at}
	data, _ := json.Marshal(req)
	statuses := []schemas.Status{schemas.StatusQueued, schemas.StatusDialing, schemas.StatusRinging}
	if talk > 0 {
		statuses = append(statuses, schemas.StatusAnswered)
	}
	if outcome != "" {
		statuses = append(statuses, schemas.StatusEnded)
	}
	err := st.Write(ctx, func(w *callrecords.Writer) error {
		if _, err := w.PutRequest(ctx, &req, data, 0, int64(n), false); err != nil {
			return err
		}
		for i, s := range statuses {
			ra := at
			ev := schemas.CallEvent{CallID: id, WorkspaceID: ws, Sequence: i + 1, Status: s, OccurredAt: at.Add(time.Duration(i+1) * time.Second),
				RequestedAt: &ra, To: req.To, CallAgentID: agent}
			if s == schemas.StatusEnded {
				ev.Outcome = outcome
				if talk > 0 {
					ev.TalkDurationSeconds = &talk
				}
			}
			v, _ := json.Marshal(ev)
			if _, err := w.PutEvent(ctx, &ev, schemas.EventID(id, i+1), v, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCallRecordsDashboardSQL(t *testing.T) {
	d := loadSQLDashboard(t)
	// The data source: the provisioned one, of PostgreSQL's type, and every
	// panel reads through the dashboard's datasource variable.
	var prov struct {
		Datasources []struct {
			UID, Type string
		} `yaml:"datasources"`
	}
	b, err := os.ReadFile("grafana/provisioning/datasources/callrecords.yaml")
	if err != nil || yaml.Unmarshal(b, &prov) != nil || len(prov.Datasources) != 1 {
		t.Fatalf("callrecords.yaml: %v %+v", err, prov)
	}
	ds := prov.Datasources[0]
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && (v.Current.Value != ds.UID || v.Query != ds.Type) {
			t.Errorf("datasource variable %v of type %v; provisioned %s of type %s", v.Current.Value, v.Query, ds.UID, ds.Type)
		}
	}

	st := dbtest.Open(t, callrecords.Postgres, callrecords.Options{})
	day1 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	day2 := day1.Add(24 * time.Hour)
	// ws_a: agent a1 on day 1: completed 60s, completed 30s, busy;
	// a1 on day 2: no_answer; a2 on day 2: completed 90s.
	putCall(t, st, 1, "ws_a", "a1", day1, schemas.OutcomeCompleted, 60)
	putCall(t, st, 2, "ws_a", "a1", day1.Add(time.Hour), schemas.OutcomeCompleted, 30)
	putCall(t, st, 3, "ws_a", "a1", day1.Add(2*time.Hour), schemas.OutcomeBusy, 0)
	putCall(t, st, 4, "ws_a", "a1", day2, schemas.OutcomeNoAnswer, 0)
	putCall(t, st, 5, "ws_a", "a2", day2.Add(time.Hour), schemas.OutcomeCompleted, 90)
	// Out of view: another workspace, a call before the range, a call
	// still ringing.
	putCall(t, st, 6, "ws_b", "a1", day1, schemas.OutcomeCompleted, 500)
	putCall(t, st, 7, "ws_a", "a1", day1.Add(-72*time.Hour), schemas.OutcomeCompleted, 500)
	putCall(t, st, 8, "ws_a", "a1", day2.Add(2*time.Hour), "", 0)
	from, to := day1.Add(-24*time.Hour), day2.Add(24*time.Hour)
	vars := map[string][]string{"workspace": {"ws_a"}}

	// The workspace variable lists both workspaces.
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		if got := rows(t, st, grafanaSQL(t, fmt.Sprint(v.Query), from, to, vars)); got != "ws_a\nws_b" {
			t.Errorf("variable %s: %q", v.Name, got)
		}
	}
	want := map[string]string{
		"Calls ended":       "5",
		"Answer rate":       "0.6",
		"Talk time":         "180",
		"Average talk time": "60",
		"Outcomes per day": "2026-11-02T00:00:00Z busy 1\n2026-11-02T00:00:00Z completed 2\n" +
			"2026-11-03T00:00:00Z completed 1\n2026-11-03T00:00:00Z no_answer 1",
		"Answer rate per day": "2026-11-02T00:00:00Z 0.6666666666666666\n2026-11-03T00:00:00Z 0.5",
		"Outcomes per agent and day": "2026-11-03T00:00:00Z a1 no_answer 1\n2026-11-03T00:00:00Z a2 completed 1\n" +
			"2026-11-02T00:00:00Z a1 busy 1\n2026-11-02T00:00:00Z a1 completed 2",
		"Answer rate and talk time per agent": "a1 4 2 0.5 90 45\na2 1 1 1 90 90",
	}
	for _, p := range d.Panels {
		if p.Datasource.UID != "${datasource}" || p.Datasource.Type != ds.Type {
			t.Errorf("panel %q: datasource %+v", p.Title, p.Datasource)
		}
		w, ok := want[p.Title]
		if !ok {
			t.Errorf("panel %q: no expected answer in this test", p.Title)
			continue
		}
		delete(want, p.Title)
		if len(p.Targets) != 1 {
			t.Fatalf("panel %q: %d targets", p.Title, len(p.Targets))
		}
		if got := rows(t, st, grafanaSQL(t, p.Targets[0].RawSQL, from, to, vars)); got != w {
			t.Errorf("panel %q:\n got %q\nwant %q", p.Title, got, w)
		}
	}
	for title := range want {
		t.Errorf("no panel %q", title)
	}
}

// rows runs q and prints its rows, one line each, columns space-separated;
// times in RFC 3339 UTC.
func rows(t *testing.T, st *callrecords.Store, q string) string {
	t.Helper()
	rs, err := st.DB().QueryContext(context.Background(), q)
	if err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	defer rs.Close()
	cols, _ := rs.Columns()
	var lines []string
	for rs.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		cells := make([]string, len(cols))
		for i, v := range vals {
			switch v := v.(type) {
			case time.Time:
				cells[i] = v.UTC().Format(time.RFC3339)
			case []byte:
				cells[i] = string(v)
			default:
				cells[i] = fmt.Sprint(v)
			}
		}
		lines = append(lines, strings.Join(cells, " "))
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
