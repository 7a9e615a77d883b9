package notifier

import (
	"testing"

	"github.com/dialstream/dialstream/internal/registry"
)

// Test secrets. secretA is the Standard Webhooks spec's example secret.
const (
	secretA    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	secretBOld = "whsec_b2xkLXNlY3JldC1vZi13b3Jrc3BhY2UtYg=="
	secretBNew = "whsec_bmV3LXNlY3JldC1vZi13b3Jrc3BhY2UtYg=="
)

const testRegistryYAML = `
workspaces:
  - id: ws_a
    webhook_secrets: ["` + secretA + `"]
  - id: ws_b
    webhook_secrets: ["` + secretBNew + `", "` + secretBOld + `"]
    mask_phone_numbers: true
  - id: ws_unsigned
`

func testRegistry(t testing.TB) *registry.Registry {
	t.Helper()
	r, err := registry.Parse([]byte(testRegistryYAML), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return r
}
