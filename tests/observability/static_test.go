package observability

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/dialstream/dialstream/tests/testbin"
)

// The data source the provisioning defines is the dashboards' default, and
// every panel reads through the dashboard's datasource variable.
func TestDashboardsWellFormed(t *testing.T) {
	var prov struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
		} `yaml:"datasources"`
	}
	b, err := os.ReadFile(filepath.Join(testbin.RepoRoot(t), "deploy", "grafana", "provisioning", "datasources", "prometheus.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &prov); err != nil || len(prov.Datasources) != 1 || prov.Datasources[0].Type != "prometheus" {
		t.Fatalf("datasource provisioning: %v %+v", err, prov)
	}
	uid := prov.Datasources[0].UID

	want := map[string]bool{"dialstream-pipeline": false, "dialstream-telephony": false, "dialstream-webhooks": false, "dialstream-campaigns": false}
	for _, d := range loadDashboards(t) {
		if _, ok := want[d.UID]; !ok {
			t.Errorf("%s: unexpected uid %q", d.file, d.UID)
		}
		want[d.UID] = true
		var dsVar bool
		for _, v := range d.Templating.List {
			if v.Type == "datasource" && v.Name == "datasource" {
				dsVar = true
				if v.Current.Value != uid {
					t.Errorf("%s: datasource variable defaults to %v, the provisioned uid is %q", d.file, v.Current.Value, uid)
				}
			}
			if v.Type == "query" && (v.Datasource == nil || v.Datasource.UID != "${datasource}") {
				t.Errorf("%s: variable %s does not read from ${datasource}", d.file, v.Name)
			}
		}
		if !dsVar {
			t.Errorf("%s: no datasource variable", d.file)
		}
		ids := map[int]bool{}
		for _, p := range d.allPanels() {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d twice", d.file, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos["w"] == 0 || p.GridPos["h"] == 0 || p.GridPos["x"]+p.GridPos["w"] > 24 {
				t.Errorf("%s panel %q: gridPos %v", d.file, p.Title, p.GridPos)
			}
			if p.Type == "row" {
				continue
			}
			if p.Title == "" || len(p.Targets) == 0 {
				t.Errorf("%s panel %d: no title or no targets", d.file, p.ID)
			}
			if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
				t.Errorf("%s panel %q: datasource %+v, want ${datasource}", d.file, p.Title, p.Datasource)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" || refs[tg.RefID] {
					t.Errorf("%s panel %q: target %q has no expr or a missing/duplicate refId", d.file, p.Title, tg.RefID)
				}
				refs[tg.RefID] = true
				if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
					t.Errorf("%s panel %q %s: datasource %+v", d.file, p.Title, tg.RefID, tg.Datasource)
				}
			}
		}
	}
	for uid, seen := range want {
		if !seen {
			t.Errorf("dashboard %s missing", uid)
		}
	}
	_ = dashboardQueries(t) // every variable known
}

// Every dashboard and rule names only dialstream metrics that exist in the
// code, plus Prometheus' and the Go client's standard ones. A typo fails
// here, offline, before the Prometheus test would report "no series".
func TestQueriesNameKnownMetrics(t *testing.T) {
	known := knownMetricNames(t)
	metric := regexp.MustCompile(`\b(dialstream_[a-z0-9_]+|dialstream:[a-z0-9_:]+)\b`)
	check := func(where, expr string) {
		for _, m := range metric.FindAllString(expr, -1) {
			if !known(m) {
				t.Errorf("%s: unknown metric %s", where, m)
			}
		}
	}
	for _, q := range dashboardQueries(t) {
		check(q.where, q.expr)
	}
	for _, r := range loadRules(t) {
		check("rule "+r.name(), r.Expr)
	}
}

// knownMetricNames reads the metric names the services' Go source declares:
// full-name string literals, Namespace/Subsystem/Name triples, and names
// built as prefix + "suffix" (custom collectors); plus kprom's client
// metrics and the recording rules.
func knownMetricNames(t *testing.T) func(string) bool {
	names := map[string]bool{}
	for _, r := range loadRules(t) {
		if r.Record != "" {
			names[r.Record] = true
		}
	}
	prefixes := map[string]bool{"dialstream_ingest": true, "dialstream_dialer": true, "dialstream_notifier": true}
	suffixes := map[string]bool{}
	lit := regexp.MustCompile(`"(dialstream_[a-z0-9_]+)"`)
	short := regexp.MustCompile(`Name:\s*"([a-z0-9_]+)"`)
	concat := regexp.MustCompile(`\+\s*"(_?[a-z0-9_]+)"`)
	nsSub := regexp.MustCompile(`ns, sub = "dialstream", "([a-z]+)"`)
	for _, dir := range []string{"ingest", "dialer", "notifier", "agent", "recorder", "scheduler", "internal/phonesim"} {
		files, _ := filepath.Glob(filepath.Join(testbin.RepoRoot(t), dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			src := string(b)
			for _, m := range lit.FindAllStringSubmatch(src, -1) {
				names[m[1]] = true
				prefixes[m[1]] = true
			}
			for _, m := range concat.FindAllStringSubmatch(src, -1) {
				suffixes[m[1]] = true
			}
			if m := nsSub.FindStringSubmatch(src); m != nil {
				for _, n := range short.FindAllStringSubmatch(src, -1) {
					names["dialstream_"+m[1]+"_"+n[1]] = true
				}
			}
		}
	}
	for p := range prefixes {
		for s := range suffixes {
			names[p+s] = true
			names[p+"_"+s] = true
		}
	}
	// kprom's client metrics: <namespace>_kafka_<name>.
	for _, svc := range []string{"ingest", "dialer", "notifier"} {
		for _, k := range []string{"produce_bytes_total", "fetch_bytes_total"} {
			names["dialstream_"+svc+"_kafka_"+k] = true
		}
	}
	return func(n string) bool {
		base := n
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			base = strings.TrimSuffix(base, suf)
		}
		return names[n] || names[base]
	}
}

// Every alert says how bad it is, what happened, and which dashboard to
// open; every alert has a promtool unit test.
func TestRulesDocumentedAndUnitTested(t *testing.T) {
	tests := ""
	files, _ := filepath.Glob(filepath.Join(testbin.RepoRoot(t), "deploy", "prometheus", "tests", "*.yaml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tests += string(b)
	}
	dashboards := map[string]bool{}
	for _, d := range loadDashboards(t) {
		dashboards[d.UID] = true
	}
	alerts := 0
	for _, r := range loadRules(t) {
		if strings.Contains(r.Expr, "unless") || strings.Contains(r.Expr, "absent") {
			t.Errorf("%s: unless/absent cannot be checked for series by the Prometheus test (see withBool)", r.name())
		}
		if r.Alert == "" {
			continue
		}
		alerts++
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("%s: severity %q", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "dashboard"} {
			if r.Annotations[a] == "" {
				t.Errorf("%s: no %s annotation", r.Alert, a)
			}
		}
		if !dashboards[r.Annotations["dashboard"]] {
			t.Errorf("%s: dashboard %q does not exist", r.Alert, r.Annotations["dashboard"])
		}
		if !strings.Contains(tests, "alertname: "+r.Alert+"\n") {
			t.Errorf("%s: no promtool unit test in deploy/prometheus/tests", r.Alert)
		}
	}
	want := []string{"DialstreamServiceDown", "DialstreamDialerConsumerLagGrowing", "DialstreamNotifierConsumerLagGrowing",
		"DialstreamRequestsDLQGrowing", "DialstreamWebhookDLQGrowing", "DialstreamWebhookSuccessRateLow",
		"DialstreamAnswerRateCollapsing", "DialstreamLiveKitAPIErrors", "DialstreamCallsStuck"}
	have := map[string]bool{}
	for _, r := range loadRules(t) {
		have[r.Alert] = true
	}
	for _, a := range want {
		if !have[a] {
			t.Errorf("alert %s missing", a)
		}
	}
}

// promtool accepts the rules and the example configuration, and the rules'
// unit tests pass.
func TestPromtool(t *testing.T) {
	promtool := needTool(t, "promtool", "PROMTOOL_BIN", "scripts/install-prometheus.sh")
	root := testbin.RepoRoot(t)
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(promtool, args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run(append([]string{"check", "rules"}, ruleFiles(t)...)...)
	tests, _ := filepath.Glob(filepath.Join(root, "deploy", "prometheus", "tests", "*.yaml"))
	if len(tests) == 0 {
		t.Fatal("no promtool tests under deploy/prometheus/tests")
	}
	run(append([]string{"test", "rules"}, tests...)...)
	run("check", "config", filepath.Join(root, "deploy", "prometheus", "prometheus.yml"))
}
