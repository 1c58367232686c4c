// Package hostapi holds the host services that scripts call through
// executor.Host which need nothing of the invocation lifecycle: kv, outbound
// HTTP with its SSRF rules, the masking of secrets in what a run outputs,
// and the error a script sees as it is.
package hostapi

import (
	"encoding/json"
	"fmt"
)

// ScriptError is an error the script should see as it is; other errors
// of a host call are the platform's and are logged, the script seeing only
// that the call failed.
type ScriptError struct{ msg string }

func (e *ScriptError) Error() string { return e.msg }

// Scriptf returns a ScriptError.
func Scriptf(format string, args ...any) error {
	return &ScriptError{fmt.Sprintf(format, args...)}
}

func scriptError(format string, args ...any) error { return Scriptf(format, args...) }

// DecodeArgs reads a host call's arguments; bad ones are the script's
// error.
func DecodeArgs(args json.RawMessage, v any) error {
	if err := json.Unmarshal(args, v); err != nil {
		return scriptError("bad arguments: %v", err)
	}
	return nil
}
