package registry

import (
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/compliance"
)

const complianceDoc = `
workspaces:
  - id: ws_default
  - id: ws_eu
    compliance:
      home_country: LV
      allowed_countries: [LV, EE, LT]
      allow_number_types: [premium_rate]
      calling_hours: {start: "09:00", end: "20:00", days: [mon, tue, wed, thu, fri], holidays: ["2026-11-18"]}
      max_attempts_per_day: 2
      max_attempts_per_week: unlimited
agents:
  - id: agent_eu
    workspace: ws_eu
    livekit_agent_name: eu
    sip_trunk_id: ST_1
    calling_hours: {start: "00:00", end: "24:00"}
  - id: agent_plain
    workspace: ws_eu
    livekit_agent_name: eu
    sip_trunk_id: ST_1
`

func TestCompliancePolicies(t *testing.T) {
	r, err := Parse([]byte(complianceDoc), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	p, ok := r.Policy("ws_default", "")
	if !ok || p.Caps != compliance.DefaultCaps() || strings.Join(p.Destinations.Countries, ",") != "US" || p.Hours.String() != "08:00-21:00 every day" {
		t.Fatalf("a workspace that sets nothing: %+v", p)
	}
	p, _ = r.Policy("ws_eu", "agent_plain")
	if p.Caps != (compliance.Caps{PerDay: 2, PerWeek: compliance.Unlimited}) || strings.Join(p.Destinations.Countries, ",") != "LV,EE,LT" ||
		p.Hours.String() != "09:00-20:00 mon,tue,wed,thu,fri except 1 holidays" || len(p.Destinations.AllowTypes) != 1 {
		t.Fatalf("ws_eu through agent_plain: %+v", p)
	}
	// The agent's own hours replace the workspace's, and only its.
	p, _ = r.Policy("ws_eu", "agent_eu")
	if ok, _ := p.Hours.Allowed("+37167123456", time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)); !ok {
		t.Fatalf("agent_eu on a Saturday night: %s", p.Hours)
	}
	if _, ok := r.Policy("ws_default", "agent_eu"); ok {
		t.Fatal("another workspace's agent resolves a policy")
	}
	if _, ok := r.Policy("ws_nope", ""); ok {
		t.Fatal("an unknown workspace resolves a policy")
	}
}

func TestComplianceProblemsAllReported(t *testing.T) {
	bad := `
workspaces:
  - id: ws_a
    compliance:
      home_country: XX
      allow_number_types: [mobile]
      calling_hours: {start: "25:00", days: [someday]}
      max_attempts_per_day: 0
agents:
  - id: agent_a
    workspace: ws_a
    livekit_agent_name: a
    sip_trunk_id: ST_1
    calling_hours: {end: "7pm"}
`
	_, err := Parse([]byte(bad), func(string) string { return "" })
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"workspace ws_a: compliance.home_country", "workspace ws_a: compliance.allow_number_types",
		"workspace ws_a: compliance.calling_hours.start", "workspace ws_a: compliance.calling_hours.days",
		"workspace ws_a: compliance.max_attempts_per_day", "agent agent_a: calling_hours.end"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	_, err = Parse([]byte("workspaces:\n  - id: ws\n    compliance: {calling_hourz: {}}\n"), func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "calling_hourz") {
		t.Fatalf("unknown compliance key: %v", err)
	}
}
