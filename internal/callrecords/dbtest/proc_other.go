//go:build !linux

package dbtest

import "os/exec"

// setProcAttr does nothing outside Linux: run the tests as a user other
// than root there, or set DATABASE_URL_POSTGRES_TEST.
func setProcAttr(*exec.Cmd, int, int) {}
