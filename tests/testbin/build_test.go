package testbin

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The binary is built once per process and is the real command: `help`
// lists the subcommands the integration packages start.
func TestBinaryBuiltOnce(t *testing.T) {
	bin := Binary(t)
	first, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if again := Binary(t); again != bin {
		t.Fatalf("second Binary: %s, first %s", again, bin)
	}
	if now, err := os.Stat(bin); err != nil || !os.SameFile(first, now) || !now.ModTime().Equal(first.ModTime()) {
		t.Fatalf("the second call rebuilt the binary (%v)", err)
	}
	out, err := exec.Command(bin, "help").CombinedOutput()
	if err != nil {
		t.Fatalf("dialstream help: %v\n%s", err, out)
	}
	for _, cmd := range []string{"dev", "ingest", "dialer", "notifier", "receiver"} {
		if !strings.Contains(string(out), "\n  "+cmd+" ") {
			t.Errorf("help does not list %s:\n%s", cmd, out)
		}
	}
}
