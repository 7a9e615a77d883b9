package invariants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/schemas"
)

// Answer kinds of one attempt of a call request, as the client saw it.
const (
	AnswerTransport = "transport error" // no HTTP answer: refused connection, client timeout
)

// Request is one call request of the load, by its Idempotency-Key, with
// every answer its attempts got: what the client was told, the one side of
// the run that ingest cannot rewrite.
type Request struct {
	Key string // the Idempotency-Key, the same on every attempt
	To  string
	// Answers are the attempts' answers in order: HTTP status codes ("202",
	// "503", "409") or AnswerTransport.
	Answers []string
	// Accepted: the last answer was 2xx with a call id; CallID and RoomName
	// are from its body, and Replayed says it carried Idempotent-Replayed.
	Accepted         bool
	CallID, RoomName string
	Replayed         bool
	// Refused is the final non-2xx answer the client did not retry ("422
	// {...}"); Unsettled says why the client stopped retrying without a
	// final answer. Both are empty for an accepted request.
	Refused, Unsettled string
	// Cancel is the client's cancel of the accepted call, when its load
	// entry asked for one (Call.Cancel); zero otherwise.
	Cancel CancelAsk
}

// CancelAsk is one cancel the client sent for an accepted call.
type CancelAsk struct {
	Sent    time.Time // the first attempt (zero: never sent)
	Answers []string  // every attempt's answer, as Request.Answers
	// Code is the final answer: 202 (the cancel is written), 409 (the call
	// had already ended, with Outcome), or another status ingest refused the
	// cancel with (Refused). 0 while unanswered; Unsettled then says why the
	// client stopped.
	Code               int
	Outcome            string
	Refused, Unsettled string
}

// onlyUnacknowledged says the request never got a 2xx and its every answer
// was a 503, a 409 (in flight) or no answer at all: the answers that leave
// open whether the call was written (README, "Guarantees": the 503 promise).
func (r Request) onlyUnacknowledged() bool {
	if r.Accepted || r.Refused != "" {
		return false
	}
	for _, a := range r.Answers {
		if a != "503" && a != "409" && a != AnswerTransport {
			return false
		}
	}
	return true
}

// retriedThroughFault says the request was accepted after at least one 503
// or transport error: a fault made the client wait.
func (r Request) retriedThroughFault() bool {
	return r.Accepted && slices.ContainsFunc(r.Answers, func(a string) bool { return a == "503" || a == AnswerTransport })
}

// Event is one lifecycle event record read from the events topic. A replayed
// event appears again, with the same CEID.
type Event struct {
	CEID          string
	Type          string
	CallID        string
	Sequence      int
	Status        string
	Outcome       string
	Reason        string
	EndedBy       string
	SIPStatusCode int
	AnsweredBy    string // the agent's verdict (its answered_by report, and the ended event after it)
	CallAgentID   string
	RoomName      string
	To            string
	// Key is metadata.key: the load generator puts each request's
	// Idempotency-Key there, so the topic says which request a call is.
	Key       string
	Partition int32
	Offset    int64
	Written   time.Time // the record's timestamp: when its producer wrote it
}

// CampaignEvent is one campaign webhook's event read from the events topic
// (campaign.started, campaign.completed...): keyed by its campaign, not a
// call, so it is kept apart from the lifecycle events.
type CampaignEvent struct {
	CEID       string
	Type       string
	CampaignID string
}

// Dial is one CreateSIPParticipant the phone simulator received.
type Dial struct {
	Room string    `json:"room"`
	To   string    `json:"to"`
	At   time.Time `json:"at"`
}

// Delivery is one webhook POST the receiver got.
type Delivery struct {
	N            int       `json:"n"`
	ReceivedAt   time.Time `json:"received_at"`
	WebhookID    string    `json:"webhook_id"`
	Type         string    `json:"type"`
	CallID       string    `json:"call_id"`
	Sequence     int       `json:"sequence"`
	Verified     bool      `json:"verified"`
	VerifyError  string    `json:"verify_error"`
	AnsweredWith int       `json:"answered_with"`
	// EventID is data.event_id of the body, which must equal WebhookID.
	EventID string `json:"-"`
}

// Observed is everything one run recorded.
type Observed struct {
	// Requests is the client's side: every call request, with its answers.
	Requests []Request

	Events         []Event
	CampaignEvents []CampaignEvent
	BadEvents      []string // records on the events topic that are not valid lifecycle or campaign events

	Dials []Dial

	Deliveries        []Delivery
	DeliveriesDropped int // deliveries the receiver got but could not keep

	// AgentTakes lists the call agents (call_agent_id) whose calls the
	// reference agent takes in this run (the topology runs it for their
	// LiveKit agent name): the callees written for an agent are then judged
	// by what the agent makes of them (agentScripts). The test sets it.
	AgentTakes []string
	// AgentMissTolerance is the share of those calls, answered, that may end
	// as without the agent (AgentMissed) in a run that does not allow it:
	// what a saturated machine costs the agent's WebRTC sessions (the
	// container suite measured 1 in 135). 0: none.
	AgentMissTolerance float64
	// ReportOutages are the spans of this run in which Dialstream could
	// not record the agent's reports (the broker down, and the report's
	// longest retry wait after it). A call of the agent's in progress
	// during one may end as without the agent: its verdict or its transfer
	// was recorded too late, or, past the agent's report timeout, never.
	// That is the outage's doing: such calls are counted and listed apart,
	// outside AgentMissTolerance. The test sets it.
	ReportOutages []Span

	WebhookDLQ int // records on dialstream.webhooks.dlq
	RequestDLQ int // records on dialstream.calls.requested.dlq
}

// Span is a stretch of a run's wall-clock time.
type Span struct{ From, To time.Time }

// overlaps says whether [from, to] meets the span.
func (s Span) overlaps(from, to time.Time) bool { return !from.After(s.To) && !to.Before(s.From) }

// Recorder reads the events and DLQ topics from their start for as long as
// it runs, and holds what the load generator learned.
type Recorder struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	requests  map[string]*Request // by Idempotency-Key
	order     []string            // keys in the order the requests were made
	events    []Event
	campaign  []CampaignEvent
	badEvents []string
	dlqWebh   int
	dlqReq    int
	consumed  map[string]map[int32]int64 // topic -> partition -> next offset
}

// campaignTypePrefix starts the ce_type of the scheduler's campaign events
// (schemas.CampaignEvent.Type).
const campaignTypePrefix = "dialstream.campaign."

// recordedTopics are read from offset 0. None is created by the recorder:
// the services create their topics, and the consumer waits for them.
var recordedTopics = []string{schemas.TopicEvents, schemas.TopicWebhookDLQ, schemas.TopicRequestsDLQ}

// NewRecorder starts consuming; opts say how to reach the broker (seeds, a
// dialer). Close stops it.
func NewRecorder(opts ...kgo.Opt) (*Recorder, error) {
	opts = append(append([]kgo.Opt{}, opts...),
		kgo.ConsumeTopics(recordedTopics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Topic metadata is refreshed often so a topic created after the
		// recorder started is picked up within a second.
		kgo.MetadataMinAge(250*time.Millisecond),
		kgo.MetadataMaxAge(time.Second),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("invariants: kafka client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Recorder{cl: cl, cancel: cancel, done: make(chan struct{}), consumed: map[string]map[int32]int64{},
		requests: map[string]*Request{}}
	go r.consume(ctx)
	return r, nil
}

// Close stops consuming and closes the Kafka client.
func (r *Recorder) Close() {
	r.cancel()
	<-r.done
	r.cl.Close()
}

func (r *Recorder) consume(ctx context.Context) {
	defer close(r.done)
	for ctx.Err() == nil {
		fs := r.cl.PollFetches(ctx)
		if fs.IsClientClosed() {
			return
		}
		// Fetch errors (a topic not created yet, the broker restarting) are
		// retried by the client; the records that do arrive are what counts.
		fs.EachRecord(r.record)
	}
}

func (r *Recorder) record(rec *kgo.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	parts := r.consumed[rec.Topic]
	if parts == nil {
		parts = map[int32]int64{}
		r.consumed[rec.Topic] = parts
	}
	parts[rec.Partition] = rec.Offset + 1
	switch rec.Topic {
	case schemas.TopicWebhookDLQ:
		r.dlqWebh++
		return
	case schemas.TopicRequestsDLQ:
		r.dlqReq++
		return
	}
	ev, err := schemas.Decode(rec)
	if err != nil {
		r.badEvents = append(r.badEvents, fmt.Sprintf("%s/%d@%d: %v", rec.Topic, rec.Partition, rec.Offset, err))
		return
	}
	if strings.HasPrefix(ev.Type, campaignTypePrefix) {
		var c struct {
			CampaignID string `json:"campaign_id"`
		}
		if err := json.Unmarshal(ev.Data, &c); err != nil || c.CampaignID == "" || string(rec.Key) != c.CampaignID {
			r.badEvents = append(r.badEvents, fmt.Sprintf("%s/%d@%d: campaign event %s keyed %q for campaign %q (%v)",
				rec.Topic, rec.Partition, rec.Offset, ev.Type, rec.Key, c.CampaignID, err))
			return
		}
		r.campaign = append(r.campaign, CampaignEvent{CEID: ev.ID, Type: ev.Type, CampaignID: c.CampaignID})
		return
	}
	var d schemas.CallEvent
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		r.badEvents = append(r.badEvents, fmt.Sprintf("%s/%d@%d: data: %v", rec.Topic, rec.Partition, rec.Offset, err))
		return
	}
	if string(rec.Key) != d.CallID {
		r.badEvents = append(r.badEvents, fmt.Sprintf("%s/%d@%d: key %q is not the call id %q", rec.Topic, rec.Partition, rec.Offset, rec.Key, d.CallID))
	}
	var meta struct {
		Key string `json:"key"`
	}
	_ = json.Unmarshal(d.Metadata, &meta) // metadata a client other than the load sent has no key
	r.events = append(r.events, Event{
		CEID: ev.ID, Type: ev.Type, CallID: d.CallID, Sequence: d.Sequence, Status: string(d.Status),
		Outcome: string(d.Outcome), Reason: d.Reason, EndedBy: string(d.EndedBy), SIPStatusCode: d.SIPStatusCode,
		AnsweredBy: string(d.AnsweredBy), CallAgentID: d.CallAgentID, RoomName: d.RoomName, To: d.To, Key: meta.Key, Partition: rec.Partition, Offset: rec.Offset, Written: rec.Timestamp,
	})
}

// WaitCaughtUp waits until the recorder has read every record the recorded
// topics held when it was called.
func (r *Recorder) WaitCaughtUp(ctx context.Context) error {
	ends, err := kadm.NewClient(r.cl).ListEndOffsets(ctx, recordedTopics...)
	if err != nil {
		return fmt.Errorf("invariants: list end offsets: %w", err)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		behind := ""
		r.mu.Lock()
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err != nil || o.Offset <= 0 || behind != "" {
				return
			}
			if got := r.consumed[o.Topic][o.Partition]; got < o.Offset {
				behind = fmt.Sprintf("%s/%d at %d of %d", o.Topic, o.Partition, got, o.Offset)
			}
		})
		r.mu.Unlock()
		if behind == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("invariants: recorder not caught up (%s): %w", behind, ctx.Err())
		case <-tick.C:
		}
	}
}

// Observed returns a copy of what was recorded so far; dials and deliveries
// are fetched by the caller (Fetch).
func (r *Recorder) Observed() Observed {
	r.mu.Lock()
	defer r.mu.Unlock()
	reqs := make([]Request, 0, len(r.order))
	for _, k := range r.order {
		q := *r.requests[k]
		q.Answers = slices.Clone(q.Answers)
		q.Cancel.Answers = slices.Clone(q.Cancel.Answers)
		reqs = append(reqs, q)
	}
	return Observed{
		Requests:       reqs,
		Events:         append([]Event(nil), r.events...),
		CampaignEvents: append([]CampaignEvent(nil), r.campaign...),
		BadEvents:      append([]string(nil), r.badEvents...),
		WebhookDLQ:     r.dlqWebh,
		RequestDLQ:     r.dlqReq,
	}
}

// AcceptedCount is how many calls ingest has accepted so far.
func (r *Recorder) AcceptedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, q := range r.requests {
		if q.Accepted {
			n++
		}
	}
	return n
}

// FetchDials reads GET <phonesimURL>/dials.
func FetchDials(ctx context.Context, hc *http.Client, phonesimURL string) ([]Dial, error) {
	var body struct {
		Dials []Dial `json:"dials"`
	}
	if err := getJSON(ctx, hc, phonesimURL+"/dials", &body); err != nil {
		return nil, fmt.Errorf("invariants: phonesim dials: %w", err)
	}
	return body.Dials, nil
}

// FetchDeliveries reads GET <receiverURL>/deliveries (dialstream receiver).
func FetchDeliveries(ctx context.Context, hc *http.Client, receiverURL string) ([]Delivery, int, error) {
	var body struct {
		Deliveries []struct {
			Delivery
			Body json.RawMessage `json:"body"`
		} `json:"deliveries"`
		Dropped int `json:"dropped"`
	}
	if err := getJSON(ctx, hc, receiverURL+"/deliveries", &body); err != nil {
		return nil, 0, fmt.Errorf("invariants: receiver deliveries: %w", err)
	}
	out := make([]Delivery, 0, len(body.Deliveries))
	for _, d := range body.Deliveries {
		var p struct {
			Data struct {
				EventID string `json:"event_id"`
			} `json:"data"`
		}
		_ = json.Unmarshal(d.Body, &p)
		d.Delivery.EventID = p.Data.EventID
		out = append(out, d.Delivery)
	}
	return out, body.Dropped, nil
}

func getJSON(ctx context.Context, hc *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

var errStopped = errors.New("load stopped")
