package hostapi

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// specialRange is a block of addresses a script may not reach unless the
// operator allows private addresses (HTTPConfig.AllowPrivate).
type specialRange struct {
	prefix netip.Prefix
	name   string
}

// deniedIPv4 lists the IANA IPv4 Special-Purpose Address Registry (every
// entry, whether or not the registry calls it globally reachable: none is a
// server a function has reason to call, and several are relays or anycast
// services run inside networks), plus multicast and the reserved class E,
// which holds the limited broadcast address.
var deniedIPv4 = []specialRange{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network" (RFC 791)`},
	{netip.MustParsePrefix("10.0.0.0/8"), "private (RFC 1918)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space, carrier-grade NAT (RFC 6598)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback (RFC 1122)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (RFC 3927)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private (RFC 1918)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments (RFC 6890)"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation, TEST-NET-1 (RFC 5737)"},
	{netip.MustParsePrefix("192.31.196.0/24"), "AS112-v4 (RFC 7535)"},
	{netip.MustParsePrefix("192.52.193.0/24"), "AMT (RFC 7450)"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast (RFC 7526)"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private (RFC 1918)"},
	{netip.MustParsePrefix("192.175.48.0/24"), "AS112 direct delegation (RFC 7534)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking (RFC 2544)"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation, TEST-NET-2 (RFC 5737)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation, TEST-NET-3 (RFC 5737)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast (RFC 5771)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved, and limited broadcast (RFC 1112, RFC 919)"},
}

// globalIPv6 is the only IPv6 block IANA allocates for global unicast. All
// of the rest of the space is special: unspecified and loopback, the forms
// that embed an IPv4 address (IPv4-mapped ::ffff:0:0/96, IPv4-compatible
// ::/96, IPv4-translated ::ffff:0:0:0/96, NAT64 64:ff9b::/96 and
// 64:ff9b:1::/48), discard-only 100::/64, SRv6 5f00::/16, unique local
// fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast ff00::/8.
// Refusing everything outside it keeps addresses IANA assigns later
// refused too. The embedded IPv4 forms are refused whatever they embed: a
// translator would forward them to that IPv4 address, unchecked.
var globalIPv6 = netip.MustParsePrefix("2000::/3")

// deniedIPv6 lists the IANA IPv6 Special-Purpose Address Registry's entries
// inside globalIPv6.
var deniedIPv6 = []specialRange{
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignments: Teredo, benchmarking, ORCHID, AMT, AS112 (RFC 2928)"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation (RFC 3849)"},
	{netip.MustParsePrefix("2002::/16"), "6to4 (RFC 3056)"},
	{netip.MustParsePrefix("2620:4f:8000::/48"), "AS112 direct delegation (RFC 7534)"},
	{netip.MustParsePrefix("3fff::/20"), "documentation (RFC 9637)"},
}

// specialAddr returns why a script may not reach a, or "" for an address
// on the public internet. A zone (fe80::1%eth0) is ignored.
func specialAddr(a netip.Addr) string {
	a = a.WithZone("")
	if a.Is4() {
		for _, r := range deniedIPv4 {
			if r.prefix.Contains(a) {
				return fmt.Sprintf("%s, %s", r.name, r.prefix)
			}
		}
		return ""
	}
	if !globalIPv6.Contains(a) {
		switch {
		case a.Is4In6():
			return "IPv4-mapped IPv6 (RFC 4291), ::ffff:0:0/96"
		case a.IsLoopback():
			return "loopback (RFC 4291), ::1/128"
		}
		return "outside the global unicast block 2000::/3: special-purpose, local or multicast"
	}
	for _, r := range deniedIPv6 {
		if r.prefix.Contains(a) {
			return fmt.Sprintf("%s, %s", r.name, r.prefix)
		}
	}
	return ""
}

// httpAllowEntry is one parsed http_allow entry: a host name (lower case),
// a wildcard for the subdomains of a name ("*.example.com" has wildcard set
// and host "example.com"), or an IP address; and a port, "" for any.
type httpAllowEntry struct {
	host     string
	addr     netip.Addr // valid when the entry is an IP address
	wildcard bool
	port     string
}

// parseHTTPAllowEntry reads an http_allow entry: "api.example.com",
// "*.example.com", "10.0.0.5" or "[2001:db8::1]", each optionally followed
// by ":port". IPv6 addresses need their brackets, as in a URL, since the
// colons would otherwise be read as a port.
// CheckHTTPAllowEntry reports why entry is not a valid http_allow entry,
// or nil.
func CheckHTTPAllowEntry(entry string) error {
	_, err := parseHTTPAllowEntry(entry)
	return err
}

func parseHTTPAllowEntry(entry string) (httpAllowEntry, error) {
	var e httpAllowEntry
	var host string
	if strings.HasPrefix(entry, "[") {
		end := strings.IndexByte(entry, ']')
		if end < 0 {
			return e, fmt.Errorf("http_allow entry %q: missing ']'", entry)
		}
		host = entry[1:end]
		rest := entry[end+1:]
		if rest != "" {
			p, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return e, fmt.Errorf("http_allow entry %q: unexpected %q after ']'", entry, rest)
			}
			e.port = p
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return e, fmt.Errorf("http_allow entry %q: %q is not an IPv6 address", entry, host)
		}
		e.addr, e.host = a, a.String()
	} else {
		if strings.Count(entry, ":") > 1 {
			return e, fmt.Errorf("http_allow entry %q: write IPv6 addresses in brackets, as in [2001:db8::1]:443", entry)
		}
		host, e.port, _ = strings.Cut(entry, ":")
		if e.port == "" && strings.HasSuffix(entry, ":") {
			return e, fmt.Errorf("http_allow entry %q: empty port", entry)
		}
		host = strings.ToLower(host)
		if name, ok := strings.CutPrefix(host, "*."); ok {
			e.wildcard, host = true, name
		}
		if !validHostName(host) {
			return e, fmt.Errorf("http_allow entry %q is not a host, *.domain, IP address or [IPv6 address], or either with :port", entry)
		}
		e.host = host
		if a, err := netip.ParseAddr(host); err == nil {
			if e.wildcard {
				return e, fmt.Errorf("http_allow entry %q: a wildcard needs a domain, not an address", entry)
			}
			e.addr = a
		}
	}
	if e.port != "" {
		if n, err := strconv.Atoi(e.port); err != nil || n < 1 || n > 65535 || e.port[0] == '0' {
			return e, fmt.Errorf("http_allow entry %q: port %q is not a number from 1 to 65535", entry, e.port)
		}
	}
	return e, nil
}

// validHostName accepts DNS names and IPv4 addresses: letters, digits,
// hyphens and dots, 253 characters at most, starting with a letter or digit.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for i := range len(h) {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '-' || c == '.') && i > 0:
		default:
			return false
		}
	}
	return true
}

// matches reports whether the entry allows host (lower case, IPv6 without
// brackets, as url.URL.Hostname gives it) on port.
func (e httpAllowEntry) matches(host, port string) bool {
	if e.port != "" && e.port != port {
		return false
	}
	if e.addr.IsValid() {
		a, err := netip.ParseAddr(host)
		return err == nil && a.WithZone("") == e.addr
	}
	if e.wildcard {
		return strings.HasSuffix(host, "."+e.host)
	}
	return host == e.host
}
