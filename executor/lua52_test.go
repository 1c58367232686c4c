package executor

import (
	"testing"
)

// TestStringMethodsSeeStringTable: as in Lua 5.2, where the string
// metatable's __index is the string table itself, methods on strings see
// what a script adds to or replaces in string, and only for that invocation.
func TestStringMethodsSeeStringTable(t *testing.T) {
	p := newTestPool(t, 1)
	tests := []struct{ name, src, want string }{
		{"added function", `function string.trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end
function handle() return ("  y  "):trim() end`, `"y"`},
		{"replaced function", `string.upper = function(s) return "U:" .. s end
function handle() return ("x"):upper() end`, `"U:x"`},
		{"added in handle", `function handle() string.twice = function(s) return s .. s end return ("ab"):twice() end`, `"abab"`},
		{"field, not only method", `function handle() string.tag = "t" return ("x").tag end`, `"t"`},
		{"global string replaced: methods keep the library", `function handle() local s = string; string = nil; s.shout = function(x) return x .. "!" end return ("hi"):shout() .. ("a"):rep(2) end`, `"hi!aa"`},
		{"removing a field does not hide the original", `function handle() string.upper = nil return ("x"):upper() end`, `"X"`},
		{"next invocation: no trim", `function handle() return tostring(("x").trim) .. tostring(("x").twice) end`, `"nilnil"`},
		{"next invocation: upper restored", `function handle() return ("x"):upper() end`, `"X"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runSource(t, p, tt.src)
			if res.Status != Succeeded || string(res.Value) != tt.want {
				t.Fatalf("got %s %s %s, want %s", res.Status, res.Value, res.Error, tt.want)
			}
		})
	}
}
