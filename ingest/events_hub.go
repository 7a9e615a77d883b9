package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/dialstream/dialstream/internal/kafkax"
	"github.com/dialstream/dialstream/schemas"
)

// The event hub behind GET /v1/api/events/stream (events_stream.go): one
// reader of dialstream.calls.events per replica, fanned out to the streams
// connected to that replica, each stream getting its own workspace's events
// only.
//
// Weighed and not taken:
//   - A Kafka reader per stream. Every stream would fetch every workspace's
//     events to keep a few, and a replica's fetch load would grow with its
//     streams. One reader costs one fetch however many streams listen.
//   - A reader that runs for the life of the replica. It would fetch the
//     whole event topic on every replica all day for a route that is open
//     now and then; the hub starts its reader with the first stream and
//     stops it streamLinger after the last, so `dialstream tail` reconnecting
//     finds it warm.
//   - Long-polling the call records. They are written by the recorder, a
//     hop (and a database transaction) behind Kafka, and would need a query
//     by workspace and time the store does not have; the topic is the
//     source of truth and is real time.
//   - Resuming from Last-Event-ID. A shared reader has one position; a
//     stream cannot have its own. The stream is a live view: what happened
//     before it opened is GET /v1/api/calls and GET /v1/api/call/:callId.
//
// Memory is bounded: each stream has a queue of streamQueue frames, and a
// stream whose client does not keep up is dropped (its queue full), never
// buffered without end and never waited for: the reader does not block on
// any client.

const (
	// streamQueue is the frames a stream may have waiting for its client.
	streamQueue = 256
	// streamLinger keeps the reader running after the last stream closes.
	streamLinger = 30 * time.Second
	// streamOpenTimeout bounds finding the topic's end for the first stream.
	streamOpenTimeout = 5 * time.Second
)

// Why a stream ended on the server's side, sent to the client in its last
// frame (event: close).
const (
	closeSlow     = "slow_consumer"
	closeShutdown = "shutdown"
)

// eventReader reads the call events topic from where its feed positioned
// it. poll blocks until there are records or ctx ends.
type eventReader interface {
	poll(ctx context.Context) ([]*kgo.Record, error)
	close()
}

// eventFeed opens a reader at the end of the call events topic as it is
// when the call returns: an event written after that is read, none before.
type eventFeed func(ctx context.Context) (eventReader, error)

// streamSub is one open stream.
type streamSub struct {
	ws       string
	campaign string // only this campaign's events, when set
	frames   chan []byte
	// ended is closed by the hub when it drops the stream; why says why.
	ended chan struct{}
	why   string
}

// eventHub fans the reader's events out to the open streams.
type eventHub struct {
	feed         eventFeed // nil: the route answers 503 (no Kafka to read)
	perWorkspace int
	max          int // streams of all workspaces
	heartbeat    time.Duration
	log          *slog.Logger
	// frame renders one event for its workspace's streams (masking).
	frame func(ev *schemas.CallEvent, id, typ string) []byte
	// dropped counts streams dropped for a slow client.
	dropped func()

	startMu sync.Mutex // one reader start at a time

	mu     sync.Mutex
	subs   map[string]map[*streamSub]struct{} // by workspace
	open   int
	run    *hubRun // the running reader, nil when none
	linger *time.Timer
	closed bool
}

// hubRun is one run of the reader.
type hubRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func newEventHub(perWorkspace, max int, log *slog.Logger) *eventHub {
	return &eventHub{perWorkspace: perWorkspace, max: max, heartbeat: streamHeartbeat, log: log,
		subs: map[string]map[*streamSub]struct{}{}, dropped: func() {}}
}

var (
	errStreamsFull   = errors.New("too many streams")
	errStreamsMax    = errors.New("too many streams on this replica")
	errStreamsClosed = errors.New("shutting down")
)

// subscribe opens a stream of workspace ws, starting the reader if none
// runs; the stream sees every event the reader reads after subscribe
// returns. It fails with errStreamsFull past perWorkspace streams of ws on
// this replica, errStreamsMax past max streams of all workspaces,
// errStreamsClosed once the hub is closed, or the feed's
// error when the topic's end cannot be found.
func (h *eventHub) subscribe(ctx context.Context, ws, campaign string) (*streamSub, error) {
	s := &streamSub{ws: ws, campaign: campaign, frames: make(chan []byte, streamQueue), ended: make(chan struct{})}
	h.mu.Lock()
	switch {
	case h.closed || h.feed == nil:
		h.mu.Unlock()
		return nil, errStreamsClosed
	case len(h.subs[ws]) >= h.perWorkspace:
		h.mu.Unlock()
		return nil, errStreamsFull
	case h.open >= h.max:
		h.mu.Unlock()
		return nil, errStreamsMax
	}
	if h.subs[ws] == nil {
		h.subs[ws] = map[*streamSub]struct{}{}
	}
	h.subs[ws][s] = struct{}{}
	h.open++
	if h.linger != nil {
		h.linger.Stop()
		h.linger = nil
	}
	running := h.run != nil
	h.mu.Unlock()
	if running {
		return s, nil
	}
	if err := h.start(ctx); err != nil {
		h.unsubscribe(s)
		return nil, err
	}
	return s, nil
}

// start starts the reader unless another subscribe already did.
func (h *eventHub) start(ctx context.Context) error {
	h.startMu.Lock()
	defer h.startMu.Unlock()
	h.mu.Lock()
	running, closed := h.run != nil, h.closed
	h.mu.Unlock()
	if running {
		return nil
	}
	if closed {
		return errStreamsClosed
	}
	octx, cancel := context.WithTimeout(ctx, streamOpenTimeout)
	r, err := h.feed(octx)
	cancel()
	if err != nil {
		return err
	}
	rctx, stop := context.WithCancel(context.Background())
	run := &hubRun{cancel: stop, done: make(chan struct{})}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		stop()
		r.close()
		return errStreamsClosed
	}
	h.run = run
	h.mu.Unlock()
	go h.read(rctx, run, r)
	return nil
}

// read hands every record to the streams until ctx ends.
func (h *eventHub) read(ctx context.Context, run *hubRun, r eventReader) {
	defer close(run.done)
	defer r.close()
	var lastWarn time.Time
	for {
		recs, err := r.poll(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil && time.Since(lastWarn) > 30*time.Second {
			lastWarn = time.Now()
			h.log.Warn("event stream: reading the call events failed; retrying", "error", err.Error())
		}
		for _, rec := range recs {
			h.dispatch(run, rec)
		}
		if err != nil && len(recs) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// streamTypes maps the CloudEvent type of each event a stream shows (the
// call lifecycle and agent reports) to its status.
var streamTypes = func() map[string]schemas.Status {
	m := map[string]schemas.Status{}
	for _, s := range schemas.EventStatuses {
		m[s.Type()] = s
	}
	return m
}()

// dispatch queues rec for the streams of its workspace. Only a call's
// event is streamed: the topic also carries the scheduler's campaign events
// (dialstream.campaign.*.v1, keyed by the campaign), which decode as a
// CallEvent with no call id and would break the StreamEvent contract, so the
// type must be a call event's and the call id valid and the record's key, as
// the recorder checks them (recorder/apply.go). A record that does not pass
// is skipped: the dialer validated it when it wrote it, and one bad record
// must not end every stream.
func (h *eventHub) dispatch(run *hubRun, rec *kgo.Record) {
	typ := kafkax.Header(rec, schemas.HeaderType)
	status, ok := streamTypes[typ]
	if !ok {
		return
	}
	var ev schemas.CallEvent
	if err := json.Unmarshal(rec.Value, &ev); err != nil || ev.WorkspaceID == "" || ev.Status != status ||
		!callIDPattern.MatchString(ev.CallID) || string(rec.Key) != ev.CallID {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	subs := h.subs[ev.WorkspaceID]
	if h.run != run || len(subs) == 0 {
		return
	}
	id := kafkax.Header(rec, schemas.HeaderID)
	var frame []byte
	for s := range subs {
		if s.campaign != "" && s.campaign != ev.CampaignID {
			continue
		}
		if frame == nil {
			frame = h.frame(&ev, id, typ)
		}
		select {
		case s.frames <- frame:
		default:
			// The client has not read streamQueue frames: drop it rather
			// than hold more for it or make every other stream wait.
			h.drop(s, closeSlow)
			h.dropped()
		}
	}
}

// drop ends s from the hub's side; the caller holds h.mu.
func (h *eventHub) drop(s *streamSub, why string) {
	if h.remove(s) {
		s.why = why
		close(s.ended)
	}
}

// unsubscribe closes s from the client's side (it went away).
func (h *eventHub) unsubscribe(s *streamSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.remove(s)
}

// remove takes s out of the hub, false when it was out already; the caller
// holds h.mu.
func (h *eventHub) remove(s *streamSub) bool {
	if _, ok := h.subs[s.ws][s]; !ok {
		return false
	}
	delete(h.subs[s.ws], s)
	if len(h.subs[s.ws]) == 0 {
		delete(h.subs, s.ws)
	}
	h.open--
	h.idle()
	return true
}

// idle stops the reader streamLinger after the last stream closed, unless
// one opens before; the caller holds h.mu.
func (h *eventHub) idle() {
	if h.open > 0 || h.run == nil || h.linger != nil {
		return
	}
	run := h.run
	h.linger = time.AfterFunc(streamLinger, func() {
		h.mu.Lock()
		if h.open > 0 || h.run != run {
			h.mu.Unlock()
			return
		}
		h.run, h.linger = nil, nil
		h.mu.Unlock()
		run.cancel()
		<-run.done
	})
}

// streams is how many streams are open.
func (h *eventHub) streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.open
}

// close ends every stream (each sends its client a close frame and
// returns, so the HTTP server's shutdown does not wait on them) and stops
// the reader; later subscribes fail.
func (h *eventHub) close() {
	h.mu.Lock()
	h.closed = true
	for _, subs := range h.subs {
		for s := range subs {
			h.drop(s, closeShutdown)
		}
	}
	if h.linger != nil {
		h.linger.Stop()
		h.linger = nil
	}
	run := h.run
	h.run = nil
	h.mu.Unlock()
	if run != nil {
		run.cancel()
		<-run.done
	}
}

// kafkaEvents is the production feed: a client of its own, no consumer
// group (every replica reads every partition, and nothing is committed),
// positioned at the end offsets listed when it opens. Listing them before
// the stream is answered, rather than consuming from kgo's "end" reset, is
// what makes "an event written after the stream opened is delivered" exact:
// the reset would resolve the end later, asynchronously, and miss events
// written in between.
func kafkaEvents(opts []kgo.Opt) eventFeed {
	return func(ctx context.Context) (eventReader, error) {
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			return nil, fmt.Errorf("event stream: kafka client: %w", err)
		}
		ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, schemas.TopicEvents)
		if err == nil {
			err = ends.Error()
		}
		if err == nil && len(ends[schemas.TopicEvents]) == 0 {
			err = fmt.Errorf("topic %s does not exist", schemas.TopicEvents)
		}
		if err != nil {
			cl.Close()
			return nil, fmt.Errorf("event stream: find the end of %s: %w", schemas.TopicEvents, err)
		}
		at := map[int32]kgo.Offset{}
		ends.Each(func(o kadm.ListedOffset) { at[o.Partition] = kgo.NewOffset().At(o.Offset) })
		cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{schemas.TopicEvents: at})
		return kafkaReader{cl}, nil
	}
}

type kafkaReader struct{ cl *kgo.Client }

func (k kafkaReader) poll(ctx context.Context) ([]*kgo.Record, error) {
	fs := k.cl.PollRecords(ctx, 1000)
	var errs []error
	fs.EachError(func(_ string, _ int32, err error) {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, kgo.ErrClientClosed) {
			errs = append(errs, err)
		}
	})
	return fs.Records(), errors.Join(errs...)
}

func (k kafkaReader) close() { k.cl.Close() }
