package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/dialstream/dialstream/internal/callrecords"
	"github.com/dialstream/dialstream/internal/envconfig"
	"github.com/dialstream/dialstream/recorder"
)

func init() {
	commands["records"] = command{"manage the call records: purge --workspace ID (DATABASE_URL)", runRecords, false}
}

const recordsUsage = `usage: dialstream records purge --workspace ID

  purge   delete every call record of one workspace (its calls, their events
          and delivery attempts) from DATABASE_URL, in batches, while the
          recorder and ingest keep running: for a data-deletion request.
          Kafka keeps its copies until the topics' retention; purge again
          after a recorder re-reads them (see recorder.Purge).`

func runRecords(ctx context.Context, args []string) error {
	return recordsMain(ctx, args, envconfig.New(), os.Stdout)
}

func recordsMain(ctx context.Context, args []string, l *envconfig.Loader, out io.Writer) error {
	if len(args) == 0 || args[0] != "purge" {
		return errors.New(recordsUsage)
	}
	fs := flag.NewFlagSet("records purge", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ws := fs.String("workspace", "", "the workspace whose records are deleted")
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("records purge: %w\n%s", err, recordsUsage)
	}
	if *ws == "" || fs.NArg() > 0 {
		return errors.New(recordsUsage)
	}
	cfg := callrecords.LoadConfig(l)
	log := loadLogger(l, "json")
	if cfg.URL == "" {
		l.Fail("DATABASE_URL", "required (the call records database: postgres://user:pass@host/db or sqlite://path)")
	}
	if err := l.Err(); err != nil {
		return err
	}
	n, err := recorder.Purge(ctx, cfg.URL, *ws, log)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "purged workspace %s: %d calls deleted\n", *ws, n)
	return err
}
