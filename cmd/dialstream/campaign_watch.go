package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/dialstream/dialstream/ingest"
	"github.com/dialstream/dialstream/schemas"
)

// campaign watch: GET the campaign every interval and show how far it is,
// until it is completed or canceled. On a terminal that is a progress bar
// (mpb) redrawn in place; anywhere else (a log, a pipe) one plain line each
// time the numbers change, and at least once a minute, so a log holds no
// escape codes and no thousand identical lines.

type watcher struct {
	cl       *apiClient
	out      io.Writer
	errOut   io.Writer
	tty      bool
	interval time.Duration
	// pollTimeout bounds each GET; 0 means pollTimeout's default.
	pollTimeout time.Duration
}

// pollTimeout is the default deadline of one watch GET.
const pollTimeout = 30 * time.Second

func (w watcher) poll() time.Duration {
	if w.pollTimeout > 0 {
		return w.pollTimeout
	}
	return pollTimeout
}

// linesEvery is the longest a plain-line watch stays silent.
const linesEvery = time.Minute

// watch returns nil when the campaign ended (after a summary line) or when
// ctx ends (Ctrl-C: watching stops, the campaign goes on); an error when
// the API refuses the watch itself (unknown campaign, wrong key).
func (w watcher) watch(ctx context.Context, id string) error {
	var v progressView = &lineView{out: w.out, errOut: w.errOut}
	if w.tty {
		v = newBarView(ctx, w.out)
	}
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		var env ingest.CampaignEnvelope
		// Each poll has its own deadline: a GET the API never answers
		// (a proxy holding it) is a transient failure, not a watch
		// frozen on one request.
		pctx, cancel := context.WithTimeout(ctx, w.poll())
		err := w.cl.do(pctx, "GET", "/v1/api/campaigns/"+url.PathEscape(id), "", nil, 0, &env)
		cancel()
		var ae *apiError
		switch {
		case ctx.Err() != nil:
			v.stop(nil)
			return nil
		case errors.As(err, &ae) && !ae.transient():
			v.stop(nil)
			return fmt.Errorf("campaign watch %s: %w", id, err)
		case err != nil:
			// The API restarting, Kafka away: keep watching.
			v.warn(err)
		default:
			p := progressOf(&env.Campaign, time.Now())
			if p.ended() {
				v.stop(&p)
				_, err := fmt.Fprintln(w.out, p.summary())
				return err
			}
			v.update(p)
		}
		select {
		case <-ctx.Done():
			v.stop(nil)
			return nil
		case <-t.C:
		}
	}
}

// progress is what a watch shows of one answer.
type progress struct {
	id, name   string
	status     schemas.CampaignStatus
	total      int // contacts
	final      int // contacts done, canceled or expired
	byState    map[schemas.ContactStatus]int
	byOutcome  map[schemas.Outcome]int
	inProgress int
	eta        time.Duration // 0: no estimate
}

func progressOf(c *ingest.CampaignView, now time.Time) progress {
	p := progress{id: c.CampaignID, name: c.Name, status: c.Status, total: c.Counters.Contacts,
		byState: c.Counters.ByState, byOutcome: c.Counters.ByOutcome, inProgress: c.Counters.InProgress}
	for s, n := range c.Counters.ByState {
		if s.Final() {
			p.final += n
		}
	}
	if c.EstimatedFinishAt != nil {
		p.eta = max(c.EstimatedFinishAt.Sub(now).Round(time.Second), time.Second)
	}
	return p
}

func (p progress) ended() bool {
	return p.status == schemas.CampaignCompleted || p.status == schemas.CampaignCanceled
}

// openStates are the open contact states, in the order a contact moves.
var openStates = []schemas.ContactStatus{schemas.ContactQueued, schemas.ContactCalling, schemas.ContactWaiting}

// counts is "calling 4 waiting 2 | completed 20 busy 9": the open states,
// then the outcomes so far, zeros left out.
func (p progress) counts() string {
	var open, groups []string
	for _, s := range openStates {
		if n := p.byState[s]; n > 0 {
			open = append(open, fmt.Sprintf("%s %d", s, n))
		}
	}
	if len(open) > 0 {
		groups = append(groups, strings.Join(open, " "))
	}
	if o := p.outcomes(); o != "" {
		groups = append(groups, o)
	}
	return strings.Join(groups, " | ")
}

// outcomes is "completed 20 busy 9", zeros left out.
func (p progress) outcomes() string {
	var out []string
	for _, o := range schemas.Outcomes {
		if n := p.byOutcome[o]; n > 0 {
			out = append(out, fmt.Sprintf("%s %d", o, n))
		}
	}
	return strings.Join(out, " ")
}

// line is one plain line: status, final of total, the counts, the estimate.
func (p progress) line() string {
	s := fmt.Sprintf("campaign %s %s %d/%d done", p.id, p.status, p.final, p.total)
	if p.total > 0 {
		s += fmt.Sprintf(" (%d%%)", p.final*100/p.total)
	}
	if c := p.counts(); c != "" {
		s += " | " + c
	}
	if p.eta > 0 {
		s += " | eta " + p.eta.String()
	}
	return s
}

// summary is the last line of a watch.
func (p progress) summary() string {
	var states []string
	for _, s := range []schemas.ContactStatus{schemas.ContactDone, schemas.ContactCanceled, schemas.ContactExpired} {
		if n := p.byState[s]; n > 0 {
			states = append(states, fmt.Sprintf("%s %d", s, n))
		}
	}
	s := fmt.Sprintf("campaign %s %s: %d contacts", p.id, p.status, p.total)
	if len(states) > 0 {
		s += " (" + strings.Join(states, ", ") + ")"
	}
	if o := p.outcomes(); o != "" {
		s += " | " + o
	}
	return s
}

// progressView is how a watch shows its progress.
type progressView interface {
	update(p progress)
	warn(err error)
	// stop ends the view: at p, the campaign's end, or nil (interrupted).
	stop(p *progress)
}

// lineView prints a line when the progress changed, or linesEvery passed.
type lineView struct {
	out, errOut io.Writer
	last        string
	at          time.Time
}

func (v *lineView) update(p progress) {
	// The estimate moves every second; it does not count as a change.
	key := p.line()
	if p.eta > 0 {
		key = strings.TrimSuffix(key, " | eta "+p.eta.String())
	}
	if key == v.last && time.Since(v.at) < linesEvery {
		return
	}
	v.last, v.at = key, time.Now()
	fmt.Fprintln(v.out, time.Now().UTC().Format(time.RFC3339)+" "+p.line())
}

func (v *lineView) warn(err error) {
	fmt.Fprintln(v.errOut, time.Now().UTC().Format(time.RFC3339)+" campaign watch: "+err.Error()+"; retrying")
}

func (v *lineView) stop(*progress) {}

// barView is two mpb rows: the bar of contacts final of all, with the
// status before it and the percentage and estimate after; under it the
// counts, which may be longer than the bar's row has room for.
type barView struct {
	p           *mpb.Progress
	bar, counts *mpb.Bar

	mu                sync.Mutex
	head, eta, detail string
}

func newBarView(ctx context.Context, out io.Writer) *barView {
	v := &barView{head: "campaign", detail: "waiting for the API"}
	// The caller decided out is a terminal: mpb redraws it in place.
	v.p = mpb.NewWithContext(ctx, mpb.WithOutput(out), mpb.ForceTTY(), mpb.WithAutoRefresh(),
		mpb.WithRefreshRate(200*time.Millisecond))
	text := func(s *string) decor.Decorator {
		return decor.Any(func(decor.Statistics) string {
			v.mu.Lock()
			defer v.mu.Unlock()
			return *s
		})
	}
	// A total of 0 until the first answer: mpb then completes the bar only
	// when told, never because the contacts known so far are all final.
	v.bar = v.p.New(0, mpb.BarStyle(),
		mpb.PrependDecorators(text(&v.head), decor.CountersNoUnit(" %d/%d ")),
		mpb.AppendDecorators(decor.Percentage(decor.WC{W: 6}), text(&v.eta)))
	v.counts = v.p.New(0, mpb.NopStyle(), mpb.PrependDecorators(text(&v.detail)))
	return v
}

func (v *barView) update(p progress) {
	v.mu.Lock()
	v.head, v.eta, v.detail = p.id+" "+string(p.status), "", "  "+p.counts()
	if p.eta > 0 {
		v.eta = "  eta " + p.eta.String()
	}
	v.mu.Unlock()
	v.bar.SetTotal(int64(p.total), false)
	v.bar.SetCurrent(int64(p.final))
}

func (v *barView) warn(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.detail = "  API: " + err.Error() + "; retrying"
}

func (v *barView) stop(p *progress) {
	if p != nil {
		v.update(*p)
		v.bar.SetTotal(-1, true)
		v.counts.SetTotal(-1, true)
	} else {
		v.bar.Abort(false)
		v.counts.Abort(false)
	}
	v.p.Wait()
}
