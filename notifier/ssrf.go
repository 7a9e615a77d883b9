package notifier

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Resolver turns a host name into addresses. *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// DialFunc connects to addr ("ip:port"): an address the guard already checked.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// RefusedError is the SSRF guard's refusal. It is a final failure: the event
// goes to the DLQ with this text as the reason.
type RefusedError struct {
	Host  string     // the callback URL's host as written
	Addr  netip.Addr // the resolved address that was refused
	Range string     // bounded class: loopback, private, link_local, ...
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("ssrf guard: refused to connect to %s (%s): %s address (allow-list it in NOTIFIER_ALLOW_CIDRS if intended)",
		e.Host, e.Addr, e.Range)
}

// Address classes the guard refuses; they label dialstream_notifier_ssrf_refusals_total.
const (
	rangeLoopback    = "loopback"
	rangePrivate     = "private"
	rangeLinkLocal   = "link_local"
	rangeCGNAT       = "cgnat"
	rangeMetadata    = "metadata"
	rangeMulticast   = "multicast"
	rangeUnspecified = "unspecified"
	rangeReserved    = "reserved"
)

var refusedRanges = []string{rangeLoopback, rangePrivate, rangeLinkLocal, rangeCGNAT,
	rangeMetadata, rangeMulticast, rangeUnspecified, rangeReserved}

type deniedPrefix struct {
	prefix netip.Prefix
	class  string
}

// denied lists what no webhook may reach, most specific first (the first
// match names the class). Besides the ranges docs/architecture.md, Webhooks
// out names, it refuses the special-purpose ranges of RFC 6890 that are
// never a public web server.
var denied = func() []deniedPrefix {
	spec := []struct{ cidr, class string }{
		{"169.254.169.254/32", rangeMetadata}, // AWS, GCP, Azure, OpenStack
		{"fd00:ec2::254/128", rangeMetadata},  // AWS over IPv6
		{"100.100.100.200/32", rangeMetadata}, // Alibaba Cloud
		{"0.0.0.0/8", rangeUnspecified},
		{"10.0.0.0/8", rangePrivate},
		{"100.64.0.0/10", rangeCGNAT},
		{"127.0.0.0/8", rangeLoopback},
		{"169.254.0.0/16", rangeLinkLocal},
		{"172.16.0.0/12", rangePrivate},
		{"192.0.0.0/24", rangeReserved}, // IETF protocol assignments (192.0.0.192: Oracle metadata)
		{"192.0.2.0/24", rangeReserved},
		{"192.88.99.0/24", rangeReserved},
		{"192.168.0.0/16", rangePrivate},
		{"198.18.0.0/15", rangeReserved},
		{"198.51.100.0/24", rangeReserved},
		{"203.0.113.0/24", rangeReserved},
		{"224.0.0.0/4", rangeMulticast},
		{"240.0.0.0/4", rangeReserved}, // includes 255.255.255.255
		{"::/128", rangeUnspecified},
		{"::1/128", rangeLoopback},
		{"::/96", rangeReserved},          // IPv4-compatible (deprecated)
		{"64:ff9b:1::/48", rangeReserved}, // local-use NAT64
		{"100::/64", rangeReserved},       // discard-only
		{"2001::/32", rangeReserved},      // Teredo
		{"2001:db8::/32", rangeReserved},
		{"fc00::/7", rangePrivate},
		{"fe80::/10", rangeLinkLocal},
		{"fec0::/10", rangeReserved}, // site-local (deprecated)
		{"ff00::/8", rangeMulticast},
	}
	out := make([]deniedPrefix, len(spec))
	for i, s := range spec {
		out[i] = deniedPrefix{netip.MustParsePrefix(s.cidr), s.class}
	}
	return out
}()

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// classify returns the class of a refused address, or "" for an address a
// webhook may reach. IPv4 carried inside IPv6 (mapped, NAT64, 6to4) is judged
// as the IPv4 address it reaches.
func classify(a netip.Addr) string {
	a = a.WithZone("") // Prefix.Contains is false for zoned addresses
	if !a.IsValid() {
		return rangeUnspecified
	}
	a = a.Unmap()
	for _, d := range denied {
		if d.prefix.Contains(a) {
			return d.class
		}
	}
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64Prefix.Contains(a):
			return classify(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(a):
			return classify(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	return ""
}

// guard is the SSRF check at dial time: after DNS, on every resolved address,
// and the connection goes to the address that was checked, so a DNS answer
// that changes between check and connect (rebinding) cannot slip through.
type guard struct {
	allow    []netip.Prefix
	resolver Resolver
	dial     DialFunc
	refused  func(class string)
	timeout  time.Duration // bounds resolve + connect
}

func newGuard(allow []netip.Prefix, r Resolver, dial DialFunc, connectTimeout time.Duration, refused func(string)) *guard {
	g := &guard{allow: allow, resolver: r, dial: dial, refused: refused, timeout: connectTimeout}
	if g.resolver == nil {
		g.resolver = net.DefaultResolver
	}
	if g.dial == nil {
		// The Control hook checks once more at the socket, for the address
		// the kernel is asked to connect to.
		d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second, Control: g.control}
		g.dial = d.DialContext
	}
	if g.refused == nil {
		g.refused = func(string) {}
	}
	return g
}

// check returns the refused class of a, or "" when a may be dialed.
func (g *guard) check(a netip.Addr) string {
	u := a.WithZone("").Unmap()
	for _, p := range g.allow {
		if p.Contains(u) {
			return ""
		}
	}
	return classify(a)
}

// DialContext is the transport's dialer: resolve, check every address, dial
// a checked one.
func (g *guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if g.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
		defer cancel()
	}
	ips, err := g.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	// Refuse if any address is refused, not only the one we would use: a
	// name that mixes public and internal addresses is an attack or a
	// misconfiguration either way.
	for _, ip := range ips {
		if class := g.check(ip); class != "" {
			g.refused(class)
			return nil, &RefusedError{Host: host, Addr: ip, Range: class}
		}
	}
	var errs []error
	for _, ip := range ips {
		c, err := g.dial(ctx, network, net.JoinHostPort(ip.WithZone("").String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (g *guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	// "0x7f000001", "2130706433", "0177.1": not IP literals to Go, but the C
	// library's resolver reads them as 127.0.0.1. Judge them as that address
	// instead of asking a resolver what it makes of them.
	if a, ok := parseLegacyIPv4(host); ok {
		return []netip.Addr{a}, nil
	}
	ips, err := g.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	return ips, nil
}

// control runs on the socket just before connect.
func (g *guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("ssrf guard: unexpected dial address %q", address)
	}
	if class := g.check(ap.Addr()); class != "" {
		g.refused(class)
		return &RefusedError{Host: address, Addr: ap.Addr(), Range: class}
	}
	return nil
}

// parseLegacyIPv4 reads the inet_aton forms: one to four parts, each decimal,
// octal (leading 0) or hex (0x); the last part fills the remaining bytes.
func parseLegacyIPv4(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		base, digits := 10, p
		switch {
		case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
			base, digits = 16, p[2:]
		case len(p) > 1 && p[0] == '0':
			base, digits = 8, p[1:]
		}
		if digits == "" && base != 8 {
			return netip.Addr{}, false
		}
		if digits == "" {
			digits = "0"
		}
		v, err := strconv.ParseUint(digits, base, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var n uint64
	last := len(vals) - 1
	for i, v := range vals[:last] {
		if v > 0xff {
			return netip.Addr{}, false
		}
		n |= v << (8 * (3 - i))
	}
	if vals[last] >= 1<<(8*(4-last)) {
		return netip.Addr{}, false
	}
	n |= vals[last]
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}
