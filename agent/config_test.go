package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/envconfig"
)

func TestLoadConfig(t *testing.T) {
	l := envconfig.FromMap(map[string]string{
		"LIVEKIT_URL": "http://127.0.0.1:7880", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s",
		"AGENT_NAMES": "dialstream-demo-agent, dialstream-other-agent", "AGENT_MAX_JOBS": "8", "AGENT_LISTEN_TIMEOUT": "2s",
	})
	c := LoadConfig(l)
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.AgentNames) != 2 || c.AgentNames[1] != "dialstream-other-agent" || c.MaxJobs != 8 ||
		c.ListenTimeout != 2*time.Second || c.HTTPAddr != DefaultHTTPAddr || c.MachineSpeech != DefaultMachineSpeech {
		t.Fatalf("config %+v", c)
	}
}

// Every problem is reported at once, each under its variable's name.
func TestValidateReportsEveryProblem(t *testing.T) {
	err := Config{LiveKitURL: "ftp://x", AgentNames: []string{"ok", "bad name", "ok"}, ListenTimeout: -time.Second}.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"LIVEKIT_URL: must be", "LIVEKIT_API_KEY: required", "LIVEKIT_API_SECRET: required",
		`AGENT_NAMES: "bad name" is not`, `AGENT_NAMES: "ok" is listed twice`, "AGENT_LISTEN_TIMEOUT: must not be negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q missing from:\n%v", want, err)
		}
	}
	if err := (Config{LiveKitURL: "wss://lk.example.com", APIKey: "k", APISecret: "s"}).Validate(); err == nil ||
		!strings.Contains(err.Error(), "AGENT_NAMES: required") {
		t.Errorf("no agent names: %v", err)
	}
}

func TestAgentURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:7880":       "ws://127.0.0.1:7880/agent",
		"https://lk.example.com/":     "wss://lk.example.com/agent",
		"wss://lk.example.com/prefix": "wss://lk.example.com/prefix/agent",
		"ws://127.0.0.1:7880":         "ws://127.0.0.1:7880/agent",
	} {
		if got, err := agentURL(in); err != nil || got != want {
			t.Errorf("agentURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
