package livekitdev

import (
	"context"
	"fmt"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

// SimTrunkAddress is the SIP address of trunks that lead to the phone
// simulator. livekit-server requires an address on an outbound trunk, but the
// simulator answers on the psrpc bus and nothing ever connects to it: the
// .invalid TLD (RFC 2606) guarantees it resolves nowhere.
const SimTrunkAddress = "phonesim.invalid"

// EnsureOutboundTrunk returns the id of the outbound SIP trunk called name,
// creating it when it does not exist. livekit-server assigns trunk ids itself,
// so callers look trunks up by name.
func EnsureOutboundTrunk(ctx context.Context, url, apiKey, apiSecret, name string, numbers []string) (string, error) {
	c := lksdk.NewSIPClient(url, apiKey, apiSecret)
	list, err := c.ListSIPOutboundTrunk(ctx, &livekit.ListSIPOutboundTrunkRequest{})
	if err != nil {
		return "", fmt.Errorf("livekitdev: list outbound trunks: %w", err)
	}
	for _, t := range list.GetItems() {
		if t.GetName() == name {
			return t.GetSipTrunkId(), nil
		}
	}
	t, err := c.CreateSIPOutboundTrunk(ctx, &livekit.CreateSIPOutboundTrunkRequest{Trunk: &livekit.SIPOutboundTrunkInfo{
		Name:    name,
		Address: SimTrunkAddress,
		Numbers: numbers,
	}})
	if err != nil {
		return "", fmt.Errorf("livekitdev: create outbound trunk %s: %w", name, err)
	}
	return t.GetSipTrunkId(), nil
}
