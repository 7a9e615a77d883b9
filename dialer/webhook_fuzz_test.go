package dialer

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/dialstream/dialstream/schemas"
)

// FuzzWebhook posts arbitrary bodies to the dialer's LiveKit webhook
// receiver: signed with the API key, signed for another body (forged), or
// with an arbitrary Authorization header. Whatever arrives: no panic, no
// 5xx; an unsigned or forged body is a 401; a body taken as a command about
// a call gets no answer yet (serveWebhook answers once it is written), and
// the command is valid against its schema, for a well-formed call id of a
// Dialstream room, on a partition that exists. The write itself is left
// out: the broker's and client's background goroutines stall the fuzzer's
// coverage-guided mode, and the write is the component tests' business.
//
//	go test ./dialer -run='^$' -fuzz='^FuzzWebhook$' -fuzztime=60s -parallel=1
func FuzzWebhook(f *testing.F) {
	id := "f9e8d7c6b5a4f3e2d1c0b9a8"
	meta, _ := json.Marshal(roomMetadata{CallID: id, WorkspaceID: "ws_demo", CallAgentID: "a1b2c3d4e5f6a7b8c9d0e1f2"})
	part := int32(2)
	metaPart, _ := json.Marshal(roomMetadata{CallID: id, WorkspaceID: "ws_demo", Partition: &part, TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
	callee := &livekit.ParticipantInfo{Identity: calleeIdentity(id), Kind: livekit.ParticipantInfo_SIP,
		Attributes:       map[string]string{livekit.AttrSIPCallStatus: "hangup", "dialstream.call_id": id, "dialstream.workspace_id": "ws_demo"},
		DisconnectReason: livekit.DisconnectReason_CLIENT_INITIATED}
	for _, ev := range []*livekit.WebhookEvent{
		{Event: lkParticipantLeft, Id: "EV_1", CreatedAt: 1_800_000_000, Room: &livekit.Room{Name: "a-x7k2m9p4q1", Metadata: string(meta)}, Participant: callee},
		{Event: lkParticipantJoined, Id: "EV_2", Room: &livekit.Room{Name: "a-x7k2m9p4q1", Metadata: string(metaPart)}, Participant: callee},
		{Event: lkConnectionAborted, Participant: callee},
		{Event: lkRoomFinished, Room: &livekit.Room{Name: "r", Metadata: string(meta)}, RoomEndReason: livekit.RoomEndReason_ROOM_END_IDLE_TIMEOUT},
		{Event: lkRoomFinished, Room: &livekit.Room{Name: "someone-elses-room"}},
		{Event: "track_published", Room: &livekit.Room{Metadata: string(meta)}},
	} {
		b, err := protojson.Marshal(ev)
		if err != nil {
			f.Fatal(err)
		}
		for mode := range uint8(3) {
			f.Add(b, mode, "")
		}
	}
	f.Add([]byte(`{"event":"participant_left","room":{"metadata":"{\"call_id\":\"f9e8d7c6b5a4f3e2d1c0b9a8\",\"workspace_id\":\"ws_demo\",\"dialstream_partition\":-5}"}}`), uint8(0), "")
	f.Add([]byte(`{"event":"room_finished","room":{"metadata":"{\"call_id\":\"f9e8d7c6b5a4f3e2d1c0b9a8\",\"workspace_id\":\"ws_demo\",\"dialstream_partition\":99999}"},"createdAt":"-9223372036854775808"}`), uint8(0), "")
	f.Add([]byte(`{"event":1}`), uint8(0), "")
	f.Add([]byte(`not json`), uint8(1), "Bearer x")
	f.Add([]byte{}, uint8(1), "eyJhbGciOiJub25lIn0.e30.")

	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		f.Fatal(err)
	}
	d := &dialer{cfg: Config{LiveKitAPIKey: testAPIKey, LiveKitAPISecret: testAPISecret}, m: m, log: testLogger(),
		totalParts: 3}
	sign := func(t *testing.T, body []byte) string {
		sum := sha256.Sum256(body)
		tok, err := auth.NewAccessToken(testAPIKey, testAPISecret).SetValidFor(time.Minute).SetSha256(base64.StdEncoding.EncodeToString(sum[:])).ToJWT()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	f.Fuzz(func(t *testing.T, body []byte, mode uint8, rawAuth string) {
		r := httptest.NewRequest(http.MethodPost, webhookPath, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/webhook+json")
		signed := false
		switch mode % 3 {
		case 0:
			r.Header.Set("Authorization", sign(t, body))
			signed = true
		case 1:
			r.Header.Set("Authorization", rawAuth)
		case 2:
			r.Header.Set("Authorization", sign(t, append([]byte("x"), body...)))
		}
		w := httptest.NewRecorder()
		cmd, part, _, ok := d.receiveWebhook(w, r)
		if !ok {
			var resp struct{ Status string }
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.Status == "" {
				t.Fatalf("%d without a JSON answer: %q", w.Code, w.Body)
			}
			switch {
			case w.Code >= 500:
				t.Fatalf("%d for body %q: %s", w.Code, body, w.Body)
			case !signed && w.Code != http.StatusUnauthorized && w.Code != http.StatusRequestEntityTooLarge:
				// A header that is a valid token for this body would be a
				// signature the fuzzer forged.
				t.Fatalf("unsigned body answered %d (Authorization %q)", w.Code, r.Header.Get("Authorization"))
			}
			return
		}
		if !signed {
			t.Fatalf("unsigned body taken as a command (Authorization %q)", r.Header.Get("Authorization"))
		}
		if w.Body.Len() != 0 {
			t.Fatalf("answered %d before the command was written: %s", w.Code, w.Body)
		}
		rec, err := commandRecord(TypeLiveKitEvent, cmd.CallID, part, cmd.OccurredAt, cmd)
		if err != nil {
			t.Fatalf("command from body %q does not satisfy its schema: %v", body, err)
		}
		ev, err := schemas.Decode(rec)
		if err != nil {
			t.Fatalf("command does not decode: %v", err)
		}
		var back livekitEvent
		if err := json.Unmarshal(ev.Data, &back); err != nil || !reflect.DeepEqual(back, cmd) {
			t.Fatalf("command does not round-trip (%v):\n got %+v\nwant %+v", err, back, cmd)
		}
		if !callIDRE.MatchString(cmd.CallID) || rec.Partition < 0 || int(rec.Partition) >= d.totalParts {
			t.Fatalf("command for call %q on partition %d", cmd.CallID, rec.Partition)
		}
	})
}
