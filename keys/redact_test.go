package keys

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	key := Prefix + strings.Repeat("a", bodyLen)
	tests := []struct {
		name, in, want string
	}{
		{"no key", "hello pic_", "hello pic_"},
		{"too short", Prefix + "abc", Prefix + "abc"},
		{"whole", key, Mask},
		{"inside text", "x=" + key + "&y=1", "x=" + Mask + "&y=1"},
		{"upper case", strings.ToUpper(key), Mask},
		{"glued characters taken too", key + "zz", Mask},
		{"two keys", key + " " + key, Mask + " " + Mask},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Redact(tt.in); got != tt.want {
				t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := Contains([]byte(tt.in)); got != (tt.in != tt.want) {
				t.Errorf("Contains(%q) = %v", tt.in, got)
			}
		})
	}
}

func TestRedactHeader(t *testing.T) {
	key := Prefix + strings.Repeat("b", bodyLen)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(":"+key))
	tests := []struct {
		name, in, want string
	}{
		{"bearer", "Bearer " + key, "Bearer " + Mask},
		{"basic credentials", basic, "Basic " + Mask},
		{"basic without a key", "Basic " + base64.StdEncoding.EncodeToString([]byte("u:p")), "Basic " + base64.StdEncoding.EncodeToString([]byte("u:p"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactHeader(tt.in); got != tt.want {
				t.Errorf("RedactHeader(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
