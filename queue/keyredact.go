package queue

import (
	"maps"
	"slices"

	"github.com/picloud/picloud/keys"
)

// redactKeys replaces every PiCloud API key in the request, wherever it is
// (method, path, query names and values, header names and values, cookies,
// body), with keys.Mask: a caller who sent a key the wrong way must not have
// it stored in the invocation row, readable with an invoke key, nor shown
// to the script.
func (r *HTTPRequest) redactKeys() {
	r.Method = keys.Redact(r.Method)
	r.Path = keys.Redact(r.Path)
	r.Query = redactKeyMap(r.Query, keys.Redact)
	r.Headers = redactKeyMap(r.Headers, keys.RedactHeader)
	if keys.Contains(r.Body) {
		r.Body = []byte(keys.Redact(string(r.Body)))
	}
}

// redactKeyMap returns m with its names and values redacted; m itself when
// nothing in it is a key, which is nearly always.
func redactKeyMap(m map[string]string, value func(string) string) map[string]string {
	changed := false
	for k, v := range m {
		if keys.Redact(k) != k || value(v) != v {
			changed = true
			break
		}
	}
	if !changed {
		return m
	}
	out := make(map[string]string, len(m))
	// In order, so that two names merged below join the same way each time.
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		k = keys.Redact(k)
		if prev, ok := out[k]; ok {
			// Two names that differed only by a key: keep both values.
			out[k] = prev + ", " + value(v)
			continue
		}
		out[k] = value(v)
	}
	return out
}
