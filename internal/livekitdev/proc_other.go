//go:build !linux

package livekitdev

import "os/exec"

// setProcAttr has no parent-death signal outside Linux: if this process dies
// without Close, livekit-server keeps running until killed.
func setProcAttr(*exec.Cmd) {}
