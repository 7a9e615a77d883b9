package containers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dialstream/dialstream/internal/phonesim"
	"github.com/dialstream/dialstream/schemas"
	"github.com/dialstream/dialstream/tests/invariants"
)

// The faults between the dialers and what they dial through: LiveKit
// killed, the dialers cut from LiveKit's API, the phone network frozen, a
// dialer cut from the broker while it still reaches LiveKit.

const apiNetwork = "LiveKit's API network"

var (
	dialers       = []string{"dialer-1", "dialer-2"}
	allPartitions = []int32{0, 1, 2, 3, 4, 5}
)

// hitLive is the evidence that a fault at instant t met live work on the
// given partitions: the dials in flight and the calls live then.
func hitLive(o invariants.Observed, parts []int32, t time.Time, at string) []evidence {
	inFlight := invariants.DialsInFlight(o, parts, t)
	live := invariants.LiveDuring(o, parts, t, t)
	return []evidence{
		{what: "dials in flight " + at + " (dialed at the phone network, answer and end not written)", n: len(inFlight), detail: callIDs(inFlight)},
		{what: "calls live " + at, n: len(live), detail: examples(live)},
	}
}

// liveKitErrors is the dialers' count of LiveKit API requests that got no
// answer from LiveKit (a transport error, or one LiveKit's front sent
// without the request reaching a room or a SIP service).
func (tp *topology) liveKitErrors(ctx context.Context) float64 {
	return tp.metricOf(ctx, dialers, "dialstream_dialer_livekit_requests_total", "result", "error")
}

// SIGKILL livekit-server while calls ring and talk, and start it again 10 s
// later (its rooms lived in its memory and Redis; the SIP participants'
// media sessions die with it). A dial in flight may have rung: it ends in
// doubt unless LiveKit, back, shows its callee in the call (in a room a node
// hosts: its store still lists the dead node's callees); a call that was
// answered ends once, completed, when the dialers' room checks find its room
// hosted by no node (never at max_call_duration: Stranded is not allowed); the
// calls admitted while LiveKit is down record that nothing was sent and are
// dialed, once, after it is back. A dial in LiveKit's first seconds back can
// fail at the phone network's join of the room (LiveKit answers its health
// check before it serves every room's signal connection; a CI run saw 6
// calls end so, 2 s after it was back): such a call ends failed with that
// reason, never redialed, and the end is allowed only for calls dialed
// within liveKitSettle of LiveKit's return.
func TestLiveKitRestarted(t *testing.T) {
	const liveKitSettle = 10 * time.Second
	runScenario(t, scenario{opts: topoOptions{dialers: 2, notifiers: 2},
		allowed: []invariants.FaultEnd{invariants.InDoubt, invariants.AgentMissed, invariants.PhoneFailed},
		fault: func(ctx context.Context, tp *topology, rec *invariants.Recorder) proof {
			tp.at(ctx, 10*time.Second)
			ringing := tp.ringingDialOn(ctx, rec, allPartitions, 10*time.Second)
			live := tp.metricOf(ctx, dialers, "dialstream_dialer_live_calls")
			errs0 := tp.liveKitErrors(ctx)
			// The instant before the fault: the dialers see it (and write
			// what it did) within milliseconds, before the Docker call returns.
			killed := time.Now()
			tp.kill(ctx, "livekit")
			tp.logf("the dialers reported %v live calls, call %s (%s) was ringing", live, ringing.CallID, phonesim.ScriptFor(ringing.To))
			tp.at(ctx, 20*time.Second)
			tp.restart(ctx, "livekit")
			back := time.Now()
			return func(o invariants.Observed, rep invariants.Report) []evidence {
				waited := invariants.DialedAfter(o, killed, back, back)
				if late := invariants.PhoneFailedAfter(o, back.Add(liveKitSettle)); len(late) > 0 {
					tp.t.Errorf("calls the phone network failed though they were dialed %s after LiveKit was back: %d: %s", liveKitSettle, len(late), examples(late))
				}
				return append(hitLive(o, allPartitions, killed, "at the SIGKILL"),
					evidence{what: "calls the phone network could not set up in LiveKit's first seconds back", n: rep.FaultEnds[invariants.PhoneFailed], info: true},
					evidence{what: "live calls the dialers reported just before it (dialstream_dialer_live_calls)", n: int(live)},
					evidence{what: "LiveKit requests that failed from the SIGKILL on (dialstream_dialer_livekit_requests_total{result=error})",
						n: int(tp.liveKitErrors(ctx) - errs0)},
					evidence{what: "calls claimed while LiveKit was down and dialed only after it was back", n: len(waited), detail: examples(waited)})
			}
		}})
}

// Cut both dialers from LiveKit's API for 12 s while dials ring: they keep
// the broker (their commands and events go on) and LiveKit's webhooks still
// reach them, but no API request gets through: dials in flight lose their
// answer, new ones cannot create their room. The topology puts LiveKit's API
// on a network of its own (topoOptions.apiNetwork) because one network
// cannot cut one path: taking a dialer off the suite's network would cut it
// from the broker too, and pausing LiveKit would cut everyone.
func TestDialerCutFromLiveKit(t *testing.T) {
	runScenario(t, scenario{opts: topoOptions{dialers: 2, notifiers: 2, apiNetwork: true}, allowed: []invariants.FaultEnd{invariants.InDoubt, invariants.AgentMissed},
		fault: func(ctx context.Context, tp *topology, rec *invariants.Recorder) proof {
			tp.at(ctx, 10*time.Second)
			ringing := tp.ringingDialOn(ctx, rec, allPartitions, 10*time.Second)
			errs0 := tp.liveKitErrors(ctx)
			cut := time.Now()
			for _, d := range dialers {
				tp.attach(ctx, d, tp.apiNet, nil, apiNetwork)
			}
			tp.logf("call %s (%s) was ringing when the dialers were cut from LiveKit's API", ringing.CallID, phonesim.ScriptFor(ringing.To))
			tp.at(ctx, 22*time.Second)
			for _, d := range dialers {
				tp.attach(ctx, d, tp.apiNet, tp.svc(d).apiAliases, apiNetwork)
			}
			back := time.Now()
			return func(o invariants.Observed, _ invariants.Report) []evidence {
				inFlight := invariants.DialsInFlight(o, allPartitions, cut)
				waited := invariants.DialedAfter(o, cut, back, back)
				return []evidence{
					{what: "dials in flight at the cut (dialed at the phone network, answer and end not written)",
						n: len(inFlight), detail: callIDs(inFlight)},
					{what: "LiveKit requests that failed from the cut on (dialstream_dialer_livekit_requests_total{result=error})",
						n: int(tp.liveKitErrors(ctx) - errs0)},
					{what: "calls claimed during the cut and dialed only after it", n: len(waited), detail: examples(waited)},
				}
			}
		}})
}

// Freeze the phone network (docker pause of phonesim, the SIP service and
// every callee) for 12 s while calls ring and talk, then thaw it. A paused
// container keeps its state, so GET /dials still counts every dial after
// the fault; a stopped one would forget them. A call the network was
// setting up when it froze can fail there (its media join times out): the
// one end allowed, and only for calls dialed before the thaw (or the
// requests it took off LiveKit's bus in its first seconds back).
func TestPhoneNetworkGone(t *testing.T) {
	runScenario(t, scenario{opts: topoOptions{dialers: 2, notifiers: 2}, allowed: []invariants.FaultEnd{invariants.PhoneFailed, invariants.AgentMissed},
		fault: func(ctx context.Context, tp *topology, rec *invariants.Recorder) proof {
			tp.at(ctx, 10*time.Second)
			ringing := tp.ringingDialOn(ctx, rec, allPartitions, 10*time.Second)
			live := tp.metricOf(ctx, dialers, "dialstream_dialer_live_calls")
			sip0 := tp.metricOf(ctx, dialers, "dialstream_dialer_livekit_requests_total", "method", "CreateSIPParticipant")
			paused := time.Now()
			tp.pause(ctx, "phonesim")
			tp.logf("the dialers reported %v live calls, call %s (%s) was ringing", live, ringing.CallID, phonesim.ScriptFor(ringing.To))
			tp.at(ctx, 22*time.Second)
			sipDuring := tp.metricOf(ctx, dialers, "dialstream_dialer_livekit_requests_total", "method", "CreateSIPParticipant") - sip0
			tp.unpause(ctx, "phonesim")
			thawed := time.Now()
			return func(o invariants.Observed, rep invariants.Report) []evidence {
				waited := invariants.DialedAfter(o, paused, thawed, thawed)
				if late := invariants.PhoneFailedAfter(o, thawed.Add(5*time.Second)); len(late) > 0 {
					tp.t.Errorf("calls the phone network failed though it was dialed after it was back: %d: %s", len(late), examples(late))
				}
				return append(hitLive(o, allPartitions, paused, "at the pause"),
					evidence{what: "calls the frozen phone network failed while setting them up", n: rep.FaultEnds[invariants.PhoneFailed], info: true},
					evidence{what: "SIP requests that returned while the phone network was frozen " +
						"(dialstream_dialer_livekit_requests_total{method=CreateSIPParticipant})", n: int(sipDuring)},
					evidence{what: "calls claimed while it was frozen and dialed only after it was back", n: len(waited), detail: examples(waited)})
			}
		}})
}

// Cut dialer-1 from the broker for 15 s while its calls ring and talk: it
// still reaches LiveKit's API (LiveKit's API is on a network of its own,
// topoOptions.apiNetwork), so its dials in flight go on and get their
// answers, but it can write nothing: its session expires, dialer-2 takes
// its partitions and resolves the calls it finds dialing, and dialer-1's
// late writes (results, events) reach the broker only once it is back.
func TestDialerBrokerPartitioned(t *testing.T) {
	runScenario(t, scenario{opts: topoOptions{dialers: 2, notifiers: 2, apiNetwork: true}, allowed: []invariants.FaultEnd{invariants.InDoubt},
		fault: func(ctx context.Context, tp *topology, rec *invariants.Recorder) proof {
			tp.at(ctx, 10*time.Second)
			parts := tp.owned(ctx, dialerGroup, schemas.TopicRequested, "dialer-1")
			ringing := tp.ringingDialOn(ctx, rec, parts, 10*time.Second)
			live := tp.metric(ctx, "dialer-1", "dialstream_dialer_live_calls")
			cut := time.Now()
			tp.disconnect(ctx, "dialer-1")
			tp.logf("dialer-1 owned partitions %v, reported %v live calls, and was dialing call %s (%s) when cut from the broker",
				parts, live, ringing.CallID, phonesim.ScriptFor(ringing.To))
			var taken []int32
			tp.waitUntil(ctx, 20*time.Second, "dialer-2 to take dialer-1's partitions", func() (bool, string) {
				a, err := tp.assignment(ctx, dialerGroup, schemas.TopicRequested)
				if err != nil {
					return false, err.Error()
				}
				taken = a["dialer-2"]
				return len(a["dialer-1"]) == 0 && len(taken) == len(allPartitions), fmt.Sprintf("assignment %v", a)
			})
			tp.logf("dialer-2 owns all partitions %v", taken)
			tp.at(ctx, 25*time.Second)
			tp.connect(ctx, "dialer-1")
			return func(o invariants.Observed, _ invariants.Report) []evidence {
				return append(hitLive(o, parts, cut, "on dialer-1's partitions at the cut"),
					evidence{what: "live calls dialer-1 reported just before the cut (dialstream_dialer_live_calls)", n: int(live)},
					evidence{what: "dials the dialers found with nobody waiting on them (dialstream_dialer_in_doubt_dials_total)", info: true,
						n: int(tp.metricOf(ctx, dialers, "dialstream_dialer_in_doubt_dials_total"))})
			}
		}})
}
