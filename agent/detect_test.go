package agent

import (
	"testing"
	"time"

	"github.com/dialstream/dialstream/schemas"
)

func TestDetector(t *testing.T) {
	d := detector{listen: 4 * time.Second, machineSpeech: 2500 * time.Millisecond}
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	ended := t0.Add(5 * time.Second) // the agent's greeting ended
	for _, tt := range []struct {
		name string
		h    heard
		now  time.Time
		want schemas.AnsweredBy // "" = no verdict yet
	}{
		{"nothing yet, greeting playing", heard{}, t0.Add(8 * time.Second), ""},
		{"a reply is a human", heard{reply: "hi"}, t0.Add(time.Second), schemas.AnsweredByHuman},
		{"a reply wins over a long greeting", heard{reply: "hi", audio: 5 * time.Second}, t0, schemas.AnsweredByHuman},
		{"a short hello is not yet a machine", heard{audio: time.Second}, t0.Add(2 * time.Second), ""},
		{"a long greeting without reply is a machine", heard{audio: 2500 * time.Millisecond}, t0.Add(3 * time.Second), schemas.AnsweredByMachine},
		{"still listening after the greeting", heard{greetingEnded: ended}, ended.Add(3 * time.Second), ""},
		{"silence past the listen timeout", heard{greetingEnded: ended}, ended.Add(4 * time.Second), schemas.AnsweredByUnknown},
		{"a short hello then silence", heard{greetingEnded: ended, audio: time.Second}, ended.Add(4 * time.Second), schemas.AnsweredByUnknown},
	} {
		got, ok := d.decide(tt.h, tt.now)
		if ok != (tt.want != "") || got != tt.want {
			t.Errorf("%s: decide = %q, %v; want %q", tt.name, got, ok, tt.want)
		}
	}

	// The callee hung up before a verdict.
	for h, want := range map[heard]schemas.AnsweredBy{
		{reply: "bye"}:           schemas.AnsweredByHuman,
		{audio: 3 * time.Second}: schemas.AnsweredByMachine,
		{audio: time.Second}:     schemas.AnsweredByUnknown,
		{greetingEnded: ended}:   schemas.AnsweredByUnknown,
	} {
		if got := d.final(h); got != want {
			t.Errorf("final(%+v) = %s, want %s", h, got, want)
		}
	}
}
