// Package dbtest gives tests a fresh call records database on each engine:
// a SQLite file in the test's temporary directory, or a database of its
// own on a real PostgreSQL server.
//
// The PostgreSQL server is DATABASE_URL_POSTGRES_TEST when set (a URL of a
// role allowed to CREATE DATABASE; scripts/test.sh starts one for the whole
// run), or else a throwaway cluster this package starts on first use with
// Debian's initdb and postgres (/usr/lib/postgresql/<version>/bin; installed
// by scripts/install-postgres.sh) in a temporary directory, on a free
// loopback port, as the user postgres (or nobody) when the tests run as
// root, since PostgreSQL refuses to run as root. A package that uses it
// calls Main from its TestMain, which stops that cluster after the tests.
//
// No PostgreSQL at all fails the test, it does not skip it: a skipped
// engine must not pass as a tested one.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/callrecords"
)

// Engines are the engines every store test runs against.
var Engines = []callrecords.Engine{callrecords.SQLite, callrecords.Postgres}

// EnvPostgres names a PostgreSQL server to use instead of starting one.
const EnvPostgres = "DATABASE_URL_POSTGRES_TEST"

var (
	mu      sync.Mutex
	server  string // admin URL of the server in use
	cluster *pgCluster
	failed  error
)

// Main runs the tests and then stops the cluster they started, if any:
// func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	mu.Lock()
	defer mu.Unlock()
	if cluster != nil {
		cluster.stop()
		cluster = nil
	}
	return code
}

// URL returns the DATABASE_URL of a new, empty database on engine, dropped
// (PostgreSQL) or removed (SQLite) when the test ends.
func URL(t testing.TB, engine callrecords.Engine) string {
	t.Helper()
	switch engine {
	case callrecords.SQLite:
		return "sqlite://" + filepath.Join(t.TempDir(), "records.db")
	case callrecords.Postgres:
		admin, err := postgresServer()
		if err != nil {
			t.Fatalf("dbtest: no PostgreSQL server: %v", err)
		}
		return newDatabase(t, admin)
	}
	t.Fatalf("dbtest: unknown engine %q", engine)
	return ""
}

// Open opens a new, empty store on engine, closed when the test ends.
func Open(t testing.TB, engine callrecords.Engine, opts callrecords.Options) *callrecords.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := callrecords.Open(ctx, URL(t, engine), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// ForEach runs fn as a subtest per engine, each with a new store.
func ForEach(t *testing.T, opts callrecords.Options, fn func(t *testing.T, s *callrecords.Store)) {
	for _, e := range Engines {
		t.Run(string(e), func(t *testing.T) { fn(t, Open(t, e, opts)) })
	}
}

func postgresServer() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if server != "" || failed != nil {
		return server, failed
	}
	if u := os.Getenv(EnvPostgres); u != "" {
		server = u
		return server, nil
	}
	c, err := startCluster()
	if err != nil {
		failed = fmt.Errorf("%s is not set and a throwaway cluster did not start: %w (run scripts/install-postgres.sh)", EnvPostgres, err)
		return "", failed
	}
	cluster, server = c, c.url
	return server, nil
}

// newDatabase creates a database named for the test on the admin URL's
// server and returns its URL.
func newDatabase(t testing.TB, admin string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "dialstream_test_" + hex.EncodeToString(b[:])
	if _, err := db.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("dbtest: create database on %s: %v", redacted(admin), err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sql.Open("pgx", admin)
		if err != nil {
			return
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Logf("dbtest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func redacted(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

// pgCluster is a throwaway PostgreSQL server.
type pgCluster struct {
	dir string
	url string
	cmd *exec.Cmd
}

// binDir finds the newest of Debian's PostgreSQL versions.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var ok []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			return filepath.Dir(p), nil
		}
		return "", errors.New("no initdb under /usr/lib/postgresql/*/bin or on PATH")
	}
	slices.SortFunc(ok, func(a, b string) int { return version(a) - version(b) })
	return ok[len(ok)-1], nil
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// runAs is the user postgres runs as: the current one, unless that is root.
func runAs() (uid, gid int, err error) {
	if os.Geteuid() != 0 {
		return -1, -1, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return uid, gid, nil
	}
	return 0, 0, errors.New("running as root and neither user postgres nor nobody exists")
}

func startCluster() (*pgCluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	uid, gid, err := runAs()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "dialstream-pg-")
	if err != nil {
		return nil, err
	}
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync")
	setProcAttr(initdb, uid, gid)
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// Durability is not what these tests are about: fsync off makes the
	// cluster fast on a shared CI disk. The recorder's crash test kills the
	// recorder, not PostgreSQL.
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=128MB")
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	setProcAttr(cmd, uid, gid)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	c := &pgCluster{dir: dir, cmd: cmd, url: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)}
	if err := c.waitReady(30 * time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
		c.stop()
		return nil, fmt.Errorf("%w; its log:\n%s", err, log)
	}
	return c, nil
}

func (c *pgCluster) waitReady(d time.Duration) error {
	db, err := sql.Open("pgx", c.url)
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after %s: %w", d, err)
		}
		time.Sleep(50 * time.Millisecond) // startup poll, before any test runs
	}
}

// stop shuts the server down (fast mode: SIGINT) and removes its files.
func (c *pgCluster) stop() {
	if c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = c.cmd.Process.Kill()
			<-done
		}
	}
	_ = os.RemoveAll(c.dir)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Describe says which PostgreSQL the tests use, for a test log line.
func Describe() string {
	mu.Lock()
	defer mu.Unlock()
	switch {
	case cluster != nil:
		return "throwaway cluster in " + cluster.dir
	case server != "":
		return strings.TrimSpace(redacted(server))
	}
	return "none yet"
}
