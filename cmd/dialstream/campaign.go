package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dialstream/dialstream/ingest"
	"github.com/dialstream/dialstream/internal/backoff"
	"github.com/dialstream/dialstream/schemas"
)

func init() {
	commands["campaign"] = command{"create, watch and control campaigns over the API: create|watch|get|start|pause|resume|cancel (DIALSTREAM_API_URL, DIALSTREAM_API_KEY, DIALSTREAM_WORKSPACE)", runCampaign, false}
}

const campaignUsage = `usage:
  dialstream campaign create --agent AGENT [--csv FILE] [--name NAME] [--callback-url URL]
                             [--calls-per-second X] [--max-concurrent N] [--timezone ZONE]
                             [--window "Mon-Fri 10:00-19:00"]... [--retry busy=2,10m]...
                             [--start] [--watch]
  dialstream campaign watch ID      a live progress bar until the campaign ends
  dialstream campaign get ID        the campaign as JSON
  dialstream campaign start|pause|resume|cancel ID

create makes a draft campaign (sent with a random Idempotency-Key, and sent
again under the same key on a transient error: 409, 429, 5xx, no answer),
streams FILE's contacts to it (a CSV: a header
row naming to, contact_id, timezone, metadata.<key> and dynamic variables;
rows the API refuses are listed with their row number and reason), and with
--start starts it once every row is in. --watch starts it too, then watches
it. Without --window it calls Mon-Fri 10:00-19:00 in each callee's zone.
--retry OUTCOME=ATTEMPTS,DELAY retries busy, no_answer, voicemail or failed
up to ATTEMPTS attempts in all, DELAY apart (10m, 1h).

Every command takes --api-url (DIALSTREAM_API_URL, default ` + defaultAPIURL + `),
--workspace (DIALSTREAM_WORKSPACE) and the key in DIALSTREAM_API_KEY or
--api-key-file FILE.`

func runCampaign(ctx context.Context, args []string) error {
	return campaignMain(ctx, args, os.Getenv, os.Stdout, os.Stderr, isTerminal(os.Stdout))
}

// campaignMain runs one campaign subcommand; tty says whether out is a
// terminal (a progress bar) or not (plain lines).
func campaignMain(ctx context.Context, args []string, getenv func(string) string, out, errOut io.Writer, tty bool) error {
	if len(args) == 0 {
		return errors.New(campaignUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("campaign "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	api := addAPIFlags(fs, getenv)
	interval := fs.Duration("interval", time.Second, "how often watch asks for the campaign")
	var create *createFlags
	switch sub {
	case "create":
		create = addCreateFlags(fs)
	case "watch", "get", "start", "pause", "resume", "cancel":
	default:
		return errors.New(campaignUsage)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("campaign %s: %w\n%s", sub, err, campaignUsage)
	}
	cl, err := api.client(getenv)
	if err != nil {
		return fmt.Errorf("campaign %s: %w", sub, err)
	}
	w := watcher{cl: cl, out: out, errOut: errOut, tty: tty, interval: *interval}
	if sub == "create" {
		if fs.NArg() > 0 {
			return errors.New(campaignUsage)
		}
		return create.run(ctx, cl, out, errOut, w)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("campaign %s: give one campaign id\n%s", sub, campaignUsage)
	}
	id := fs.Arg(0)
	switch sub {
	case "watch":
		return w.watch(ctx, id)
	case "get":
		var raw jsonRaw
		if err := cl.do(ctx, "GET", "/v1/api/campaigns/"+url.PathEscape(id), "", nil, 0, &raw); err != nil {
			return fmt.Errorf("campaign get %s: %w", id, err)
		}
		_, err := fmt.Fprintln(out, string(raw))
		return err
	default:
		var resp ingest.CampaignControlResponse
		if err := cl.do(ctx, "POST", "/v1/api/campaigns/"+url.PathEscape(id)+"/"+sub, "", nil, 0, &resp); err != nil {
			return fmt.Errorf("campaign %s %s: %w", sub, id, err)
		}
		_, err := fmt.Fprintf(out, "campaign %s: %s written\n", resp.CampaignID, resp.Action)
		return err
	}
}

// jsonRaw keeps an answer as it came.
type jsonRaw []byte

func (j *jsonRaw) UnmarshalJSON(b []byte) error { *j = append((*j)[:0], b...); return nil }

// createFlags are campaign create's own flags.
type createFlags struct {
	agent, csv, name, callback, timezone *string
	cps                                  *float64
	maxConcurrent                        *int
	windows, retries                     listFlag
	start, watch                         *bool
}

func addCreateFlags(fs *flag.FlagSet) *createFlags {
	c := &createFlags{
		agent:         fs.String("agent", "", "the agent that places the calls (required)"),
		csv:           fs.String("csv", "", "the contacts, a CSV file"),
		name:          fs.String("name", "", "the campaign's name (default: the CSV file's name)"),
		callback:      fs.String("callback-url", "", "where the campaign's and its calls' webhooks go"),
		timezone:      fs.String("timezone", "", "the zone of contacts without a timezone column (IANA, e.g. America/New_York)"),
		cps:           fs.Float64("calls-per-second", 1, "calls released per second at most"),
		maxConcurrent: fs.Int("max-concurrent", 10, "calls in progress at once at most"),
		start:         fs.Bool("start", false, "start the campaign once its contacts are in"),
		watch:         fs.Bool("watch", false, "start it and watch it until it ends (implies --start)"),
	}
	fs.Var(&c.windows, "window", `a calling window, "Mon-Fri 10:00-19:00" (repeatable)`)
	fs.Var(&c.retries, "retry", "OUTCOME=ATTEMPTS,DELAY, e.g. busy=2,10m (repeatable)")
	return c
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// campaignRequest is the body of POST /v1/api/campaigns the CLI sends: a
// draft, its contacts uploaded after.
type campaignRequest struct {
	Name        string                   `json:"name"`
	CallAgentID string                   `json:"call_agent_id"`
	CallbackURL string                   `json:"callback_url,omitempty"`
	Schedule    schemas.CampaignSchedule `json:"schedule"`
	Pacing      schemas.Pacing           `json:"pacing"`
	Retry       *schemas.RetryPolicy     `json:"retry,omitempty"`
}

// request checks the flags and builds the body; every problem at once.
func (c *createFlags) request() (*campaignRequest, error) {
	var problems []string
	if *c.agent == "" {
		problems = append(problems, "--agent: required")
	}
	req := &campaignRequest{Name: *c.name, CallAgentID: *c.agent, CallbackURL: *c.callback,
		Schedule: schemas.CampaignSchedule{DefaultTimezone: *c.timezone},
		Pacing:   schemas.Pacing{CallsPerSecond: *c.cps, MaxConcurrent: *c.maxConcurrent}}
	if req.Name == "" && *c.csv != "" {
		req.Name = strings.TrimSuffix(filepath.Base(*c.csv), filepath.Ext(*c.csv))
	}
	if req.Name == "" {
		req.Name = "campaign " + time.Now().Format("2006-01-02 15:04")
	}
	windows := c.windows
	if len(windows) == 0 {
		windows = listFlag{"Mon-Fri 10:00-19:00"}
	}
	for _, s := range windows {
		w, err := parseWindow(s)
		if err != nil {
			problems = append(problems, fmt.Sprintf("--window %q: %v", s, err))
			continue
		}
		req.Schedule.Windows = append(req.Schedule.Windows, w)
	}
	for _, s := range c.retries {
		if req.Retry == nil {
			req.Retry = &schemas.RetryPolicy{}
		}
		if err := parseRetry(s, req.Retry); err != nil {
			problems = append(problems, fmt.Sprintf("--retry %q: %v", s, err))
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return req, nil
}

// weekOrder is the order of a day range ("Mon-Fri", "Fri-Mon").
var weekOrder = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

var windowRE = regexp.MustCompile(`^\s*(\S+)\s+(\d\d:\d\d)-(\d\d:\d\d)\s*$`)

// parseWindow reads "Mon-Fri 10:00-19:00" or "mon,wed,sat 09:00-12:00";
// the API checks the times.
func parseWindow(s string) (schemas.Window, error) {
	m := windowRE.FindStringSubmatch(s)
	if m == nil {
		return schemas.Window{}, errors.New(`want DAYS HH:MM-HH:MM, e.g. "Mon-Fri 10:00-19:00" or "Sat,Sun 11:00-15:00"`)
	}
	w := schemas.Window{Start: m[2], End: m[3]}
	for _, part := range strings.Split(strings.ToLower(m[1]), ",") {
		from, to, isRange := strings.Cut(part, "-")
		i, j := slices.Index(weekOrder, from), slices.Index(weekOrder, to)
		if i < 0 || (isRange && j < 0) {
			return schemas.Window{}, fmt.Errorf("%q is not a day or a range of days (Mon, Tue, Wed, Thu, Fri, Sat, Sun)", part)
		}
		if !isRange {
			j = i
		}
		for k := i; ; k = (k + 1) % 7 {
			if !slices.Contains(w.Days, weekOrder[k]) {
				w.Days = append(w.Days, weekOrder[k])
			}
			if k == j {
				break
			}
		}
	}
	return w, nil
}

// parseRetry reads OUTCOME=ATTEMPTS,DELAY into p.
func parseRetry(s string, p *schemas.RetryPolicy) error {
	outcome, rest, ok := strings.Cut(s, "=")
	attempts, delay, ok2 := strings.Cut(rest, ",")
	if !ok || !ok2 {
		return errors.New("want OUTCOME=ATTEMPTS,DELAY, e.g. busy=2,10m")
	}
	n, err := strconv.Atoi(attempts)
	if err != nil {
		return fmt.Errorf("attempts %q is not a number", attempts)
	}
	d, err := time.ParseDuration(delay)
	if err != nil || d < 0 || d%time.Second != 0 {
		return fmt.Errorf("delay %q is not a whole number of seconds like 30s, 10m or 1h", delay)
	}
	rule := &schemas.RetryRule{MaxAttempts: n, DelaySeconds: int(d / time.Second)}
	switch outcome {
	case "busy":
		p.Busy = rule
	case "no_answer":
		p.NoAnswer = rule
	case "voicemail":
		p.Voicemail = rule
	case "failed":
		p.Failed = rule
	default:
		return fmt.Errorf("%q is not retryable; the retryable outcomes are busy, no_answer, voicemail, failed", outcome)
	}
	return nil
}

// run creates the campaign, uploads the file and starts it if asked. A
// failure after the campaign exists names it, so its contacts can be sent
// again (rows already in are reported as repeats, not imported twice).
func (c *createFlags) run(ctx context.Context, cl *apiClient, out, errOut io.Writer, w watcher) error {
	req, err := c.request()
	if err != nil {
		return fmt.Errorf("campaign create: %w", err)
	}
	var file *os.File
	var size int64
	if *c.csv != "" {
		// Opened before the campaign is created: a typo in the path must
		// not leave an empty draft behind.
		if file, err = os.Open(*c.csv); err != nil {
			return fmt.Errorf("campaign create: %w", err)
		}
		defer file.Close()
		if st, err := file.Stat(); err == nil {
			size = st.Size()
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var created ingest.CampaignCreated
	if err := cl.createCampaign(ctx, body, errOut, &created); err != nil {
		return fmt.Errorf("campaign create: %w", err)
	}
	id := created.CampaignID
	fmt.Fprintf(out, "campaign %s created (%s)\n", id, created.Status)
	if file != nil {
		var up ingest.ContactsUploaded
		// The file is the request body as it is read: a large list is
		// never held in memory here (the API streams it too).
		if err := cl.do(ctx, "POST", "/v1/api/campaigns/"+url.PathEscape(id)+"/contacts", "text/csv", file, size, &up); err != nil {
			return fmt.Errorf("campaign %s: upload %s: %w", id, *c.csv, err)
		}
		for _, e := range up.Errors {
			fmt.Fprintf(errOut, "row %d: %s%s\n", e.Row, rowWho(e), e.Reason)
		}
		if up.ErrorsTruncated {
			fmt.Fprintf(errOut, "... %d rows skipped in all; the API lists the first %d\n", up.Skipped, len(up.Errors))
		}
		fmt.Fprintf(out, "contacts: %d accepted, %d skipped\n", up.Accepted, up.Skipped)
	}
	if !*c.start && !*c.watch {
		fmt.Fprintf(out, "draft: start it with `dialstream campaign start %s`\n", id)
		return nil
	}
	var ctl ingest.CampaignControlResponse
	if err := cl.do(ctx, "POST", "/v1/api/campaigns/"+url.PathEscape(id)+"/start", "", nil, 0, &ctl); err != nil {
		return fmt.Errorf("campaign %s: start: %w", id, err)
	}
	fmt.Fprintf(out, "campaign %s started\n", id)
	if *c.watch {
		return w.watch(ctx, id)
	}
	return nil
}

// createAttempts is how many times create sends the campaign before it
// gives up on transient errors.
const createAttempts = 4

// createCampaign sends the create with a random Idempotency-Key, and sends
// it again under the same key on a transient error, waiting cl.retryWait,
// doubling, or the Retry-After if longer. The key is what makes the retry
// safe: a create whose answer was lost (a 503 after the campaign was
// written, a connection reset) is replayed or rewritten under the same
// campaign id, never created twice, which without a key would put every
// contact in two campaigns and call each twice.
func (c *apiClient) createCampaign(ctx context.Context, body []byte, errOut io.Writer, out *ingest.CampaignCreated) error {
	key := newIdempotencyKey()
	bo := backoff.Doubling{Next: c.retryWait, Max: 8 * c.retryWait}
	for attempt := 1; ; attempt++ {
		err := c.doKeyed(ctx, "POST", "/v1/api/campaigns", "application/json", bytes.NewReader(body), 0, key, out)
		if err == nil || attempt == createAttempts || !retryableCreate(err) || ctx.Err() != nil {
			return err
		}
		var ae *apiError
		if errors.As(err, &ae) && ae.retryAfter > bo.Next {
			bo.Next = min(ae.retryAfter, 30*time.Second)
		}
		fmt.Fprintf(errOut, "campaign create: %v; retrying in %s with the same Idempotency-Key\n", err, bo.Next)
		if !bo.Wait(ctx) {
			return err
		}
	}
}

// retryableCreate says whether a create may be sent again: no answer, 429,
// 5xx, or a 409 (the first attempt is still being written: asking again
// gets its answer).
func retryableCreate(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.transient() || ae.code == http.StatusConflict
	}
	var un *errUnreachable
	return errors.As(err, &un)
}

// newIdempotencyKey is 32 hex of crypto randomness.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// rowWho names a refused row's contact and number, when the API said them.
func rowWho(e ingest.ContactError) string {
	var parts []string
	if e.ContactID != "" {
		parts = append(parts, e.ContactID)
	}
	if e.To != "" {
		parts = append(parts, e.To)
	}
	if len(parts) == 0 {
		return ""
	}
	return "(" + strings.Join(parts, ", ") + ") "
}

// isTerminal says whether f is a terminal; TERM=dumb counts as not.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}
