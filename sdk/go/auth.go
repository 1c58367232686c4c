package picloud

import (
	"context"
	"net/http"
)

// WithAPIKey sends key as a bearer token on every request. An empty key
// adds nothing, so a caller can pass an optional setting straight through
// and reach a server that runs without keys.
func WithAPIKey(key string) ClientOption {
	return WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		return nil
	})
}
