package registry

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const doc = `
workspaces:
  - id: ws_a
    api_key_sha256: ["%s"]
    webhook_secrets_env: WS_A_SECRETS
    limits: {max_concurrent_calls: 2, calls_per_second: 1}
  - id: ws_b
    api_key_sha256: ["%s"]
agents:
  - id: agent_a
    workspace: ws_a
    livekit_agent_name: sales
    sip_trunk_id: ST_1
    caller_id: "+15550109999"
    ringing_timeout: 20s
    settings: {voice: alloy}
  - id: agent_b
    workspace: ws_b
    livekit_agent_name: support
    sip_trunk_id: ST_2
`

func load(t *testing.T) *Registry {
	t.Helper()
	env := map[string]string{"WS_A_SECRETS": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, whsec_AAAAAAAAAAAAAAAAAAAAAAAA"}
	r, err := Parse([]byte(fmt.Sprintf(doc, HashKey("key_a"), HashKey("key_b"))), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAuthenticateAndIsolation(t *testing.T) {
	r := load(t)
	if w, ok := r.Authenticate("key_a"); !ok || w.ID != "ws_a" {
		t.Fatalf("key_a -> %v %v", w, ok)
	}
	if _, ok := r.Authenticate("key_c"); ok {
		t.Fatal("unknown key authenticated")
	}
	if _, ok := r.Authenticate(""); ok {
		t.Fatal("empty key authenticated")
	}
	if _, ok := r.Agent("ws_a", "agent_b"); ok {
		t.Fatal("agent of another workspace visible")
	}
	a, ok := r.Agent("ws_a", "agent_a")
	if !ok || a.RingingTimeout != 20*time.Second || a.MaxCallDuration != DefaultMaxCallDuration || a.Settings["voice"] != "alloy" {
		t.Fatalf("agent_a %+v", a)
	}
	w, _ := r.Workspace("ws_a")
	if len(w.WebhookSecrets) != 2 || w.Limits.MaxConcurrentCalls != 2 || w.Limits.Burst != 1 {
		t.Fatalf("ws_a %+v", w)
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	bad := `
workspaces:
  - id: "bad id"
    api_key_sha256: ["nothex"]
    webhook_secrets: ["plain"]
agents:
  - id: x
    workspace: nope
    caller_id: "555"
    ringing_timeout: 1ms
`
	_, err := Parse([]byte(bad), func(string) string { return "" })
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"workspaces[0].id", "api_key_sha256", "webhook secrets", `workspace "nope" is not defined`,
		"livekit_agent_name: required", "sip_trunk_id: required", "caller_id", "ringing_timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

// The settings every dispatch of an agent carries are checked against the
// agent.dispatch.v1 contract at load, naming the key.
func TestParseChecksAgentSettings(t *testing.T) {
	y := `
workspaces:
  - id: ws_a
agents:
  - id: a1
    workspace: ws_a
    livekit_agent_name: n
    sip_trunk_id: ST_x
    settings: {on_machine: sometimes, transfer_to: "555", greeting: ""}
`
	_, err := Parse([]byte(y), func(string) string { return "" })
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"settings.on_machine", "settings.transfer_to", "settings.greeting"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	ok := strings.Replace(y, "{on_machine: sometimes, transfer_to: \"555\", greeting: \"\"}", "{on_machine: continue, transfer_to: \"+15550100777\", greeting: \"Hi {firstName}\", voice: alloy}", 1)
	if _, err := Parse([]byte(ok), func(string) string { return "" }); err != nil {
		t.Fatalf("valid settings refused: %v", err)
	}
}

func TestParseRejectsUnknownKeys(t *testing.T) {
	_, err := Parse([]byte("workspaces:\n  - id: ws\n    colour: red\n"), func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("got %v", err)
	}
}

func TestParseExpandsEnvReferences(t *testing.T) {
	doc := "workspaces: [{id: ws}]\nagents:\n  - {id: a, workspace: ws, livekit_agent_name: n, sip_trunk_id: \"${TRUNK}\", settings: {price: \"$5\"}}\n"
	r, err := Parse([]byte(doc), func(k string) string { return map[string]string{"TRUNK": "ST_abc"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := r.Agent("ws", "a"); a.SIPTrunkID != "ST_abc" || a.Settings["price"] != "$5" {
		t.Fatalf("agent %+v", a)
	}
	if _, err := Parse([]byte(doc), func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "TRUNK") {
		t.Fatalf("unset variable not reported: %v", err)
	}
}
