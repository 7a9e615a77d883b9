package testbin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// BinaryEnv names a prebuilt dialstream binary to use instead of building
// one, so a CI job can build once for every package.
const BinaryEnv = "DIALSTREAM_BIN"

// repoRoot is the directory of the module's go.mod, as the go command finds
// it from the test's working directory (its package directory).
var repoRoot = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("testbin: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("testbin: not inside the dialstream module")
	}
	return filepath.Dir(gomod), nil
})

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

var built struct {
	sync.Mutex
	path string
}

// Build returns the path of a dialstream binary: $DIALSTREAM_BIN when set,
// else ./cmd/dialstream built the way the release image is (CGO_ENABLED=0,
// -trimpath) into <repo>/.cache/testbin. It builds once per test process;
// later calls return the same path. A failed build is not remembered, so the
// next call tries again.
//
// Test processes of several packages may build at the same time: each builds
// into a directory of its own and renames the result into place, so none
// ever runs a half-written file.
func Build(ctx context.Context) (string, error) {
	built.Lock()
	defer built.Unlock()
	if built.path != "" {
		return built.path, nil
	}
	if p := os.Getenv(BinaryEnv); p != "" {
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode().Perm()&0o111 == 0 {
			return "", fmt.Errorf("testbin: %s=%q is not an executable file", BinaryEnv, p)
		}
		built.path = p
		return p, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	cache := filepath.Join(root, ".cache", "testbin")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("testbin: %w", err)
	}
	tmp, err := os.MkdirTemp(cache, "build-")
	if err != nil {
		return "", fmt.Errorf("testbin: %w", err)
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(tmp, "dialstream"), "./cmd/dialstream")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testbin: go build ./cmd/dialstream: %w\n%s", err, out)
	}
	bin := filepath.Join(cache, "dialstream")
	if err := os.Rename(filepath.Join(tmp, "dialstream"), bin); err != nil {
		return "", fmt.Errorf("testbin: %w", err)
	}
	built.path = bin
	return bin, nil
}

// Binary is Build for a test: a failed build fails it.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := Build(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}
