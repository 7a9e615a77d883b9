package phonesim

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
)

func TestScriptFor(t *testing.T) {
	tests := []struct {
		number string
		want   Script
	}{
		{NumberAnswer, ScriptAnswer},
		{NumberBusy, ScriptBusy},
		{NumberNoAnswer, ScriptNoAnswer},
		{NumberDecline, ScriptDecline},
		{NumberNotFound, ScriptNotFound},
		{NumberHold, ScriptHold},
		{NumberHuman, ScriptHuman},
		{NumberSilent, ScriptSilent},
		{NumberVoicemail, ScriptVoicemail},
		{NumberTransfer, ScriptTransfer},
		{"15550100486", ScriptBusy},
		{"+1 (555) 010-0486", ScriptBusy},
		{"+4915112345678", ScriptAnswer},
		{"+15550113486", ScriptBusy},
		{"+15550170300", ScriptVoicemail},
		{"+1 555 019 9480", ScriptNoAnswer},
		{"+15550101999", ScriptHold},
		{"+15550110001", ScriptAnswer},
		{"+15550101234", ScriptAnswer},
		{"+15550200486", ScriptAnswer},  // not the block
		{"+155501100486", ScriptAnswer}, // one digit too many
		{"", ScriptAnswer},
	}
	for _, tt := range tests {
		if got := ScriptFor(tt.number); got != tt.want {
			t.Errorf("ScriptFor(%q) = %s, want %s", tt.number, got, tt.want)
		}
	}
}

func TestMaskNumber(t *testing.T) {
	tests := map[string]string{
		"+15550100486":    "***0486",
		"+1 555 010 0001": "***0001",
		"123":             "***",
		"":                "***",
	}
	for in, want := range tests {
		if got := MaskNumber(in); got != want {
			t.Errorf("MaskNumber(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRingPlan(t *testing.T) {
	const ring, timeout = time.Second, 30 * time.Second
	tests := []struct {
		name       string
		script     Script
		ring       time.Duration
		timeout    time.Duration
		wantRing   time.Duration
		wantStatus livekit.SIPStatusCode // 0 = answered
	}{
		{"answer", ScriptAnswer, ring, timeout, ring, 0},
		{"hold", ScriptHold, ring, timeout, ring, 0},
		{"busy at once", ScriptBusy, ring, timeout, 0, livekit.SIPStatusCode_SIP_STATUS_BUSY_HERE},
		{"not found at once", ScriptNotFound, ring, timeout, 0, livekit.SIPStatusCode_SIP_STATUS_NOTFOUND},
		{"decline after ringing", ScriptDecline, ring, timeout, ring, livekit.SIPStatusCode_SIP_STATUS_GLOBAL_DECLINE},
		{"no answer until timeout", ScriptNoAnswer, ring, 2 * time.Second, 2 * time.Second, livekit.SIPStatusCode_SIP_STATUS_TEMPORARILY_UNAVAILABLE},
		{"caller gives up before answer", ScriptAnswer, 3 * time.Second, 2 * time.Second, 2 * time.Second, livekit.SIPStatusCode_SIP_STATUS_TEMPORARILY_UNAVAILABLE},
		{"caller gives up before decline", ScriptDecline, 3 * time.Second, 2 * time.Second, 2 * time.Second, livekit.SIPStatusCode_SIP_STATUS_TEMPORARILY_UNAVAILABLE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotRing, rej := ringPlan(tt.script, tt.ring, tt.timeout)
			if gotRing != tt.wantRing {
				t.Errorf("rings %s, want %s", gotRing, tt.wantRing)
			}
			var got livekit.SIPStatusCode
			if rej != nil {
				got = rej.status.Code
			}
			if got != tt.wantStatus {
				t.Errorf("ends with %v, want %v", got, tt.wantStatus)
			}
		})
	}
}

// The embedded voicemail clip is Opus in 20 ms packets: what the agent's
// answering-machine detection counts, and long enough to be taken for a
// machine (the agent's default is 2.5 s of sound).
func TestVoicemailClip(t *testing.T) {
	if voicemailClip.Frame != 20*time.Millisecond || voicemailClip.Duration() < 4*time.Second {
		t.Fatalf("voicemail clip: %d packets of %s", len(voicemailClip.Frames), voicemailClip.Frame)
	}
	for i, f := range voicemailClip.Frames {
		if !IsSound(f) {
			t.Fatalf("packet %d would be taken for the SFU's silence", i)
		}
	}
	if IsSound(nil) || IsSound([]byte{0xf8, 0xff, 0xfe, 0, 0}) {
		t.Fatal("padding or the SFU's silence frame taken for sound")
	}
}

// The dial log keeps the last DialLog dials, oldest forgotten first, so a
// simulator left running (make run, a soak) does not grow without end.
func TestDialLogForgetsTheOldest(t *testing.T) {
	s := &Sim{cfg: Config{DialLog: 3}.withDefaults()}
	m, err := newMetrics(s.cfg.Registerer)
	if err != nil {
		t.Fatal(err)
	}
	s.metrics = m
	for i := range 10 {
		s.recordDial(Dial{Room: fmt.Sprintf("room-%d", i), Script: ScriptAnswer})
	}
	var rooms []string
	for _, d := range s.DialLog() {
		rooms = append(rooms, d.Room)
	}
	if want := []string{"room-7", "room-8", "room-9"}; !slices.Equal(rooms, want) {
		t.Fatalf("dial log %v, want %v", rooms, want)
	}
	if n := s.Dials()["room-9"]; n != 1 {
		t.Fatalf("Dials()[room-9] = %d, want 1", n)
	}
}
