package callrecords

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // registers "sqlite"
)

// Engine names the database behind a Store.
type Engine string

const (
	Postgres Engine = "postgres"
	SQLite   Engine = "sqlite"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationsTable records the applied migrations (goose's history table),
// named so that it says whose it is in a database shared with others.
const migrationsTable = "callrecords_migrations"

// Options tune a Store. The zero value is usable.
type Options struct {
	// Retention is CALL_RECORDS_RETENTION: a write never creates a call
	// requested longer ago than this (it would be deleted at the next
	// retention run, and a replay of old Kafka records must not bring back
	// what was deleted). Zero: no bound.
	Retention time.Duration
	// Logger receives the migrations' lines; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Store is the call records database. Every method is safe for concurrent
// use; writes of several processes (recorder replicas, ingest replicas) are
// safe too: every write is one statement or one transaction whose
// statements each decide on the row as it is (see write.go).
type Store struct {
	db     *sql.DB
	engine Engine
	opts   Options
	// prepared holds the statements the recorder runs for every record
	// (write.go, hotWrites), prepared once when the Store opens: a
	// transaction takes its connection's copy (Tx.StmtContext) instead of
	// preparing them again. Read-only after Open.
	prepared map[string]*sql.Stmt
}

// Open connects to DATABASE_URL and brings its schema up to date:
//
//	postgres://user:pass@host:5432/db?sslmode=disable   (or postgresql://)
//	sqlite://.data/records.db                           (a path, relative or absolute: sqlite:///var/lib/x.db)
//
// Every process that opens the database migrates it; PostgreSQL serializes
// them with an advisory lock, and the SQLite schema is written to be
// applied twice harmlessly.
func Open(ctx context.Context, databaseURL string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	engine, dsn, err := parseURL(databaseURL, true)
	if err != nil {
		return nil, err
	}
	s := &Store{engine: engine, opts: opts}
	switch engine {
	case Postgres:
		s.db, err = sql.Open("pgx", dsn)
		if err == nil {
			s.db.SetMaxOpenConns(16)
			s.db.SetMaxIdleConns(16)
			s.db.SetConnMaxIdleTime(5 * time.Minute)
		}
	case SQLite:
		s.db, err = sql.Open("sqlite", dsn)
		if err == nil {
			// One file, one writer at a time (IMMEDIATE transactions queue
			// on busy_timeout); WAL lets the readers go on meanwhile.
			s.db.SetMaxOpenConns(8)
			s.db.SetMaxIdleConns(8)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("callrecords: open %s: %w", engine, err)
	}
	migrate := func() error { return s.migrate(ctx) }
	if engine == SQLite {
		migrate = func() error { return migrateSQLite(ctx, dsn, s.migrate) }
	}
	if err := migrate(); err != nil {
		_ = s.db.Close()
		return nil, err
	}
	if err := s.prepareWrites(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// sqliteMigrating serializes the migrations of one SQLite file within the
// process (DSN -> *sync.Mutex): `dialstream dev` opens the file from ingest
// and from the recorder at the same moment.
var sqliteMigrating sync.Map

// busyRetryFor bounds how long Open tries again when SQLite answers
// SQLITE_BUSY to a migration anyway.
const busyRetryFor = 30 * time.Second

// migrateSQLite runs migrate once at a time per file in this process, and
// again while it fails with SQLITE_BUSY: SQLite can answer "database is
// locked" without waiting on busy_timeout (a connection switching a new file
// to WAL, or upgrading a read to a write, while another holds it), which made
// `dialstream dev` fail at start now and then. Another process on the same
// file is covered by the retry; the migrations are written to be applied
// twice harmlessly.
func migrateSQLite(ctx context.Context, dsn string, migrate func(context.Context) error) error {
	mu, _ := sqliteMigrating.LoadOrStore(dsn, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	return retryBusy(ctx, busyRetryFor, func() error { return migrate(ctx) })
}

// retryBusy calls fn until it returns nil or an error other than SQLite's
// busy or locked, waiting 50 ms and then twice as long each time (at most
// 1 s), for at most d.
func retryBusy(ctx context.Context, d time.Duration, fn func() error) error {
	deadline := time.Now().Add(d)
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		err := fn()
		if err == nil || !sqliteBusy(err) || time.Now().Add(delay).After(deadline) {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// sqliteBusy reports SQLITE_BUSY and SQLITE_LOCKED, however wrapped (goose
// wraps the driver's error in its own words).
func sqliteBusy(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "SQLITE_LOCKED") || strings.Contains(msg, "database is locked")
}

// parseURL turns DATABASE_URL into a driver and its DSN; mkdir creates a
// SQLite file's directory.
func parseURL(raw string, mkdir bool) (Engine, string, error) {
	switch {
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := url.Parse(raw); err != nil {
			return "", "", fmt.Errorf("callrecords: DATABASE_URL is not a valid URL: %w", errors.Unwrap(err))
		}
		return Postgres, raw, nil
	case strings.HasPrefix(raw, "sqlite://"):
		path := strings.TrimPrefix(raw, "sqlite://")
		if path == "" || strings.ContainsAny(path, "?#") || path == ":memory:" {
			return "", "", fmt.Errorf("callrecords: DATABASE_URL %q: want sqlite://<file path> (a file: the recorder and ingest share it)", raw)
		}
		if dir := filepath.Dir(path); mkdir && dir != "." {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return "", "", fmt.Errorf("callrecords: create the directory of %s: %w", path, err)
			}
		}
		// synchronous=NORMAL in WAL mode loses no committed transaction to a
		// process crash, only the last ones to a power loss; and since the
		// recorder's offsets commit with its rows, those are read again
		// from Kafka: nothing is lost or doubled either way.
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(30000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", "immediate")
		return SQLite, path + "?" + q.Encode(), nil
	}
	return "", "", fmt.Errorf("callrecords: DATABASE_URL must start with postgres://, postgresql:// or sqlite://, got %q", redactURL(raw))
}

// redactURL drops a password from a URL for an error message.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if len(raw) > 16 {
			return raw[:16] + "..."
		}
		return raw
	}
	return u.Redacted()
}

func (s *Store) migrate(ctx context.Context) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	opts := []goose.ProviderOption{goose.WithTableName(migrationsTable), goose.WithSlog(s.opts.Logger), goose.WithDisableGlobalRegistry(true)}
	dialect := goose.DialectSQLite3
	if s.engine == Postgres {
		dialect = goose.DialectPostgres
		// Replicas starting together: one migrates, the others wait for
		// its advisory lock (polling each second, for up to 5 minutes).
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, s.db, sub, opts...)
	if err != nil {
		return fmt.Errorf("callrecords: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("callrecords: migrate %s: %w", s.engine, err)
	}
	return nil
}

// Engine says which database this is.
func (s *Store) Engine() Engine { return s.engine }

// Ping checks that the database answers (a readiness check).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("call records database (%s): %w", s.engine, err)
	}
	return nil
}

// DB is the connection pool, for what this package does not wrap
// (dashboards' queries in tests, benchmarks' size queries).
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the pool.
func (s *Store) Close() error {
	for _, st := range s.prepared {
		_ = st.Close()
	}
	return s.db.Close()
}

// readTx runs fn in a read-only transaction: one snapshot, so a call's row
// and its events agree even while the recorder writes.
func (s *Store) readTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	o := &sql.TxOptions{ReadOnly: true}
	if s.engine == Postgres {
		o.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.db.BeginTx(ctx, o)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}
