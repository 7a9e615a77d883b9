package testbin

import (
	"net"
	"testing"
)

// FreeAddr returns a loopback host:port that nothing listened on a moment
// ago. Another process may take it before the caller does: the price of
// handing ports to a child process, which cannot be given a listener.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
