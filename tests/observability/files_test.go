package observability

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/dialstream/dialstream/tests/testbin"
)

// needTool returns the path of a tool the test needs: $env when set, else
// name in PATH. Missing, it skips the test on a developer machine and fails
// it under CI=true, so CI can never go green by skipping the observability
// tier.
func needTool(t *testing.T, name, env, install string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found ($%s, PATH); install it with %s", name, env, install)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", msg)
	}
	t.Skipf("skipping: %s", msg)
	return ""
}

// dashboard is the part of a Grafana dashboard JSON the tests read.
type dashboard struct {
	file       string
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []templateVar `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource *datasourceRef  `json:"datasource"`
	GridPos    map[string]int  `json:"gridPos"`
	Targets    []target        `json:"targets"`
	Panels     []panel         `json:"panels"` // collapsed rows
	FieldCfg   json.RawMessage `json:"fieldConfig"`
}

type target struct {
	Datasource *datasourceRef `json:"datasource"`
	Expr       string         `json:"expr"`
	RefID      string         `json:"refId"`
	Legend     string         `json:"legendFormat"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type templateVar struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource *datasourceRef  `json:"datasource"`
	AllValue   string          `json:"allValue"`
	Current    struct {
		Value any `json:"value"`
	} `json:"current"`
}

func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testbin.RepoRoot(t), "deploy", "grafana", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards under deploy/grafana/dashboards (%v)", err)
	}
	var out []dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		d.file = filepath.Base(f)
		out = append(out, d)
	}
	return out
}

// allPanels flattens rows (collapsed rows keep their panels inside).
func (d dashboard) allPanels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// query is one PromQL expression the operators' files run, and where from.
type query struct {
	where string
	expr  string
}

// Values for Grafana's built-in and the dashboards' own variables when a
// dashboard query is sent to Prometheus directly: 1m is 4 scrapes of the
// test's 1s interval many times over, and the "All" value of a multi-value
// variable is its allValue regex.
var grafanaVars = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "1m",
	"__range":         "5m",
}

var varRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

// expand substitutes the variables of a dashboard query; unknown names an
// unknown variable.
func expand(expr string, vars map[string]string) (string, []string) {
	var unknown []string
	out := varRef.ReplaceAllStringFunc(expr, func(m string) string {
		name := varRef.FindStringSubmatch(m)[1]
		if v, ok := vars[name]; ok {
			return v
		}
		if v, ok := grafanaVars[name]; ok {
			return v
		}
		unknown = append(unknown, name)
		return m
	})
	return out, unknown
}

// dashboardQueries is every panel target and every query variable of every
// dashboard, variables expanded.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	var out []query
	for _, d := range loadDashboards(t) {
		vars := map[string]string{}
		for _, v := range d.Templating.List {
			if v.Type == "query" {
				vars[v.Name] = v.AllValue
			}
		}
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			// label_values(selector, label) asks for the series of selector.
			m := regexp.MustCompile(`^label_values\((.+),\s*[A-Za-z_]+\)$`).FindStringSubmatch(strings.TrimSpace(v.Definition))
			if m == nil {
				t.Errorf("%s: variable %s: only label_values(selector, label) queries are understood, got %q", d.file, v.Name, v.Definition)
				continue
			}
			out = append(out, query{where: fmt.Sprintf("%s variable %s", d.file, v.Name), expr: m[1]})
		}
		for _, p := range d.allPanels() {
			for _, tg := range p.Targets {
				e, unknown := expand(tg.Expr, vars)
				if len(unknown) > 0 {
					t.Errorf("%s panel %q: unknown variables %v", d.file, p.Title, unknown)
				}
				out = append(out, query{where: fmt.Sprintf("%s panel %q %s", d.file, p.Title, tg.RefID), expr: e})
			}
		}
	}
	return out
}

// ruleFile is a Prometheus rule file.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Record      string            `yaml:"record"`
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func (r rule) name() string { return r.Alert + r.Record }

func ruleFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testbin.RepoRoot(t), "deploy", "prometheus", "rules", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files under deploy/prometheus/rules (%v)", err)
	}
	return files
}

func loadRules(t *testing.T) []rule {
	t.Helper()
	var out []rule
	for _, f := range ruleFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var rf ruleFile
		if err := yaml.Unmarshal(b, &rf); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range rf.Groups {
			out = append(out, g.Rules...)
		}
	}
	return out
}

// withBool rewrites every comparison of a PromQL expression outside label
// matchers, strings and range brackets into its bool form (`x > 0` becomes
// `x > bool 0`). A filtering comparison returns no series while its
// condition is false, which is what a healthy system shows for an alert; the
// bool form returns every series the comparison looks at, 0 or 1, so "it
// returns series" then proves the metrics under the alert exist, with the
// labels the alert's `and`s match on. Exprs must not use `unless` or
// absent(): their healthy answer is empty whatever the metrics.
func withBool(expr string) string {
	var b strings.Builder
	braces, brackets := 0, 0
	var quote byte
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		if quote != 0 {
			b.WriteByte(c)
			if c == '\\' && quote != '`' && i+1 < len(expr) {
				i++
				b.WriteByte(expr[i])
			} else if c == quote {
				quote = 0
			}
			continue
		}
		switch c {
		case '"', '\'', '`':
			quote = c
		case '{':
			braces++
		case '}':
			braces--
		case '[':
			brackets++
		case ']':
			brackets--
		}
		if braces > 0 || brackets > 0 || quote != 0 {
			b.WriteByte(c)
			continue
		}
		op := ""
		switch {
		case strings.HasPrefix(expr[i:], "=="), strings.HasPrefix(expr[i:], "!="),
			strings.HasPrefix(expr[i:], ">="), strings.HasPrefix(expr[i:], "<="):
			op = expr[i : i+2]
		case c == '>' || c == '<':
			op = string(c)
		}
		if op == "" {
			b.WriteByte(c)
			continue
		}
		b.WriteString(op)
		i += len(op) - 1
		rest := strings.TrimLeft(expr[i+1:], " \t\n")
		if !strings.HasPrefix(rest, "bool ") && !strings.HasPrefix(rest, "bool\n") {
			b.WriteString(" bool")
		}
	}
	return b.String()
}

func TestWithBool(t *testing.T) {
	for in, want := range map[string]string{
		`up{job=~"a|b"} == 0`:                                     `up{job=~"a|b"} == bool 0`,
		`x{a!="b"} > 1 and y >= 2`:                                `x{a!="b"} > bool 1 and y >= bool 2`,
		`a / b < 0.5 * avg_over_time(c[1d])`:                      `a / b < bool 0.5 * avg_over_time(c[1d])`,
		`x != bool 3`:                                             `x != bool 3`,
		`label_replace(x, "d", "$1", "s", "(a>b)") <= 4`:          `label_replace(x, "d", "$1", "s", "(a>b)") <= bool 4`,
		"sum(rate(x[5m]))\n/\nsum(rate(y[5m])) > 0.1\nand\nz > 3": "sum(rate(x[5m]))\n/\nsum(rate(y[5m])) > bool 0.1\nand\nz > bool 3",
	} {
		if got := withBool(in); got != want {
			t.Errorf("withBool(%q) = %q, want %q", in, got, want)
		}
	}
}
