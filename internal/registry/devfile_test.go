package registry

import "testing"

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
