package registry

import (
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/compliance"
)

// The registry that dev mode and the docs ship must load, and the documented
// demo keys must open their workspaces.
func TestDevRegistryLoads(t *testing.T) {
	t.Setenv("DIALSTREAM_DEV_SIP_TRUNK_ID", "ST_test")
	r, err := Load("../../deploy/dev/registry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for key, ws := range map[string]string{"dsk_demo_local": "ws_demo", "dsk_other_local": "ws_other"} {
		if w, ok := r.Authenticate(key); !ok || w.ID != ws {
			t.Errorf("%s does not open %s", key, ws)
		}
	}
	if _, ok := r.Agent("ws_demo", "a1b2c3d4e5f6a7b8c9d0e1f2"); !ok {
		t.Error("demo agent missing")
	}
}

// `make run` and the README's curl work at any hour and any number of times:
// the dev workspaces call the test range with all-day hours and no caps.
func TestDevRegistryCallsTestRangeAtAnyHour(t *testing.T) {
	t.Setenv("DIALSTREAM_DEV_SIP_TRUNK_ID", "ST_test")
	r, err := Load("../../deploy/dev/registry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, ws := range []string{"ws_demo", "ws_other"} {
		p, ok := r.Policy(ws, "")
		if !ok {
			t.Fatalf("%s has no policy", ws)
		}
		n, err := compliance.Classify("+15550100001")
		if err != nil {
			t.Fatal(err)
		}
		if ok, why := p.Destinations.Allowed(n); !ok {
			t.Errorf("%s refuses the test range: %s", ws, why)
		}
		for h := range 24 {
			at := time.Date(2026, 3, 8, h, 30, 0, 0, time.UTC)
			if ok, _ := p.Hours.Allowed("+15550100001", at); !ok {
				t.Errorf("%s refuses the test range at %s", ws, at)
			}
		}
		if p.Caps != (compliance.Caps{PerDay: compliance.Unlimited, PerWeek: compliance.Unlimited}) {
			t.Errorf("%s caps %+v", ws, p.Caps)
		}
		// Still no premium rate in dev.
		prem, _ := compliance.Classify("+19005550123")
		if ok, _ := p.Destinations.Allowed(prem); ok {
			t.Errorf("%s allows a premium-rate number", ws)
		}
	}
}
