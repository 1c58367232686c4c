package catalog

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestFunctionOptionsPatched: a nil field keeps the option, a value sets
// it, a zero value resets it to its default; a zero retry backoff is a
// backoff of its own (retry at once), not a reset.
func TestFunctionOptionsPatched(t *testing.T) {
	current := FunctionOptions{Timeout: 5 * time.Second, MaxAttempts: 3, MaxConcurrency: 4, RetryBackoff: 2 * time.Second,
		MaxInstructions: 5000, HTTPAllow: []string{"a.example"}, Auth: AuthKey, LogRetention: time.Hour, ExposeErrors: true}
	tests := []struct {
		name  string
		patch FunctionPatch
		want  FunctionOptions
	}{
		{"empty patch keeps everything", FunctionPatch{Source: new("x")}, current},
		{"one option", FunctionPatch{Auth: new(AuthPublic)}, func() FunctionOptions { o := current; o.Auth = AuthPublic; return o }()},
		{"resets", FunctionPatch{Timeout: new(time.Duration(0)), MaxAttempts: new(0), MaxConcurrency: new(0), MaxInstructions: new(int64(0)),
			HTTPAllow: &[]string{}, Auth: new(Auth("")), LogRetention: new(time.Duration(0)), ExposeErrors: new(false), RetryBackoff: new(DefaultRetryBackoff)},
			DefaultFunctionOptions()},
		{"zero backoff is kept", FunctionPatch{RetryBackoff: new(time.Duration(0))}, func() FunctionOptions { o := current; o.RetryBackoff = 0; return o }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := current.Patched(tt.patch)
			if !slices.Equal(got.HTTPAllow, tt.want.HTTPAllow) {
				t.Errorf("http_allow %v, want %v", got.HTTPAllow, tt.want.HTTPAllow)
			}
			got.HTTPAllow, tt.want.HTTPAllow = nil, nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
