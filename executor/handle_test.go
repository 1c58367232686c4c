package executor

import (
	"errors"
	"testing"
)

func TestCheckHandle(t *testing.T) {
	for _, tc := range []struct {
		name, source string
		ok           bool
	}{
		{"function", "function handle(req) return 1 end", true},
		{"assignment", "handle = function(req) return 1 end", true},
		{"through _G", `_G["handle"] = function() end`, true},
		{"long string", "rawset(_G, [==[handle]==], print)", true},
		{"single quotes", "rawset(_G, 'handle', print)", true},
		{"after a comment", "-- a comment\nfunction handle() end", true},
		{"empty", "", false},
		{"other name", "function handler(req) return 1 end", false},
		{"only in a comment", "-- function handle(req)\nfunction main() end", false},
		{"only in a long comment", "--[[ function handle(req) end ]] function main() end", false},
		{"only in a leveled long comment", "--[=[ ]] handle ]=] x = 1", false},
		{"prefix of an identifier", "handle_request = 1 local xhandle = 2", false},
		{"misspelt", "function Handle(req) end", false},
		{"after an escaped quote", `x = "\"" function main() end`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckHandle(tc.source)
			if tc.ok && err != nil {
				t.Errorf("CheckHandle = %v, want nil", err)
			}
			if !tc.ok && !errors.As(err, new(*MissingHandleError)) {
				t.Errorf("CheckHandle = %v, want *MissingHandleError", err)
			}
		})
	}
}
