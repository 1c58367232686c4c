package catalog

import (
	"errors"
	"testing"
)

// TestValidateHTTPAllow: a function's options are refused, as invalid
// options, when an http_allow entry is not one (the entry rules are
// hostapi's, tested there).
func TestValidateHTTPAllow(t *testing.T) {
	tests := []struct {
		entry string
		ok    bool
	}{
		{"api.example.com", true},
		{"*.example.com:8080", true},
		{"[2001:db8::1]", true},
		{"*.10.0.0.1", false},
		{"", false},
		{"http://example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			err := FunctionOptions{HTTPAllow: []string{"ok.example.com", tt.entry}}.validate()
			var invalid *InvalidOptionsError
			if tt.ok != (err == nil) || (err != nil && !errors.As(err, &invalid)) {
				t.Fatalf("validate(%q) = %v, want ok %v", tt.entry, err, tt.ok)
			}
		})
	}
}
