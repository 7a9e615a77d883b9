package livekitdev_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"

	"github.com/dialstream/dialstream/internal/livekitdev"
)

func TestStartServesRoomService(t *testing.T) {
	srv := livekitdev.StartT(t, livekitdev.Config{})

	rooms := lksdk.NewRoomServiceClient(srv.URL(), srv.APIKey(), srv.APISecret())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := rooms.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: "livekitdev-smoke"}); err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	list, err := rooms.ListRooms(ctx, &livekit.ListRoomsRequest{})
	if err != nil {
		t.Fatalf("ListRooms: %v", err)
	}
	if len(list.Rooms) != 1 || list.Rooms[0].Name != "livekitdev-smoke" {
		t.Fatalf("ListRooms = %v, want the one room just created", list.Rooms)
	}

	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-srv.Done():
	default:
		t.Fatal("Close returned before livekit-server exited")
	}
}

func TestStartReportsEarlyExit(t *testing.T) {
	// A "server" that exits at once, the way livekit-server does on a port
	// clash or a bad config: Start must say so instead of waiting it out.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := livekitdev.Start(ctx, livekitdev.Config{Binary: "/bin/false"})
	if err == nil || !strings.Contains(err.Error(), "exited during start-up") {
		t.Fatalf("Start with an exiting binary: err = %v, want an early-exit error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s to notice the exit", d)
	}
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	err := livekitdev.Config{Port: -1, RTCUDPPort: 70000, LogLevel: "loud", APIKey: "k"}.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	for _, want := range []string{"Port", "RTCUDPPort", "LogLevel", "APISecret"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %q does not mention %s", err, want)
		}
	}
}

func TestWebhooksReachConfiguredURL(t *testing.T) {
	events := make(chan string, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Event string `json:"event"`
		}
		_ = json.NewDecoder(r.Body).Decode(&ev)
		if r.Header.Get("Authorization") == "" {
			ev.Event = "unsigned:" + ev.Event
		}
		events <- ev.Event
	}))
	defer hook.Close()

	srv := livekitdev.StartT(t, livekitdev.Config{WebhookURLs: []string{hook.URL}})
	rooms := lksdk.NewRoomServiceClient(srv.URL(), srv.APIKey(), srv.APISecret())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := rooms.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: "hooked"}); err != nil {
		t.Fatalf("CreateRoom: %v", err)
	}
	for {
		select {
		case ev := <-events:
			if ev == "room_started" {
				return
			}
			if strings.HasPrefix(ev, "unsigned:") {
				t.Fatalf("webhook %s arrived without a signature", ev)
			}
		case <-ctx.Done():
			t.Fatal("no signed room_started webhook within 10s")
		}
	}
}

// EnsureOutboundTrunk is idempotent: the second call finds the trunk by name.
func TestEnsureOutboundTrunk(t *testing.T) {
	s := livekitdev.StartT(t, livekitdev.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id1, err := livekitdev.EnsureOutboundTrunk(ctx, s.URL(), s.APIKey(), s.APISecret(), "dev-trunk", []string{"+15550109999"})
	if err != nil {
		t.Fatal(err)
	}
	id2, err := livekitdev.EnsureOutboundTrunk(ctx, s.URL(), s.APIKey(), s.APISecret(), "dev-trunk", []string{"+15550109999"})
	if err != nil || id1 != id2 || !strings.HasPrefix(id1, "ST_") {
		t.Fatalf("ids %q %q err %v", id1, id2, err)
	}
}
