package notifier

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	cases := map[string]string{
		"127.0.0.1":          rangeLoopback,
		"127.255.0.9":        rangeLoopback,
		"::1":                rangeLoopback,
		"::ffff:127.0.0.1":   rangeLoopback,
		"10.0.0.1":           rangePrivate,
		"172.16.5.4":         rangePrivate,
		"192.168.1.1":        rangePrivate,
		"fc00::1":            rangePrivate,
		"169.254.169.254":    rangeMetadata,
		"fd00:ec2::254":      rangeMetadata,
		"100.100.100.200":    rangeMetadata,
		"169.254.1.1":        rangeLinkLocal,
		"fe80::1":            rangeLinkLocal,
		"fe80::1%eth0":       rangeLinkLocal,
		"100.64.0.1":         rangeCGNAT,
		"100.127.255.254":    rangeCGNAT,
		"0.0.0.0":            rangeUnspecified,
		"::":                 rangeUnspecified,
		"224.0.0.1":          rangeMulticast,
		"ff02::1":            rangeMulticast,
		"255.255.255.255":    rangeReserved,
		"::127.0.0.1":        rangeReserved,
		"64:ff9b::7f00:1":    rangeLoopback, // NAT64 of 127.0.0.1
		"64:ff9b::a9fe:a9fe": rangeMetadata, // NAT64 of 169.254.169.254
		"2002:a00:1::":       rangePrivate,  // 6to4 of 10.0.0.1
		"::ffff:10.1.2.3":    rangePrivate,
		"8.8.8.8":            "",
		"93.184.215.14":      "",
		"100.63.255.255":     "",
		"100.128.0.0":        "",
		"::ffff:8.8.8.8":     "",
		"64:ff9b::808:808":   "",
		"2606:4700::1111":    "",
	}
	for s, want := range cases {
		if got := classify(netip.MustParseAddr(s)); got != want {
			t.Errorf("classify(%s) = %q, want %q", s, got, want)
		}
	}
}

func TestParseLegacyIPv4(t *testing.T) {
	ok := map[string]string{
		"0x7f000001": "127.0.0.1",
		"2130706433": "127.0.0.1",
		"0177.0.0.1": "127.0.0.1",
		"127.1":      "127.0.0.1",
		"0x7f.1":     "127.0.0.1",
		"10.1":       "10.0.0.1",
		"0":          "0.0.0.0",
		"0xA9FEA9FE": "169.254.169.254",
	}
	for in, want := range ok {
		a, parsed := parseLegacyIPv4(in)
		if !parsed || a.String() != want {
			t.Errorf("parseLegacyIPv4(%q) = %v %v, want %s", in, a, parsed, want)
		}
	}
	for _, in := range []string{"example.com", "1.2.3.4.5", "256.1.1.1", "08.1.1.1", "1..2", "0x", "127.0.0.1.", "4294967296"} {
		if a, parsed := parseLegacyIPv4(in); parsed {
			t.Errorf("parseLegacyIPv4(%q) = %v, want not numeric", in, a)
		}
	}
}

// mapResolver answers from a map and fails for anything else.
type mapResolver map[string][]string

func (m mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	ss, ok := m[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out, nil
}

// dialRecorder records every dial and connects none of them (unless a route
// sends it to a real loopback listener).
type dialRecorder struct {
	mu     sync.Mutex
	dials  []string
	routes map[string]string // checked address -> loopback address really dialed
}

func (d *dialRecorder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.dials = append(d.dials, addr)
	to, ok := d.routes[addr]
	d.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("test dialer: recorded %s, not connected", addr)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, to)
}

func (d *dialRecorder) recorded() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.dials...)
}

// The guard's decision on what the dialer is asked to reach, with an injected
// resolver: nothing refused is ever handed to the dial function.
func TestGuardRefusesBeforeDialing(t *testing.T) {
	res := mapResolver{
		"loopback.test": {"127.0.0.1"},
		"rebind.test":   {"93.184.215.14", "10.0.0.5"},
		"v6local.test":  {"::1"},
		"public.test":   {"93.184.215.14"},
	}
	refused := map[string]string{
		"127.0.0.1:80":          rangeLoopback,
		"[::1]:80":              rangeLoopback,
		"[::ffff:127.0.0.1]:80": rangeLoopback,
		"0x7f000001:80":         rangeLoopback,
		"2130706433:80":         rangeLoopback,
		"10.0.0.1:80":           rangePrivate,
		"169.254.169.254:80":    rangeMetadata,
		"[fd00:ec2::254]:80":    rangeMetadata,
		"100.64.0.1:80":         rangeCGNAT,
		"loopback.test:8080":    rangeLoopback,
		"v6local.test:443":      rangeLoopback,
		"rebind.test:443":       rangePrivate,
		"[fe80::1%25eth0]:80":   rangeLinkLocal,
	}
	var counted []string
	rec := &dialRecorder{}
	g := newGuard(nil, res, rec.dial, time.Second, func(c string) { counted = append(counted, c) })
	for addr, class := range refused {
		_, err := g.DialContext(context.Background(), "tcp", addr)
		var re *RefusedError
		if !errors.As(err, &re) || re.Range != class {
			t.Errorf("%s: got %v, want refusal as %s", addr, err, class)
		}
	}
	if d := rec.recorded(); len(d) != 0 {
		t.Fatalf("refused addresses reached the dialer: %v", d)
	}
	if len(counted) != len(refused) {
		t.Fatalf("refusals counted %d, want %d", len(counted), len(refused))
	}

	// A public address is dialed, as the checked IP (not the name again).
	if _, err := g.DialContext(context.Background(), "tcp", "public.test:443"); err == nil {
		t.Fatal("recorder connected")
	}
	if d := rec.recorded(); len(d) != 1 || d[0] != "93.184.215.14:443" {
		t.Fatalf("dials %v, want the checked address", d)
	}

	// Allow-listing loopback lets exactly loopback through.
	rec2 := &dialRecorder{}
	g2 := newGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, res, rec2.dial, time.Second, nil)
	for _, addr := range []string{"127.0.0.1:80", "0x7f000001:80", "loopback.test:80", "[::ffff:127.0.0.1]:80"} {
		if _, err := g2.DialContext(context.Background(), "tcp", addr); errors.As(err, new(*RefusedError)) {
			t.Errorf("%s refused although allow-listed", addr)
		}
	}
	if _, err := g2.DialContext(context.Background(), "tcp", "10.0.0.1:80"); !errors.As(err, new(*RefusedError)) {
		t.Error("10.0.0.1 passed a loopback-only allow-list")
	}
	if d := rec2.recorded(); len(d) != 4 {
		t.Fatalf("allow-listed dials %v", d)
	}
}

// The socket-level check refuses even if a caller bypassed DialContext.
func TestGuardControlHook(t *testing.T) {
	g := newGuard(nil, nil, nil, time.Second, nil)
	if err := g.control("tcp", "127.0.0.1:80", nil); !errors.As(err, new(*RefusedError)) {
		t.Fatalf("control: %v", err)
	}
	if err := g.control("tcp", "93.184.215.14:443", nil); err != nil {
		t.Fatalf("control refused a public address: %v", err)
	}
}
