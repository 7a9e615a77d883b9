package phonesim_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twitchtv/twirp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/dialstream/dialstream/internal/livekitdev"
	"github.com/dialstream/dialstream/internal/phonesim"
	"github.com/dialstream/dialstream/internal/testutil"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// pion logs through the SDK's global logger; keep it quiet unless -v.
	lksdk.SetLogger(phonesim.NewSDKLogger(testLogger()))
	os.Exit(m.Run())
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

const (
	ringDuration = time.Second
	talkDuration = 3 * time.Second
)

// env is a real livekit-server (in-process miniredis) with the simulator
// registered on its SIP bus, and the SDK clients a dialer would use.
type env struct {
	lk      *livekitdev.Server
	sim     *phonesim.Sim
	sip     *lksdk.SIPClient
	rooms   *lksdk.RoomServiceClient
	trunkID string
}

func startEnv(t *testing.T) *env {
	t.Helper()
	var lkLogs io.Writer
	if os.Getenv("PHONESIM_TEST_LIVEKIT_LOGS") != "" {
		lkLogs = os.Stderr
	}
	lk := livekitdev.StartT(t, livekitdev.Config{LogWriter: lkLogs})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sim, err := phonesim.Start(ctx, phonesim.Config{
		RedisAddr:    lk.RedisAddr(),
		LiveKitURL:   lk.URL(),
		APIKey:       lk.APIKey(),
		APISecret:    lk.APISecret(),
		HTTPAddr:     "127.0.0.1:0",
		RingDuration: ringDuration,
		TalkDuration: talkDuration,
		Logger:       testLogger(),
		Registerer:   prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Registered after livekitdev's cleanup, so it runs first: calls hang
	// up while livekit-server is still there to see them leave.
	t.Cleanup(func() {
		if err := sim.Close(); err != nil {
			t.Errorf("phonesim close: %v", err)
		}
	})

	e := &env{
		lk:    lk,
		sim:   sim,
		sip:   lksdk.NewSIPClient(lk.URL(), lk.APIKey(), lk.APISecret()),
		rooms: lksdk.NewRoomServiceClient(lk.URL(), lk.APIKey(), lk.APISecret()),
	}
	// livekit-server v1.13.5 loads the trunk named by SipTrunkId and
	// answers NotFound if it does not exist, so every call needs one. The
	// address is never contacted: the simulator is the SIP service.
	trunk, err := e.sip.CreateSIPOutboundTrunk(ctx, &livekit.CreateSIPOutboundTrunkRequest{
		Trunk: &livekit.SIPOutboundTrunkInfo{
			Name:    "phonesim",
			Address: "phonesim.invalid",
			Numbers: []string{"+15550100000"},
		},
	})
	if err != nil {
		t.Fatalf("CreateSIPOutboundTrunk: %v", err)
	}
	e.trunkID = trunk.SipTrunkId
	return e
}

func (e *env) request(room, to string) *livekit.CreateSIPParticipantRequest {
	return &livekit.CreateSIPParticipantRequest{
		SipTrunkId:          e.trunkID,
		SipCallTo:           to,
		RoomName:            room,
		ParticipantIdentity: "callee",
		WaitUntilAnswered:   true,
	}
}

// participant returns the callee in room, or nil when it is not there
// (including when the room does not exist).
func (e *env) participant(t *testing.T, room string) *livekit.ParticipantInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := e.rooms.ListParticipants(ctx, &livekit.ListParticipantsRequest{Room: room})
	if err != nil {
		var terr twirp.Error
		if errors.As(err, &terr) && terr.Code() == twirp.NotFound {
			return nil
		}
		t.Fatalf("ListParticipants(%s): %v", room, err)
	}
	for _, p := range res.Participants {
		if p.Identity == "callee" {
			return p
		}
	}
	return nil
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPhoneSim(t *testing.T) {
	e := startEnv(t)

	t.Run("scripts", func(t *testing.T) {
		t.Run("answer then hang up", func(t *testing.T) {
			t.Parallel()
			const room = "room-answer"
			start := time.Now()
			info, err := e.sip.CreateSIPParticipant(callCtx(t), e.request(room, phonesim.NumberAnswer))
			if err != nil {
				t.Fatalf("CreateSIPParticipant: %v", err)
			}
			answeredAt := time.Now()
			if rang := answeredAt.Sub(start); rang < ringDuration {
				t.Errorf("answered after %s, want it to ring at least %s", rang, ringDuration)
			}
			if info.ParticipantIdentity != "callee" || info.ParticipantId == "" || info.SipCallId == "" || info.RoomName != room {
				t.Errorf("SIPParticipantInfo = %+v, want identity callee, room %s, participant and call ids set", info, room)
			}

			var p *livekit.ParticipantInfo
			testutil.Eventually(t, 5*time.Second, "callee active in the room", func() bool {
				p = e.participant(t, room)
				return p != nil && p.Attributes[livekit.AttrSIPCallStatus] == "active"
			})
			if p.Kind != livekit.ParticipantInfo_SIP {
				t.Errorf("participant kind = %v, want SIP", p.Kind)
			}
			if p.Sid != info.ParticipantId {
				t.Errorf("participant sid = %s, CreateSIPParticipant said %s", p.Sid, info.ParticipantId)
			}
			if got := p.Attributes[livekit.AttrSIPPhoneNumber]; got != phonesim.NumberAnswer {
				t.Errorf("sip.phoneNumber = %q, want %q", got, phonesim.NumberAnswer)
			}
			if got := p.Attributes[livekit.AttrSIPTrunkID]; got != e.trunkID {
				t.Errorf("sip.trunkID = %q, want %q", got, e.trunkID)
			}
			if got := p.Attributes[livekit.AttrSIPCallID]; got != info.SipCallId {
				t.Errorf("sip.callID = %q, want %q", got, info.SipCallId)
			}

			testutil.Eventually(t, talkDuration+5*time.Second, "callee to hang up", func() bool { return e.participant(t, room) == nil })
			if talked := time.Since(answeredAt); talked < talkDuration-500*time.Millisecond {
				t.Errorf("callee left after %s, want about %s", talked, talkDuration)
			}
			if n := e.sim.Dials()[room]; n != 1 {
				t.Errorf("dials for %s = %d, want 1", room, n)
			}
		})

		for _, tt := range []struct {
			name   string
			number string
			code   livekit.SIPStatusCode
		}{
			{"busy", phonesim.NumberBusy, 486},
			{"declined", phonesim.NumberDecline, 603},
			{"not found", phonesim.NumberNotFound, 404},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				room := "room-" + strings.ReplaceAll(tt.name, " ", "-")
				_, err := e.sip.CreateSIPParticipant(callCtx(t), e.request(room, tt.number))
				t.Logf("caller sees: %v", err)
				st := lksdk.SIPStatusFrom(err)
				if st == nil || st.Code != tt.code {
					t.Fatalf("CreateSIPParticipant error = %v (SIP status %v), want SIP %d", err, st, tt.code)
				}
				if want := fmt.Sprintf("sip status %d", tt.code); !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
				testutil.Eventually(t, 5*time.Second, "rejected callee out of the room", func() bool { return e.participant(t, room) == nil })
			})
		}

		t.Run("no answer within ringing timeout", func(t *testing.T) {
			t.Parallel()
			const room, ringing = "room-no-answer", 2 * time.Second
			req := e.request(room, phonesim.NumberNoAnswer)
			req.RingingTimeout = durationpb.New(ringing)
			start := time.Now()
			_, err := e.sip.CreateSIPParticipant(callCtx(t), req)
			elapsed := time.Since(start)
			t.Logf("caller sees after %s: %v", elapsed.Round(time.Millisecond), err)
			if st := lksdk.SIPStatusFrom(err); st == nil || st.Code != 480 {
				t.Fatalf("CreateSIPParticipant error = %v, want SIP 480", err)
			}
			if elapsed < ringing || elapsed > ringing+3*time.Second {
				t.Errorf("480 after %s, want just after the %s ringing timeout", elapsed, ringing)
			}
		})

		t.Run("hold until the room is deleted", func(t *testing.T) {
			t.Parallel()
			const room = "room-hold"
			if _, err := e.sip.CreateSIPParticipant(callCtx(t), e.request(room, phonesim.NumberHold)); err != nil {
				t.Fatalf("CreateSIPParticipant: %v", err)
			}
			// Past the point where an answering callee hangs up.
			testutil.Consistently(t, talkDuration+time.Second, "callee in the room", func() bool { return e.participant(t, room) != nil })

			ctx := callCtx(t)
			if _, err := e.rooms.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: room}); err != nil {
				t.Fatalf("DeleteRoom: %v", err)
			}
			// Were the callee to rejoin, it would recreate the room.
			testutil.Eventually(t, 5*time.Second, "room gone", func() bool {
				res, err := e.rooms.ListRooms(ctx, &livekit.ListRoomsRequest{Names: []string{room}})
				return err == nil && len(res.Rooms) == 0
			})
			testutil.Consistently(t, time.Second, "room stays gone", func() bool { return e.participant(t, room) == nil })
		})

		t.Run("hold ends at max call duration", func(t *testing.T) {
			t.Parallel()
			const room, maxDur = "room-hold-max", 3 * time.Second
			req := e.request(room, phonesim.NumberHold)
			req.MaxCallDuration = durationpb.New(maxDur)
			start := time.Now()
			if _, err := e.sip.CreateSIPParticipant(callCtx(t), req); err != nil {
				t.Fatalf("CreateSIPParticipant: %v", err)
			}
			testutil.Eventually(t, maxDur+5*time.Second, "callee to leave at max duration", func() bool { return e.participant(t, room) == nil })
			if d := time.Since(start); d < maxDur {
				t.Errorf("callee left after %s, before max call duration %s", d, maxDur)
			}
		})

		t.Run("without waiting for the answer", func(t *testing.T) {
			t.Parallel()
			const room = "room-async"
			req := e.request(room, phonesim.NumberAnswer)
			req.WaitUntilAnswered = false
			start := time.Now()
			info, err := e.sip.CreateSIPParticipant(callCtx(t), req)
			if err != nil {
				t.Fatalf("CreateSIPParticipant: %v", err)
			}
			if d := time.Since(start); d >= ringDuration {
				t.Errorf("returned after %s, want before the callee answers (%s)", d, ringDuration)
			}
			if info.ParticipantId == "" {
				t.Error("no participant id")
			}
			// The participant exists while the phone rings, as with livekit/sip.
			testutil.Eventually(t, 5*time.Second, "callee active", func() bool {
				p := e.participant(t, room)
				return p != nil && p.Attributes[livekit.AttrSIPCallStatus] == "active"
			})
			testutil.Eventually(t, talkDuration+5*time.Second, "callee to hang up", func() bool { return e.participant(t, room) == nil })
		})

		t.Run("unknown trunk is refused before dialing", func(t *testing.T) {
			t.Parallel()
			const room = "room-no-trunk"
			req := e.request(room, phonesim.NumberAnswer)
			req.SipTrunkId = "ST_doesnotexist"
			_, err := e.sip.CreateSIPParticipant(callCtx(t), req)
			var terr twirp.Error
			if !errors.As(err, &terr) || terr.Code() != twirp.NotFound {
				t.Fatalf("CreateSIPParticipant error = %v, want twirp not_found", err)
			}
			if n := e.sim.Dials()[room]; n != 0 {
				t.Errorf("dials for %s = %d, want 0", room, n)
			}
		})
	})

	t.Run("http", func(t *testing.T) {
		base := "http://" + e.sim.HTTPAddr()
		var body struct {
			Dials []struct {
				Room, To, At string
				AnsweredAt   string         `json:"answeredAt"`
				EndedAt      string         `json:"endedAt"`
				Heard        map[string]any `json:"heard"`
			} `json:"dials"`
			ByRoom map[string]int `json:"byRoom"`
		}
		getJSON(t, base+"/dials", &body)
		want := map[string]int{
			"room-answer": 1, "room-busy": 1, "room-declined": 1, "room-not-found": 1,
			"room-no-answer": 1, "room-hold": 1, "room-hold-max": 1, "room-async": 1,
		}
		if len(body.ByRoom) != len(want) {
			t.Errorf("byRoom = %v, want %v", body.ByRoom, want)
		}
		for room, n := range want {
			if body.ByRoom[room] != n {
				t.Errorf("byRoom[%s] = %d, want %d", room, body.ByRoom[room], n)
			}
		}
		if len(body.Dials) != len(want) {
			t.Errorf("%d dials listed, want %d", len(body.Dials), len(want))
		}
		for _, d := range body.Dials {
			if d.Room == "" || d.To == "" || d.At == "" {
				t.Errorf("incomplete dial %+v", d)
			}
			// What the callee heard is on every dial (here, no agent: nothing).
			if n, ok := d.Heard["audioPackets"]; !ok || n != float64(0) {
				t.Errorf("dial %s: heard %v, want audioPackets 0", d.Room, d.Heard)
			}
			if d.Room == "room-answer" && (d.AnsweredAt == "" || d.EndedAt == "") {
				t.Errorf("answered call without answeredAt/endedAt: %+v", d)
			}
		}

		var health map[string]string
		getJSON(t, base+"/healthz", &health)

		metrics := getText(t, base+"/metrics")
		for _, line := range []string{
			`dialstream_phonesim_dials_total{script="answer"} 2`,
			`dialstream_phonesim_dials_total{script="busy"} 1`,
			`dialstream_phonesim_dials_total{script="hold"} 2`,
			`dialstream_phonesim_dials_total{script="no_answer"} 1`,
		} {
			if !strings.Contains(metrics, line) {
				t.Errorf("metrics lack %q:\n%s", line, metrics)
			}
		}
	})
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(getText(t, url)), v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v: %s", url, resp.StatusCode, err, b)
	}
	return string(b)
}
