package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A command configured by the environment alone refuses arguments instead
// of starting with settings the user did not mean; -h prints its summary
// and starts nothing.
func TestEnvOnlyCommandsRefuseArguments(t *testing.T) {
	data := filepath.Join(t.TempDir(), "kafka")
	t.Setenv("BROKER_DATA_DIR", data)
	t.Setenv("BROKER_LISTEN", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if err := run(ctx, []string{"broker", "-h"}); err != nil {
		t.Fatalf("broker -h: %v", err)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("broker -h started a broker: %s exists (%v)", data, err)
	}
	for _, args := range [][]string{{"broker", "--listen", ":1"}, {"ingest", "extra"}, {"dev", "-v"}} {
		err := run(ctx, args)
		if err == nil || !strings.Contains(err.Error(), "takes no arguments") {
			t.Errorf("run %q: %v; want a 'takes no arguments' error", args, err)
		}
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("a refused command started a broker: %s exists", data)
	}
}
