package phonesim

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"time"

	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/livekit/server-sdk-go/v2/pkg/oggreader"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// The simulator's voicemail and the reference agent both speak pre-recorded
// Ogg Opus clips (scripts/make-agent-audio.sh) on a LiveKit Opus track; the
// few pieces that takes are here, exported for the agent.

// voicemailOpus is the voicemail greeting and its tone.
//
//go:embed audio/voicemail.opus
var voicemailOpus []byte

var voicemailClip = MustOpusClip(voicemailOpus)

// OpusClip is an Ogg Opus stream split into its packets, decoded once and
// shared by every call that plays it.
type OpusClip struct {
	Frames [][]byte
	// Frame is the duration of every packet: the clips are made with a
	// fixed frame size, so pacing is one ticker.
	Frame time.Duration
}

// ParseOpusClip reads an Ogg Opus stream whose packets all last the same.
func ParseOpusClip(b []byte) (*OpusClip, error) {
	r, _, err := oggreader.NewOggReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	c := &OpusClip{}
	for {
		p, err := r.ReadPacket()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(p) == 0 {
			continue
		}
		d, err := oggreader.ParsePacketDuration(p)
		if err != nil {
			return nil, err
		}
		if c.Frame == 0 {
			c.Frame = d
		} else if d != c.Frame {
			return nil, fmt.Errorf("packet %d lasts %s, the clip's packets %s", len(c.Frames), d, c.Frame)
		}
		c.Frames = append(c.Frames, p)
	}
	if len(c.Frames) == 0 {
		return nil, errors.New("no audio packets")
	}
	return c, nil
}

// MustOpusClip parses an embedded clip; a bad one is a build mistake.
func MustOpusClip(b []byte) *OpusClip {
	c, err := ParseOpusClip(b)
	if err != nil {
		panic(fmt.Sprintf("embedded opus clip: %v", err))
	}
	return c
}

// Duration is how long the clip plays.
func (c *OpusClip) Duration() time.Duration { return time.Duration(len(c.Frames)) * c.Frame }

// Play writes the clip to t in real time, the first packet at once. first,
// if set, runs after the first packet is written. It returns when the clip
// ends, ctx ends or stop closes.
func (c *OpusClip) Play(ctx context.Context, stop <-chan struct{}, t *lksdk.LocalTrack, first func()) error {
	tick := time.NewTicker(c.Frame)
	defer tick.Stop()
	for i, f := range c.Frames {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-stop:
				return nil
			case <-tick.C:
			}
		}
		if err := t.WriteSample(media.Sample{Data: f, Duration: c.Frame}, nil); err != nil {
			return fmt.Errorf("write audio packet: %w", err)
		}
		if i == 0 && first != nil {
			first()
		}
	}
	return nil
}

// NewOpusTrack is a microphone track for clips. Publish it when joining:
// negotiated and subscribed before it is needed, its first packet goes out
// at once.
func NewOpusTrack() (*lksdk.LocalTrack, error) {
	return lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2})
}

// opusSilence starts the Opus frame livekit-server injects as silence
// (pkg/sfu/downtrack.go OpusSilenceFrame: a 20 ms CELT frame of zeros).
var opusSilence = []byte{0xf8, 0xff, 0xfe}

// IsSound says whether an Opus RTP payload carries sound from its publisher:
// not padding (empty) and not the silence frame livekit-server sends on a
// subscribed audio track on its own, before the publisher writes anything.
func IsSound(payload []byte) bool {
	return len(payload) > 0 && !bytes.HasPrefix(payload, opusSilence)
}
