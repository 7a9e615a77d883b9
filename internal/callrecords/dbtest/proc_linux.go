//go:build linux

package dbtest

import (
	"os/exec"
	"syscall"
)

// setProcAttr runs postgres as uid/gid (initdb and postgres refuse root)
// and has the kernel stop it with SIGQUIT (immediate shutdown) if the test
// process dies without stopping it, so no orphan cluster is left behind.
// Pdeathsig follows the OS thread that forked the child; the Go runtime
// does not retire threads that have not called LockOSThread.
func setProcAttr(cmd *exec.Cmd, uid, gid int) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT}
	if uid >= 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
}
