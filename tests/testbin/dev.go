package testbin

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/livekitdev"
)

// Dev is a running `dialstream dev`: the embedded broker, a real
// livekit-server, the phone simulator, the three services and the webhook
// inspector, in one child process.
type Dev struct {
	// Dir is its working directory: a copy of deploy/dev/registry.yaml (the
	// default DIALSTREAM_REGISTRY), its data in .data, its log in
	// dialstream-dev.log.
	Dir string
	// Loopback host:port of each service's HTTP server and of the inspector.
	Ingest, Dialer, Notifier, Inspector string
	// Agent is the reference agent's ops address, LiveKit its server's URL
	// (http://127.0.0.1:<port>; dev mode's key pair is livekitdev's default).
	Agent, LiveKit string
}

// inherited are the only variables of the test's environment the child
// sees. Everything else is set explicitly, so a KAFKA_BROKERS or LIVEKIT_URL
// in the developer's shell cannot point dev mode elsewhere.
var inherited = []string{"PATH", "HOME", "TMPDIR"}

// StartDev starts `dialstream dev` in a fresh directory, on free loopback
// ports, with the livekit-server livekitdev finds (the test skips without
// one, or fails under CI=true), and returns once ingest, dialer and notifier
// answer /readyz with 200. env adds or overrides settings
// (BROKER_SYNC_WRITES, LOG_LEVEL, ...). When the test ends, dev mode is sent
// SIGTERM and must exit cleanly within 45 s; the end of its log is shown
// when the test failed.
func StartDev(t testing.TB, env map[string]string) *Dev {
	t.Helper()
	lk := livekitdev.BinaryT(t)
	bin := Binary(t)
	d := &Dev{Dir: t.TempDir()}
	reg, err := os.ReadFile(filepath.Join(RepoRoot(t), "deploy", "dev", "registry.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(d.Dir, "deploy", "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Dir, "deploy", "dev", "registry.yaml"), reg, 0o600); err != nil {
		t.Fatal(err)
	}

	settings := map[string]string{
		"INGEST_HTTP_ADDR":    FreeAddr(t),
		"DIALER_HTTP_ADDR":    FreeAddr(t),
		"NOTIFIER_HTTP_ADDR":  FreeAddr(t),
		"RECORDER_HTTP_ADDR":  FreeAddr(t),
		"SCHEDULER_HTTP_ADDR": FreeAddr(t),
		"DEV_INSPECTOR_ADDR":  FreeAddr(t),
		"PHONESIM_HTTP_ADDR":  FreeAddr(t),
		"BROKER_LISTEN":       FreeAddr(t),
		"AGENT_HTTP_ADDR":     FreeAddr(t),
		"DEV_LIVEKIT_PORT":    "0",
		"LIVEKIT_SERVER_BIN":  lk,
		"LOG_FORMAT":          "text",
	}
	maps.Copy(settings, env)
	d.Ingest, d.Dialer, d.Notifier, d.Inspector, d.Agent = settings["INGEST_HTTP_ADDR"], settings["DIALER_HTTP_ADDR"],
		settings["NOTIFIER_HTTP_ADDR"], settings["DEV_INSPECTOR_ADDR"], settings["AGENT_HTTP_ADDR"]
	if p := settings["DEV_LIVEKIT_PORT"]; p != "0" {
		d.LiveKit = "http://127.0.0.1:" + p
	}
	for _, k := range inherited {
		if v, ok := os.LookupEnv(k); ok {
			settings[k] = v
		}
	}

	cmd := exec.Command(bin, "dev")
	cmd.Dir = d.Dir
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		cmd.Env = append(cmd.Env, k+"="+settings[k])
	}
	StartProcess(t, "dialstream-dev", cmd).WaitReady(t, 2*time.Minute,
		"http://"+d.Ingest+"/readyz", "http://"+d.Dialer+"/readyz", "http://"+d.Notifier+"/readyz", "http://"+d.Agent+"/readyz")
	return d
}
