package invariants

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/schemas"
)

// Accepted is a call request ingest answered 2xx.
type Accepted struct {
	CallID   string
	RoomName string
	To       string
	Key      string // the Idempotency-Key it was sent with
}

// Event is one lifecycle event record read from the events topic. A replayed
// event appears again, with the same CEID.
type Event struct {
	CEID      string
	Type      string
	CallID    string
	Sequence  int
	Status    string
	Outcome   string
	Reason    string
	RoomName  string
	Partition int32
	Offset    int64
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
	Sent int // call requests made (distinct Idempotency-Keys)
	// Retries counts the repeated attempts of requests, by what the attempt
	// before got ("503", "409", "transport error"...).
	Retries   map[string]int
	Accepted  []Accepted
	Refused   []string // final non-2xx answers, one line each
	Unsettled []string // requests still without a final answer when the load stopped retrying

	Events    []Event
	BadEvents []string // records on the events topic that are not valid lifecycle events

	Dials []Dial

	Deliveries        []Delivery
	DeliveriesDropped int // deliveries the receiver got but could not keep

	WebhookDLQ int // records on dialstream.webhooks.dlq
	RequestDLQ int // records on dialstream.calls.requested.dlq
}

// Recorder reads the events and DLQ topics from their start for as long as
// it runs, and holds what the load generator learned.
type Recorder struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	sent      int
	retries   map[string]int
	accepted  []Accepted
	refused   []string
	unsettled []string
	events    []Event
	badEvents []string
	dlqWebh   int
	dlqReq    int
	consumed  map[string]map[int32]int64 // topic -> partition -> next offset
}

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
		retries: map[string]int{}}
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
	var d schemas.CallEvent
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		r.badEvents = append(r.badEvents, fmt.Sprintf("%s/%d@%d: data: %v", rec.Topic, rec.Partition, rec.Offset, err))
		return
	}
	if string(rec.Key) != d.CallID {
		r.badEvents = append(r.badEvents, fmt.Sprintf("%s/%d@%d: key %q is not the call id %q", rec.Topic, rec.Partition, rec.Offset, rec.Key, d.CallID))
	}
	r.events = append(r.events, Event{
		CEID: ev.ID, Type: ev.Type, CallID: d.CallID, Sequence: d.Sequence, Status: string(d.Status),
		Outcome: string(d.Outcome), Reason: d.Reason, RoomName: d.RoomName, Partition: rec.Partition, Offset: rec.Offset,
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
	return Observed{
		Sent:       r.sent,
		Retries:    maps.Clone(r.retries),
		Accepted:   append([]Accepted(nil), r.accepted...),
		Refused:    append([]string(nil), r.refused...),
		Unsettled:  append([]string(nil), r.unsettled...),
		Events:     append([]Event(nil), r.events...),
		BadEvents:  append([]string(nil), r.badEvents...),
		WebhookDLQ: r.dlqWebh,
		RequestDLQ: r.dlqReq,
	}
}

// AcceptedCount is how many calls ingest has accepted so far.
func (r *Recorder) AcceptedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.accepted)
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
