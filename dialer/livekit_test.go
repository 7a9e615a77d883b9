package dialer

import (
	"context"
	"testing"
	"time"

	"github.com/livekit/protocol/auth"
	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"

	"github.com/dialstream/dialstream/internal/livekitdev"
)

// What RoomHosted rests on, against a real livekit-server sharing its Redis
// across a SIGKILL and a restart: LiveKit's store still lists the callee of
// the dead server's room, as active, while the hosting probe says no node
// hosts the room; before the crash it says the room is hosted.
func TestRoomHostedAcrossALiveKitRestart(t *testing.T) {
	redis := livekitdev.RedisT(t)
	cfg := livekitdev.Config{RedisAddr: redis, APIKey: testAPIKey, APISecret: testAPISecret, LogLevel: "warn"}
	first := livekitdev.StartT(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lk := newSDKLiveKit(first.URL(), testAPIKey, testAPISecret)
	if _, err := lk.CreateRoom(ctx, &livekit.CreateRoomRequest{Name: "r-hosted", EmptyTimeout: 300}); err != nil {
		t.Fatal(err)
	}
	tok, err := auth.NewAccessToken(testAPIKey, testAPISecret).SetVideoGrant(&auth.VideoGrant{RoomJoin: true, Room: "r-hosted"}).
		SetIdentity("callee-x").ToJWT()
	if err != nil {
		t.Fatal(err)
	}
	room := lksdk.NewRoom(lksdk.NewRoomCallback())
	if err := room.JoinWithContextAndToken(ctx, first.URL(), tok); err != nil {
		t.Fatal(err)
	}
	defer room.Disconnect()
	if hosted, err := lk.RoomHosted(ctx, "r-hosted"); err != nil || !hosted {
		t.Fatalf("a live room: hosted %v, %v; want true", hosted, err)
	}

	first.KillT(t)
	second := livekitdev.StartT(t, cfg)
	lk = newSDKLiveKit(second.URL(), testAPIKey, testAPISecret)
	parts, err := lk.ListParticipants(ctx, "r-hosted")
	if err != nil || len(parts) != 1 || parts[0].GetIdentity() != "callee-x" {
		t.Logf("LiveKit no longer lists the dead room's participant (%d, %v): RoomHosted is then a second guard", len(parts), err)
	}
	if hosted, err := lk.RoomHosted(ctx, "r-hosted"); err != nil || hosted {
		t.Fatalf("the dead server's room: hosted %v, %v; want false", hosted, err)
	}
	if hosted, err := lk.RoomHosted(ctx, "r-never-made"); err != nil || hosted {
		t.Fatalf("a room never made: hosted %v, %v; want false", hosted, err)
	}
}
