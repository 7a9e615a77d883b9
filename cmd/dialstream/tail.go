package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/dialstream/dialstream/ingest"
	"github.com/dialstream/dialstream/internal/backoff"
)

func init() {
	commands["tail"] = command{"print the workspace's call events as they happen: tail [--json] [--campaign ID] (DIALSTREAM_API_URL, DIALSTREAM_API_KEY, DIALSTREAM_WORKSPACE)", runTail, false}
}

const tailUsage = `usage: dialstream tail [--json] [--campaign ID]

Prints the workspace's call events as they happen, one line each: time,
call id, status, outcome, and campaign, contact and attempt for a
campaign's calls. --json prints each event as the API sends it, one JSON
object per line. It follows GET /v1/api/events/stream and reconnects when
the connection drops; events in a gap are not replayed (GET /v1/api/calls
has them). Ctrl-C stops it.

Takes --api-url (DIALSTREAM_API_URL), --workspace (DIALSTREAM_WORKSPACE) and
the key in DIALSTREAM_API_KEY or --api-key-file FILE.`

// tailIdle is how long a stream may send nothing, not even its heartbeat
// (every 15 s), before tail takes the connection for dead and reconnects.
const tailIdle = 45 * time.Second

// tailHeaderTimeout is how long tail waits for a stream's response headers.
const tailHeaderTimeout = 30 * time.Second

func runTail(ctx context.Context, args []string) error {
	return tailMain(ctx, args, os.Getenv, os.Stdout, os.Stderr)
}

func tailMain(ctx context.Context, args []string, getenv func(string) string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	api := addAPIFlags(fs, getenv)
	asJSON := fs.Bool("json", false, "print each event as JSON, one per line")
	campaign := fs.String("campaign", "", "only this campaign's calls")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return fmt.Errorf("tail: bad arguments\n%s", tailUsage)
	}
	cl, err := api.client(getenv)
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	cl.http = streamHTTP(tailHeaderTimeout)
	path := "/v1/api/events/stream"
	if *campaign != "" {
		path += "?" + url.Values{"campaign_id": {*campaign}}.Encode()
	}
	t := tailer{cl: cl, path: path, out: out, errOut: errOut, json: *asJSON, idle: tailIdle}
	return t.run(ctx)
}

// streamHTTP is tail's HTTP client. The stream's answer is its headers at
// once; a server that accepts the connection and never answers within
// headerTimeout is reconnected to, not waited on for ever (the idle timer
// starts only once the headers came).
func streamHTTP(headerTimeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = headerTimeout
	return &http.Client{Transport: tr}
}

type tailer struct {
	cl          *apiClient
	path        string
	out, errOut io.Writer
	json        bool
	idle        time.Duration
}

// run follows the stream until ctx ends (nil) or the API refuses it for
// good (a 4xx but 429).
func (t tailer) run(ctx context.Context) error {
	const first = time.Second
	bo := backoff.Doubling{Next: first, Max: 30 * time.Second}
	for {
		got, err := t.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var ae *apiError
		if errors.As(err, &ae) && !ae.transient() {
			return fmt.Errorf("tail: %w", err)
		}
		if got {
			bo.Next = first
		}
		if errors.As(err, &ae) && ae.retryAfter > bo.Next {
			bo.Next = min(ae.retryAfter, bo.Max)
		}
		fmt.Fprintf(t.errOut, "tail: %v; reconnecting in %s (events in between are not shown)\n", err, bo.Next)
		if !bo.Wait(ctx) {
			return nil
		}
	}
}

// errStreamClosed is the server ending the stream (event: close).
type errStreamClosed struct{ reason string }

func (e errStreamClosed) Error() string { return "the server closed the stream: " + e.reason }

// follow reads one connection until it ends; got says whether it opened.
func (t tailer) follow(ctx context.Context) (got bool, err error) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r, err := t.cl.request(cctx, "GET", t.path, "", nil)
	if err != nil {
		return false, err
	}
	r.Header.Set("Accept", "text/event-stream")
	resp, err := t.cl.http.Do(r)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, readAPIError(resp)
	}
	// A connection that went silent (a proxy holding it, a peer gone
	// without a FIN) is cut and opened again.
	idle := time.AfterFunc(t.idle, cancel)
	defer idle.Stop()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var event, data string
	for sc.Scan() {
		idle.Reset(t.idle)
		line := sc.Text()
		switch {
		case line == "":
			if data != "" {
				if err := t.dispatch(event, data); err != nil {
					return true, err
				}
			}
			event, data = "", ""
		case strings.HasPrefix(line, ":"): // a comment: the open line, heartbeats
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
		}
	}
	if err := sc.Err(); err != nil && cctx.Err() != nil && ctx.Err() == nil {
		return true, fmt.Errorf("no data for %s", t.idle)
	} else if err != nil {
		return true, err
	}
	return true, io.ErrUnexpectedEOF
}

// dispatch prints one message, or says why the server closed the stream.
func (t tailer) dispatch(event, data string) error {
	if event == "close" {
		var c struct {
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal([]byte(data), &c)
		return errStreamClosed{c.Reason}
	}
	if t.json {
		_, err := fmt.Fprintln(t.out, data)
		return err
	}
	var ev ingest.StreamEvent
	if err := json.Unmarshal([]byte(data), &ev); err != nil {
		fmt.Fprintf(t.errOut, "tail: a message that is not an event: %q\n", data)
		return nil
	}
	_, err := fmt.Fprintln(t.out, eventLine(&ev))
	return err
}

// eventLine is one event as tail prints it.
func eventLine(ev *ingest.StreamEvent) string {
	s := fmt.Sprintf("%s  %s  %-12s", ev.OccurredAt.UTC().Format("2006-01-02T15:04:05.000Z"), ev.CallID, ev.Status)
	if ev.Outcome != "" {
		s += " " + string(ev.Outcome)
	}
	if ev.Report != nil {
		s += " " + string(ev.Report.Type)
	}
	if ev.CampaignID != "" {
		s += fmt.Sprintf("  campaign=%s contact=%s attempt=%d", ev.CampaignID, ev.ContactID, ev.Attempt)
	}
	return strings.TrimRight(s, " ")
}
