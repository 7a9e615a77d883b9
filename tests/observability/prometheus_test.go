package observability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/testutil"
	"github.com/dialstream/dialstream/tests/testbin"
)

// TestQueriesAgainstRealPrometheus runs the whole pipeline (`dialstream dev`:
// embedded broker, real livekit-server, phone simulator, ingest, dialer,
// notifier) with a real Prometheus scraping its three /metrics endpoints
// every second and loading deploy/prometheus/rules, places 20 calls of
// mixed outcomes through the HTTP API, then evaluates through Prometheus'
// HTTP API:
//
//   - every query of every dashboard panel (and every query variable's
//     selector), Grafana variables substituted: it must be valid and return
//     at least one series;
//   - every recording rule as written: the same;
//   - every alert expression as written: it must be valid (a healthy system
//     rightly returns nothing for most alerts), and in its bool form (see
//     withBool): it must return series, which proves the metrics under the
//     condition exist with the labels the condition matches on;
//   - every rule's health in /api/v1/rules: "ok" after being evaluated.
func TestQueriesAgainstRealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole pipeline and Prometheus")
	}
	prometheus := needTool(t, "prometheus", "PROMETHEUS_BIN", "scripts/install-prometheus.sh")
	started := time.Now()
	ctx := t.Context()

	testbin.Binary(t)
	t.Logf("built dialstream in %s", time.Since(started).Round(time.Millisecond))
	dev := testbin.StartDev(t, map[string]string{"BROKER_SYNC_WRITES": "false"})
	t.Logf("dev mode ready after %s", time.Since(started).Round(time.Millisecond))
	prom := startPrometheus(t, prometheus, dev)
	t.Logf("prometheus ready after %s", time.Since(started).Round(time.Millisecond))

	// The three jobs are scraped before any load, so rates start from the
	// initialized zeros.
	testutil.EventuallyWhy(t, 30*time.Second, "all three targets up", func() (bool, string) {
		n, err := prom.scalar(ctx, `sum(up{job=~"dialstream-.*"})`)
		return err == nil && n == 3, fmt.Sprintf("sum(up) = %v, %v", n, err)
	})

	calls := placeCalls(t, ctx, dev)
	t.Logf("placed %d calls by %s", calls, time.Since(started).Round(time.Millisecond))
	testutil.EventuallyWhy(t, 90*time.Second, "every call ended, as Prometheus sees it", func() (bool, string) {
		n, err := prom.scalar(ctx, `sum(dialstream_dialer_calls_ended_total{job="dialstream-dialer"})`)
		return err == nil && n >= float64(calls), fmt.Sprintf("ended = %v of %d, %v", n, calls, err)
	})
	testutil.EventuallyWhy(t, 30*time.Second, "webhooks delivered and the lag gauges measured", func() (bool, string) {
		ok, err := prom.scalar(ctx, `sum(dialstream_notifier_webhook_attempts_total{job="dialstream-notifier",result="success"})`)
		lag, err2 := prom.count(ctx, `dialstream_notifier_consumer_lag_records{job="dialstream-notifier"}`)
		return err == nil && err2 == nil && ok > 0 && lag > 0, fmt.Sprintf("success %v (%v), lag series %v (%v)", ok, err, lag, err2)
	})
	// A few more scrapes, so every rate window holds samples from after the
	// calls, and every rule group has been evaluated since.
	loadDone := time.Now()
	testutil.EventuallyWhy(t, 30*time.Second, "every rule evaluated after the load", func() (bool, string) {
		rules, err := prom.rules(ctx)
		if err != nil {
			return false, err.Error()
		}
		for _, r := range rules {
			if r.LastEvaluation.Before(loadDone.Add(2 * time.Second)) {
				return false, r.Name + " not evaluated since the load"
			}
		}
		return len(rules) > 0, "no rules loaded"
	})
	t.Logf("load done, rules evaluated after %s", time.Since(started).Round(time.Millisecond))

	var checked int
	for _, q := range dashboardQueries(t) {
		checked++
		if n, err := prom.count(ctx, q.expr); err != nil {
			t.Errorf("%s: %v\n  %s", q.where, err, q.expr)
		} else if n == 0 {
			t.Errorf("%s: no series\n  %s", q.where, q.expr)
		}
	}
	rules := loadRules(t)
	var quiet []string // alerts whose condition is rightly false now
	for _, r := range rules {
		checked++
		n, err := prom.count(ctx, r.Expr)
		if err != nil {
			t.Errorf("rule %s: %v\n  %s", r.name(), err, r.Expr)
			continue
		}
		if n == 0 && r.Alert != "" {
			quiet = append(quiet, r.Alert)
		}
		expr := r.Expr
		if r.Alert != "" {
			expr = withBool(r.Expr)
		}
		if n, err := prom.count(ctx, expr); err != nil {
			t.Errorf("rule %s: %v\n  %s", r.name(), err, expr)
		} else if n == 0 {
			t.Errorf("rule %s: no series under the condition\n  %s", r.name(), expr)
		}
	}
	t.Logf("%d alert expressions return nothing as written on this healthy pipeline (checked in bool form): %v", len(quiet), quiet)
	loaded, err := prom.rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != len(rules) {
		t.Errorf("prometheus loaded %d rules, the files hold %d", len(loaded), len(rules))
	}
	for _, r := range loaded {
		if r.Health != "ok" || r.LastError != "" {
			t.Errorf("rule %s: health %q, last error %q", r.Name, r.Health, r.LastError)
		}
	}
	// The one webhook refused for good (404) went to the DLQ, so that alert
	// fires, end to end; nothing else is wrong with the pipeline, so no other
	// alert may fire.
	for _, r := range loaded {
		if r.Type != "alerting" {
			continue
		}
		want := r.Name == "DialstreamWebhookDLQGrowing"
		if got := r.State == "firing"; got != want {
			t.Errorf("alert %s: state %q, want firing=%v", r.Name, r.State, want)
		}
	}
	t.Logf("%d queries checked; whole test %s", checked, time.Since(started).Round(time.Millisecond))
}

// prom is a Prometheus server run by the test.
type prom struct {
	url string
}

func startPrometheus(t *testing.T, bin string, dev *testbin.Dev) *prom {
	t.Helper()
	dir := t.TempDir()
	rules := filepath.Join(testbin.RepoRoot(t), "deploy", "prometheus", "rules", "*.yaml")
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: dialstream-ingest
    static_configs: [{targets: [%q]}]
  - job_name: dialstream-dialer
    static_configs: [{targets: [%q]}]
  - job_name: dialstream-notifier
    static_configs: [{targets: [%q]}]
`, rules, dev.Ingest, dev.Dialer, dev.Notifier)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testbin.FreeAddr(t)
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--storage.tsdb.retention.time=1h", "--log.level=warn")
	cmd.Dir = dir
	testbin.StartProcess(t, "prometheus", cmd).WaitReady(t, time.Minute, "http://"+addr+"/-/ready")
	return &prom{url: "http://" + addr}
}

// query runs an instant query and returns its result.
func (p *prom) query(ctx context.Context, expr string) (resultType string, result json.RawMessage, err error) {
	var body struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := p.api(ctx, "/api/v1/query?query="+url.QueryEscape(expr), &body); err != nil {
		return "", nil, err
	}
	if body.Status != "success" {
		return "", nil, fmt.Errorf("%s: %s", body.ErrorType, body.Error)
	}
	return body.Data.ResultType, body.Data.Result, nil
}

// count is the number of series (or 1 for a scalar) an instant query returns.
func (p *prom) count(ctx context.Context, expr string) (int, error) {
	typ, res, err := p.query(ctx, expr)
	if err != nil {
		return 0, err
	}
	switch typ {
	case "vector", "matrix":
		var series []json.RawMessage
		if err := json.Unmarshal(res, &series); err != nil {
			return 0, err
		}
		return len(series), nil
	default:
		return 1, nil
	}
}

// scalar is the value of a query returning one series (NaN-free).
func (p *prom) scalar(ctx context.Context, expr string) (float64, error) {
	_, res, err := p.query(ctx, expr)
	if err != nil {
		return 0, err
	}
	var series []struct {
		Value [2]any `json:"value"`
	}
	if err := json.Unmarshal(res, &series); err != nil {
		return 0, err
	}
	if len(series) != 1 {
		return 0, fmt.Errorf("%d series", len(series))
	}
	s, _ := series[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

type loadedRule struct {
	Name           string    `json:"name"`
	Type           string    `json:"type"`
	Health         string    `json:"health"`
	LastError      string    `json:"lastError"`
	State          string    `json:"state"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

func (p *prom) rules(ctx context.Context) ([]loadedRule, error) {
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Groups []struct {
				Rules []loadedRule `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := p.api(ctx, "/api/v1/rules", &body); err != nil {
		return nil, err
	}
	var out []loadedRule
	for _, g := range body.Data.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

func (p *prom) api(ctx context.Context, path string, into any) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, p.url+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("%s: HTTP %d: %.300s", path, resp.StatusCode, b)
	}
	return nil
}

// placeCalls sends 20 calls over about 10 s through POST /v1/api/call, in
// both dev workspaces, mixing every scripted outcome of the phone simulator
// (completed, busy, no answer, declined, not found) and webhook receivers
// that accept, fail (retried) and refuse for good (DLQ); plus one invalid
// request. It returns the number of calls accepted.
func placeCalls(t *testing.T, ctx context.Context, dev *testbin.Dev) int {
	t.Helper()
	type ws struct{ id, key, agent string }
	demo := ws{"ws_demo", "dsk_demo_local", "a1b2c3d4e5f6a7b8c9d0e1f2"}
	other := ws{"ws_other", "dsk_other_local", "b2c3d4e5f6a7b8c9d0e1f2a3"}
	hook := func(w ws, query string) string { return "http://" + dev.Inspector + "/hooks/" + w.id + query }
	calls := []struct {
		w   ws
		to  string
		cb  string
		cbQ string
	}{
		{demo, "+15550100480", "y", ""}, // rings until the ringing timeout (20 s): first, so it ends in time
		{demo, "+15550100001", "y", ""},
		{demo, "+15550100486", "y", ""},
		{other, "+15550100001", "y", ""},
		{demo, "+15550100603", "y", ""},
		{demo, "+15550100404", "y", ""},
		{demo, "+15550100001", "y", "?status=503"}, // retried on the retry topics
		{other, "+15550100486", "y", ""},
		{demo, "+15550100486", "y", "?status=404"}, // final 4xx: webhook DLQ
		{demo, "+15550100001", "", ""},             // no callback: skipped
		{demo, "+15550100603", "y", ""},
		{other, "+15550100603", "y", ""},
		{demo, "+15550100001", "y", ""},
		{demo, "+15550100404", "y", ""},
		{demo, "+15550100486", "y", ""},
		{other, "+15550100404", "y", ""},
		{demo, "+15550100001", "y", ""},
		{demo, "+15550100001", "y", ""},
		{demo, "+15550100486", "y", ""},
		{demo, "+15550100603", "y", ""},
	}
	post := func(w ws, body map[string]any) (int, string) {
		b, _ := json.Marshal(body)
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(rctx, http.MethodPost, "http://"+dev.Ingest+"/v1/api/call", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+w.key)
		req.Header.Set("x-workspace-id", w.id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return resp.StatusCode, string(rb)
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	accepted := 0
	for i, c := range calls {
		body := map[string]any{"to": c.to, "call_agent_id": c.w.agent,
			"dynamic_variables": map[string]any{"firstName": "Ada"}, "metadata": map[string]any{"n": i}}
		if c.cb != "" {
			body["callback_url"] = hook(c.w, c.cbQ)
		}
		code, resp := post(c.w, body)
		if code != http.StatusAccepted {
			t.Fatalf("call %d to %s: HTTP %d %s", i, c.to, code, resp)
		}
		accepted++
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-tick.C:
		}
	}
	if code, resp := post(demo, map[string]any{"to": "+1234567890", "call_agent_id": demo.agent}); code != http.StatusUnprocessableEntity {
		t.Errorf("invalid number: HTTP %d %s, want 422", code, resp)
	}
	return accepted
}
