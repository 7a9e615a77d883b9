package agent

import (
	_ "embed"

	"github.com/dialstream/dialstream/internal/phonesim"
)

// The agent's voice is pre-recorded (scripts/make-agent-audio.sh): a
// reference agent has no text-to-speech, and a clip exercises the path a TTS
// would take, an Opus track in the room paced in real time. The greeting
// clip names no one: the personalized greeting is the text stream that goes
// with it.
var (
	//go:embed audio/greeting.opus
	greetingOpus []byte
	//go:embed audio/message.opus
	messageOpus []byte

	greetingClip = phonesim.MustOpusClip(greetingOpus)
	messageClip  = phonesim.MustOpusClip(messageOpus)
)
