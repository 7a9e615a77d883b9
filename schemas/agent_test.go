package schemas

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// What the dialer encodes is what the agent decodes: metadata byte for byte
// (no HTML escaping of <, >, &), settings keys typed, absent maps as {}.
func TestAgentDispatchRoundTrip(t *testing.T) {
	meta := json.RawMessage(`{"crm":"<a&b>","n":[1,2.5,null]}`)
	d := AgentDispatch{
		CallID: "f9e8d7c6b5a4f3e2d1c0b9a8", WorkspaceID: "ws_demo", CallAgentID: "a1b2c3d4e5f6a7b8c9d0e1f2",
		Room: "a1b2c3d4e5f6a7b8c9d0e1f2-x7k2m9p4q1", To: "+15550100001", From: "+15550109999",
		DynamicVariables: map[string]string{"firstName": "Ada"},
		Metadata:         meta,
		Settings:         map[string]any{"greeting": "Hello {firstName}", "on_machine": "continue", "voice": "alloy"},
		Report: &ReportChannel{URL: "http://127.0.0.1:8080/v1/agent/calls/f9e8d7c6b5a4f3e2d1c0b9a8/reports",
			Token:     MintReportToken([]byte("0123456789abcdef0123456789abcdef"), "f9e8d7c6b5a4f3e2d1c0b9a8", "ws_demo", time.Now().Add(time.Hour)),
			ExpiresAt: time.Now().Add(time.Hour).UTC().Truncate(time.Second)},
	}
	s, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s, string(meta)) {
		t.Fatalf("metadata not verbatim in %s", s)
	}
	got, err := DecodeAgentDispatch(s)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != SchemaAgentDispatch || string(got.Metadata) != string(meta) || got.DynamicVariables["firstName"] != "Ada" ||
		got.Report == nil || !got.Report.ExpiresAt.Equal(d.Report.ExpiresAt) {
		t.Fatalf("decoded %+v", got)
	}
	if st := got.AgentSettings(); st.Greeting != "Hello {firstName}" || st.OnMachine != OnMachineContinue || st.TransferTo != "" {
		t.Fatalf("settings %+v", st)
	}

	empty, err := AgentDispatch{CallID: d.CallID, WorkspaceID: "ws_demo", CallAgentID: "a1", Room: "r", To: "+15550100001"}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(empty, `"dynamic_variables":{}`) || !strings.Contains(empty, `"settings":{}`) || strings.Contains(empty, "metadata") {
		t.Fatalf("minimal dispatch %s", empty)
	}
}

func TestAgentDispatchEncodeRefuses(t *testing.T) {
	d := AgentDispatch{CallID: "f9e8d7c6b5a4f3e2d1c0b9a8", WorkspaceID: "ws_demo", CallAgentID: "a1", Room: "r", To: "+15550100001",
		Settings: map[string]any{"on_machine": "sometimes"}}
	_, err := d.Encode()
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "/settings/on_machine" {
		t.Fatalf("got %v, want one error on /settings/on_machine", err)
	}
	if _, err := DecodeAgentDispatch(`{"call_id":"x"}`); !errors.As(err, &ve) {
		t.Fatalf("decode of a bad dispatch: %v", err)
	}
}

func TestAgentReportEncode(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	ok := []AgentReport{
		{ID: "a", Type: ReportTypeAnsweredBy, At: at, AnsweredBy: AnsweredByHuman},
		{ID: "b", Type: ReportTypeResult, At: at, Result: &ReportResult{Disposition: "conversation",
			Transcript: []TranscriptLine{{Role: RoleAgent, Text: "Hello", At: at}}}},
		{ID: "c", Type: ReportTypeHangup, At: at},
		{ID: "d", Type: ReportTypeTransfer, At: at, Transfer: &ReportTransfer{To: "+15550100777"}},
		{ID: "e", Type: ReportTypeEvent, At: at, Event: &ReportEvent{Name: "appointment_booked"}},
	}
	for _, r := range ok {
		b, err := r.Encode()
		if err != nil {
			t.Fatalf("%s: %v", r.Type, err)
		}
		back, err := DecodeAgentReport(b)
		if err != nil || back.Type != r.Type || back.ID != r.ID {
			t.Fatalf("%s: decoded %+v, %v", r.Type, back, err)
		}
	}
	if _, err := (AgentReport{ID: "x", Type: ReportTypeHangup, At: at, AnsweredBy: AnsweredByHuman}).Encode(); err == nil {
		t.Fatal("a hangup carrying answered_by was encoded")
	}
}

func TestReportToken(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	old := []byte("fedcba9876543210fedcba9876543210")
	now := time.Unix(1_800_000_000, 0)
	call, other := "f9e8d7c6b5a4f3e2d1c0b9a8", "000000000000000000000001"
	tok := MintReportToken(secret, call, "ws_demo", now.Add(time.Hour))

	if ws, err := VerifyReportToken([][]byte{secret}, tok, call, now); err != nil || ws != "ws_demo" {
		t.Fatalf("valid token: %q %v", ws, err)
	}
	// A secret being rotated: the token minted with the old one still verifies.
	oldTok := MintReportToken(old, call, "ws_demo", now.Add(time.Hour))
	if _, err := VerifyReportToken([][]byte{secret, old}, oldTok, call, now); err != nil {
		t.Fatalf("token of the previous secret: %v", err)
	}

	// Change the MAC's first character (the last one carries unused bits).
	parts := strings.Split(tok, ".")
	first := "A"
	if parts[3][0] == 'A' {
		first = "B"
	}
	forged := strings.Join(parts[:3], ".") + "." + first + parts[3][1:]
	cases := []struct {
		name  string
		token string
		call  string
		now   time.Time
		want  error
	}{
		{"another call's URL", tok, other, now, ErrReportTokenInvalid},
		{"another secret", tok, call, now, nil},
		{"expired", tok, call, now.Add(time.Hour), ErrReportTokenExpired},
		{"workspace changed", strings.Replace(tok, "ws_demo", "ws_other", 1), call, now, ErrReportTokenInvalid},
		{"expiry extended", strings.Replace(tok, ".1800003600.", ".1900000000.", 1), call, now, ErrReportTokenInvalid},
		{"mac flipped", forged, call, now, ErrReportTokenInvalid},
		{"api key", "dsk_demo_local", call, now, ErrReportTokenMalformed},
		{"empty", "", call, now, ErrReportTokenMalformed},
		{"bad expiry", "dsr1.ws_demo.soon." + parts[3], call, now, ErrReportTokenMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			secrets := [][]byte{secret}
			want := c.want
			if c.name == "another secret" {
				secrets, want = [][]byte{old}, ErrReportTokenInvalid
			}
			if _, err := VerifyReportToken(secrets, c.token, c.call, c.now); !errors.Is(err, want) {
				t.Fatalf("got %v, want %v", err, want)
			}
		})
	}
}
