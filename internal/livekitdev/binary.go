package livekitdev

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BinaryEnv names the environment variable that points at a livekit-server
// binary; it wins over every other place FindBinary looks.
const BinaryEnv = "LIVEKIT_SERVER_BIN"

// ErrBinaryNotFound is returned (wrapped) by FindBinary when no livekit-server
// binary exists anywhere it looks. Tests use it to tell "not installed" from
// "installed but broken".
var ErrBinaryNotFound = errors.New("livekit-server binary not found (run scripts/install-livekit.sh or set " + BinaryEnv + ")")

// FindBinary locates livekit-server: $LIVEKIT_SERVER_BIN, else
// <repo>/.cache/bin/livekit-server (the repo root is the nearest directory
// above the working directory holding go.mod; that is where
// scripts/install-livekit.sh puts it), else livekit-server on PATH.
//
// It checks that the file exists, not which version it is: the install
// script pins the version, and a developer pointing LIVEKIT_SERVER_BIN
// elsewhere is choosing another one on purpose.
func FindBinary() (string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("livekitdev: %s=%q: %w", BinaryEnv, p, ErrBinaryNotFound)
	}
	if root, ok := repoRoot(); ok {
		p := filepath.Join(root, ".cache", "bin", "livekit-server")
		if isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("livekit-server"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("livekitdev: %w", ErrBinaryNotFound)
}

// repoRoot walks up from the working directory to the first directory that
// holds a go.mod.
func repoRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if st, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil && !st.IsDir() {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode().Perm()&0o111 != 0
}
