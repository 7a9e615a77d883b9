package livekitdev_test

import (
	"context"
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
