package dialer

import (
	"context"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"google.golang.org/protobuf/proto"
)

// liveKit is the part of the LiveKit server API the dialer uses. The real
// one is sdkLiveKit (server-sdk-go/v2); component tests put a fake here.
type liveKit interface {
	CreateRoom(ctx context.Context, req *livekit.CreateRoomRequest) (*livekit.Room, error)
	DeleteRoom(ctx context.Context, room string) error
	ListParticipants(ctx context.Context, room string) ([]*livekit.ParticipantInfo, error)
	CreateDispatch(ctx context.Context, req *livekit.CreateAgentDispatchRequest) (*livekit.AgentDispatch, error)
	ListDispatch(ctx context.Context, room string) ([]*livekit.AgentDispatch, error)
	CreateSIPParticipant(ctx context.Context, req *livekit.CreateSIPParticipantRequest) (*livekit.SIPParticipantInfo, error)
	TransferSIPParticipant(ctx context.Context, req *livekit.TransferSIPParticipantRequest) (*livekit.SIPParticipantInfo, error)
	// RoomHosted reports whether a running LiveKit node hosts the room.
	// ListParticipants reads LiveKit's store, which still lists, as
	// active, the participants of a room whose livekit-server died: only a
	// request routed to the room's node tells (see sdkLiveKit.RoomHosted).
	RoomHosted(ctx context.Context, room string) (bool, error)
}

// LiveKit API methods, the bounded `method` label of the API metrics.
const (
	mCreateRoom             = "CreateRoom"
	mDeleteRoom             = "DeleteRoom"
	mListParticipants       = "ListParticipants"
	mCreateDispatch         = "CreateDispatch"
	mListDispatch           = "ListDispatch"
	mCreateSIPParticipant   = "CreateSIPParticipant"
	mTransferSIPParticipant = "TransferSIPParticipant"
	mSendData               = "SendData"
)

var liveKitMethods = []string{mCreateRoom, mDeleteRoom, mListParticipants, mCreateDispatch, mListDispatch, mCreateSIPParticipant, mTransferSIPParticipant, mSendData}

type sdkLiveKit struct {
	rooms    *lksdk.RoomServiceClient
	dispatch *lksdk.AgentDispatchClient
	sip      *lksdk.SIPClient
}

var _ liveKit = (*sdkLiveKit)(nil)

func newSDKLiveKit(url, key, secret string) *sdkLiveKit {
	return &sdkLiveKit{
		rooms:    lksdk.NewRoomServiceClient(url, key, secret),
		dispatch: lksdk.NewAgentDispatchServiceClient(url, key, secret),
		sip:      lksdk.NewSIPClient(url, key, secret),
	}
}

func (l *sdkLiveKit) CreateRoom(ctx context.Context, req *livekit.CreateRoomRequest) (*livekit.Room, error) {
	return l.rooms.CreateRoom(ctx, req)
}

func (l *sdkLiveKit) DeleteRoom(ctx context.Context, room string) error {
	_, err := l.rooms.DeleteRoom(ctx, &livekit.DeleteRoomRequest{Room: room})
	if isNotFound(err) || isUnhosted(err) {
		return nil
	}
	return err
}

func (l *sdkLiveKit) ListParticipants(ctx context.Context, room string) ([]*livekit.ParticipantInfo, error) {
	resp, err := l.rooms.ListParticipants(ctx, &livekit.ListParticipantsRequest{Room: room})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return resp.Participants, nil
}

func (l *sdkLiveKit) CreateDispatch(ctx context.Context, req *livekit.CreateAgentDispatchRequest) (*livekit.AgentDispatch, error) {
	return l.dispatch.CreateDispatch(ctx, req)
}

func (l *sdkLiveKit) ListDispatch(ctx context.Context, room string) ([]*livekit.AgentDispatch, error) {
	resp, err := l.dispatch.ListDispatch(ctx, &livekit.ListAgentDispatchRequest{Room: room})
	if err != nil {
		return nil, err
	}
	return resp.AgentDispatches, nil
}

func (l *sdkLiveKit) CreateSIPParticipant(ctx context.Context, req *livekit.CreateSIPParticipantRequest) (*livekit.SIPParticipantInfo, error) {
	return l.sip.CreateSIPParticipant(ctx, req)
}

func (l *sdkLiveKit) TransferSIPParticipant(ctx context.Context, req *livekit.TransferSIPParticipantRequest) (*livekit.SIPParticipantInfo, error) {
	if _, err := l.sip.TransferSIPParticipant(ctx, req); err != nil {
		return nil, err
	}
	return &livekit.SIPParticipantInfo{ParticipantIdentity: req.ParticipantIdentity, RoomName: req.RoomName}, nil
}

// probeIdentity is the participant the hosting probe's data is addressed
// to: no participant has it, so nobody receives anything.
const probeIdentity = "dialstream-room-probe"

// RoomHosted sends an empty data packet to no participant of the room: the
// request is routed to the node hosting the room, and LiveKit answers "no
// response from servers" (after its API execution timeout, 3 s) when no
// node does, as for a room whose livekit-server was killed and restarted
// (measured with v1.13.5: ListParticipants and GetParticipant still list
// its participants as active, indefinitely).
func (l *sdkLiveKit) RoomHosted(ctx context.Context, room string) (bool, error) {
	_, err := l.rooms.SendData(ctx, &livekit.SendDataRequest{Room: room, Data: []byte{}, Kind: livekit.DataPacket_RELIABLE,
		Topic: proto.String("dialstream.probe"), DestinationIdentities: []string{probeIdentity}})
	switch {
	case err == nil:
		return true, nil
	case noServer(err), isNotFound(err), isUnhosted(err):
		return false, nil
	}
	return false, err
}

// meteredLiveKit counts every API call by method and result and times it.
type meteredLiveKit struct {
	lk liveKit
	m  *metrics
}

var _ liveKit = meteredLiveKit{}

func observe[T any](m *metrics, method string, f func() (T, error)) (T, error) {
	start := time.Now()
	v, err := f()
	m.liveKitCall(method, time.Since(start), err)
	return v, err
}

func (l meteredLiveKit) CreateRoom(ctx context.Context, req *livekit.CreateRoomRequest) (*livekit.Room, error) {
	return observe(l.m, mCreateRoom, func() (*livekit.Room, error) { return l.lk.CreateRoom(ctx, req) })
}

func (l meteredLiveKit) DeleteRoom(ctx context.Context, room string) error {
	_, err := observe(l.m, mDeleteRoom, func() (struct{}, error) { return struct{}{}, l.lk.DeleteRoom(ctx, room) })
	return err
}

func (l meteredLiveKit) ListParticipants(ctx context.Context, room string) ([]*livekit.ParticipantInfo, error) {
	return observe(l.m, mListParticipants, func() ([]*livekit.ParticipantInfo, error) { return l.lk.ListParticipants(ctx, room) })
}

func (l meteredLiveKit) CreateDispatch(ctx context.Context, req *livekit.CreateAgentDispatchRequest) (*livekit.AgentDispatch, error) {
	return observe(l.m, mCreateDispatch, func() (*livekit.AgentDispatch, error) { return l.lk.CreateDispatch(ctx, req) })
}

func (l meteredLiveKit) ListDispatch(ctx context.Context, room string) ([]*livekit.AgentDispatch, error) {
	return observe(l.m, mListDispatch, func() ([]*livekit.AgentDispatch, error) { return l.lk.ListDispatch(ctx, room) })
}

func (l meteredLiveKit) CreateSIPParticipant(ctx context.Context, req *livekit.CreateSIPParticipantRequest) (*livekit.SIPParticipantInfo, error) {
	return observe(l.m, mCreateSIPParticipant, func() (*livekit.SIPParticipantInfo, error) { return l.lk.CreateSIPParticipant(ctx, req) })
}

func (l meteredLiveKit) RoomHosted(ctx context.Context, room string) (bool, error) {
	return observe(l.m, mSendData, func() (bool, error) { return l.lk.RoomHosted(ctx, room) })
}

func (l meteredLiveKit) TransferSIPParticipant(ctx context.Context, req *livekit.TransferSIPParticipantRequest) (*livekit.SIPParticipantInfo, error) {
	return observe(l.m, mTransferSIPParticipant, func() (*livekit.SIPParticipantInfo, error) { return l.lk.TransferSIPParticipant(ctx, req) })
}
