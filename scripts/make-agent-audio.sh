#!/usr/bin/env bash
# Makes the pre-recorded Opus clips the reference agent and the phone
# simulator play, with Debian's espeak-ng (speech), sox (the voicemail tone)
# and opus-tools (Ogg Opus encoding). The clips are committed, so neither the
# build nor the tests need these tools; run this only to change a clip:
#
#   apt-get install -y espeak-ng sox opus-tools && scripts/make-agent-audio.sh
#
# Clips are mono, 48 kHz, 20 ms frames at 16 kb/s (a few KB per second), which
# is what a LiveKit Opus track carries per RTP packet. The Ogg serial number is
# fixed so that the same text gives the same bytes.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in espeak-ng sox opusenc; do
	command -v "$tool" >/dev/null || { echo "make-agent-audio: $tool not found (apt-get install -y espeak-ng sox opus-tools)" >&2; exit 1; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

speak() { # speak <out.wav> <text>
	espeak-ng -v en-us -s 160 -w "$1" "$2"
}

encode() { # encode <in.wav> <out.opus>
	opusenc --quiet --bitrate 16 --framesize 20 --downmix-mono --serial 1 --discard-comments "$1" "$2"
	echo "$2: $(stat -c %s "$2") bytes"
}

# The agent's greeting. It names no one: the personalized greeting
# (`Hello {firstName}, ...`) goes out as the lk.transcription text stream,
# and this clip is the voice under it.
speak "$tmp/greeting.wav" "Hello, this is an automated call from Dialstream. Do you have a moment?"
encode "$tmp/greeting.wav" agent/audio/greeting.opus

# The message the agent leaves on a machine when its on_machine is continue.
speak "$tmp/message.wav" "Sorry we missed you. This is Dialstream. We will call again later. Goodbye."
encode "$tmp/message.wav" agent/audio/message.opus

# The simulator's voicemail: a greeting, a short pause, then the tone.
speak "$tmp/vm.wav" "You have reached a Dialstream test number. Please leave a message after the tone."
rate="$(sox --i -r "$tmp/vm.wav")"
sox -n -r "$rate" -c 1 -b 16 "$tmp/gap.wav" trim 0 0.3
sox -n -r "$rate" -c 1 -b 16 "$tmp/tone.wav" synth 0.6 sine 1000 vol 0.5
sox "$tmp/vm.wav" "$tmp/gap.wav" "$tmp/tone.wav" "$tmp/voicemail.wav"
encode "$tmp/voicemail.wav" internal/phonesim/audio/voicemail.opus
