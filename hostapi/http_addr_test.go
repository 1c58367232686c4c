package hostapi

import (
	"context"
	"encoding/json"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// specialAddrCases: for every range of the IANA IPv4 and IPv6
// special-purpose registries (and multicast, class E, broadcast, the other
// non-global IPv6 blocks), an address inside it; and public addresses,
// including ones just outside the ranges.
var specialAddrCases = []struct {
	addr    string
	special bool
}{
	// IPv4 special-purpose registry.
	{"0.0.0.0", true}, {"0.1.2.3", true},
	{"10.0.0.1", true}, {"10.255.255.255", true},
	{"100.64.0.1", true}, {"100.127.255.254", true},
	{"127.0.0.1", true}, {"127.255.255.254", true},
	{"169.254.169.254", true},
	{"172.16.0.1", true}, {"172.31.255.255", true},
	{"192.0.0.1", true}, {"192.0.0.8", true}, {"192.0.0.9", true}, {"192.0.0.10", true}, {"192.0.0.170", true}, {"192.0.0.255", true},
	{"192.0.2.1", true},
	{"192.31.196.1", true},
	{"192.52.193.1", true},
	{"192.88.99.1", true},
	{"192.168.1.1", true},
	{"192.175.48.1", true},
	{"198.18.0.1", true}, {"198.19.255.255", true},
	{"198.51.100.7", true},
	{"203.0.113.9", true},
	// Multicast, reserved (class E), limited broadcast.
	{"224.0.0.1", true}, {"239.255.255.250", true},
	{"240.0.0.1", true}, {"255.255.255.254", true}, {"255.255.255.255", true},
	// IPv6 special-purpose registry.
	{"::", true}, {"::1", true},
	{"::ffff:127.0.0.1", true}, {"::ffff:8.8.8.8", true}, // IPv4-mapped, whatever it maps
	{"::127.0.0.1", true}, {"::8.8.8.8", true}, // IPv4-compatible
	{"::ffff:0:a00:1", true},                             // IPv4-translated
	{"64:ff9b::a00:1", true}, {"64:ff9b::808:808", true}, // NAT64
	{"64:ff9b:1::1", true}, // local-use NAT64
	{"100::1", true},       // discard-only
	{"100:0:0:1::1", true}, // dummy prefix
	{"2001::1", true},      // Teredo
	{"2001:0:4136:e378::1", true},
	{"2001:1::1", true}, {"2001:1::2", true}, // PCP, TURN anycast
	{"2001:2::1", true},     // benchmarking
	{"2001:3::1", true},     // AMT
	{"2001:4:112::1", true}, // AS112-v6
	{"2001:10::1", true},    // ORCHID
	{"2001:20::1", true},    // ORCHIDv2
	{"2001:30::1", true},    // drone remote ID
	{"2001:1ff::1", true},   // rest of 2001::/23
	{"2001:db8::1", true},   // documentation
	{"2002:a00:1::1", true}, // 6to4
	{"2002:808:808::1", true},
	{"2620:4f:8000::1", true},                // AS112 direct delegation
	{"3fff::1", true}, {"3fff:fff::1", true}, // documentation (RFC 9637)
	{"5f00::1", true},                         // SRv6 SIDs
	{"fc00::1", true}, {"fd12:3456::1", true}, // unique local
	{"fe80::1", true}, {"fe80::1%eth0", true}, // link-local
	{"fec0::1", true},                    // site-local
	{"ff02::1", true}, {"ff0e::1", true}, // multicast
	{"4000::1", true}, {"1::1", true}, // outside 2000::/3
	// Public.
	{"1.1.1.1", false}, {"8.8.8.8", false}, {"93.184.216.34", false},
	{"9.255.255.255", false}, {"11.0.0.1", false},
	{"100.63.255.255", false}, {"100.128.0.1", false},
	{"172.15.255.255", false}, {"172.32.0.1", false},
	{"192.0.1.1", false}, {"192.0.3.1", false},
	{"192.167.255.255", false}, {"192.169.0.1", false},
	{"198.17.255.255", false}, {"198.20.0.1", false},
	{"198.51.99.1", false}, {"203.0.112.1", false}, {"223.255.255.255", false},
	{"2001:200::1", false},          // just past 2001::/23
	{"2001:4860:4860::8888", false}, // Google DNS
	{"2606:4700:4700::1111", false}, // Cloudflare DNS
	{"2001:db9::1", false}, {"2003::1", false}, {"2620:4f:8001::1", false},
	{"3ffe::1", false}, {"3fff:1000::1", false},
}

func TestSpecialAddresses(t *testing.T) {
	t.Parallel()
	for _, tt := range specialAddrCases {
		t.Run(tt.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tt.addr)
			why := specialAddr(a)
			if (why != "") != tt.special {
				t.Fatalf("specialAddr(%s) = %q, want special %v", a, why, tt.special)
			}
			// The same at connect time, which is what a DNS name that
			// resolves to the address meets.
			err := checkDialAddress(netip.AddrPortFrom(a, 443).String())
			if (err != nil) != tt.special {
				t.Fatalf("checkDialAddress(%s) = %v, want refused %v", a, err, tt.special)
			}
			if tt.special && !strings.Contains(err.Error(), "is not a public address") {
				t.Fatalf("checkDialAddress(%s) = %v", a, err)
			}
			// And for a literal in the URL, before any connection.
			host, entry := a.String(), a.WithZone("").String()
			if a.Is6() {
				host, entry = "["+host+"]", "["+entry+"]"
			}
			f := NewHTTPFetcher([]string{entry}, HTTPConfig{})
			u, err := url.Parse("https://" + strings.ReplaceAll(host, "%", "%25") + "/x")
			if err != nil {
				t.Fatal(err)
			}
			if err := f.allowed(u); (err != nil) != tt.special {
				t.Fatalf("allowed(%s) = %v, want refused %v", u, err, tt.special)
			}
			// --http-allow-private lets all of them through.
			f = NewHTTPFetcher([]string{entry}, HTTPConfig{AllowPrivate: true})
			if err := f.allowed(u); err != nil {
				t.Fatalf("allowed(%s) with AllowPrivate = %v", u, err)
			}
		})
	}
}

// TestHTTPDialRefusesResolvedNames: a name that resolves to a special
// address is refused when the connection is made, with no server needed.
func TestHTTPDialRefusesResolvedNames(t *testing.T) {
	t.Parallel()
	f := NewHTTPFetcher([]string{"localhost"}, HTTPConfig{})
	args, _ := json.Marshal(httpRequestArgs{URL: "http://localhost:1/"})
	_, err := f.Fetch(context.Background(), args)
	if err == nil || !strings.Contains(err.Error(), "is not a public address (loopback") {
		t.Fatalf("fetch(localhost) = %v, want refused as loopback", err)
	}
}

func TestHTTPAllowEntries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		entry string
		err   string   // a refused entry
		allow []string // URLs it allows
		deny  []string // URLs it does not
	}{
		{entry: "api.example.com", allow: []string{"https://api.example.com/x", "http://API.example.com:8080/"}, deny: []string{"https://example.com/", "https://x.api.example.com/"}},
		{entry: "*.example.org", allow: []string{"https://a.example.org/", "https://a.b.example.org:9/"}, deny: []string{"https://example.org/", "https://aexample.org/"}},
		{entry: "localhost:9000", allow: []string{"http://localhost:9000/"}, deny: []string{"http://localhost/", "http://localhost:9001/"}},
		{entry: "Api.Example.COM:443", allow: []string{"https://api.example.com/"}, deny: []string{"http://api.example.com/"}},
		{entry: "93.184.216.34", allow: []string{"http://93.184.216.34/"}, deny: []string{"http://93.184.216.35/"}},
		{entry: "[2606:4700:4700::1111]:443", allow: []string{"https://[2606:4700:4700::1111]/", "https://[2606:4700:4700:0::1111]:443/", "https://[2606:4700:4700::1111%25eth0]/"}, deny: []string{"http://[2606:4700:4700::1111]/", "https://[2606:4700:4700::1112]/"}},
		{entry: "[2606:4700:4700::1111]", allow: []string{"http://[2606:4700:4700::1111]:8080/"}},
		{entry: "[2001:db8::1]:443", deny: []string{"https://[2001:db8::1]/"}}, // parses; the address is refused
		{entry: "2001:db8::1", err: "brackets"},
		{entry: "[2001:db8::1", err: "missing ']'"},
		{entry: "[api.example.com]:443", err: "not an IPv6 address"},
		{entry: "[10.0.0.1]", err: "not an IPv6 address"},
		{entry: "[2001:db8::1]x", err: "unexpected"},
		{entry: "[fe80::1%eth0]", err: "not an IPv6 address"},
		{entry: "api.example.com:0", err: "port"},
		{entry: "api.example.com:65536", err: "port"},
		{entry: "api.example.com:", err: "empty port"},
		{entry: "api.example.com:http", err: "port"},
		{entry: "*.10.0.0.1", err: "wildcard"},
		{entry: "", err: "is not a host"},
		{entry: "-bad.example.com", err: "is not a host"},
		{entry: "bad_name.example.com", err: "is not a host"},
		{entry: "http://example.com", err: "port"},
		{entry: "example.com/path", err: "is not a host"},
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			_, err := parseHTTPAllowEntry(tt.entry)
			verr := CheckHTTPAllowEntry(tt.entry)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || verr == nil {
					t.Fatalf("parse = %v, validate = %v, want an error containing %q", err, verr, tt.err)
				}
				return
			}
			if err != nil || verr != nil {
				t.Fatalf("parse = %v, validate = %v", err, verr)
			}
			f := NewHTTPFetcher([]string{tt.entry}, HTTPConfig{})
			for _, raw := range tt.allow {
				u, _ := url.Parse(raw)
				if err := f.allowed(u); err != nil {
					t.Errorf("%s: %v", raw, err)
				}
			}
			for _, raw := range tt.deny {
				u, _ := url.Parse(raw)
				if err := f.allowed(u); err == nil {
					t.Errorf("%s allowed", raw)
				}
			}
		})
	}
}
