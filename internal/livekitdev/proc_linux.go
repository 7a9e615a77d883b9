//go:build linux

package livekitdev

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill livekit-server if this process dies
// without calling Close (a test binary killed by its timeout, a crashed dev
// run), so no orphan keeps the ports. Pdeathsig follows the OS thread that
// forked the child; the Go runtime does not retire threads that have not
// called LockOSThread, so it holds for the life of the process.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
