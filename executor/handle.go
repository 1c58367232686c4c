package executor

import "strings"

// MissingHandleError is returned by CheckHandle for a source that never
// names handle, so it cannot define the function every invocation calls.
type MissingHandleError struct{}

func (*MissingHandleError) Error() string {
	return "the source does not define handle: every invocation calls a global function handle(req); define it with function handle(req) ... end"
}

// CheckHandle refuses a source that cannot define the global handle: one
// where the word handle appears neither in the code nor in a string (the
// code may say _G["handle"]). It only reads the text: running the top level
// to look at the globals would run untrusted code in the caller, and
// anything it might do there is what Run sandboxes. A source that names
// handle and still leaves it undefined (a local function handle) fails at
// its first invocation instead. Call it after Compile, on a source that
// compiles.
func CheckHandle(source string) error {
	if namesHandle(source) {
		return nil
	}
	return &MissingHandleError{}
}

// namesHandle scans Lua source, skipping comments, for the identifier
// handle or a string holding the word.
func namesHandle(src string) bool {
	const name = "handle"
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '-' && strings.HasPrefix(src[i:], "--"):
			i += 2
			if level, ok := longBracket(src[i:]); ok {
				i = skipLong(src, i, level)
			} else if nl := strings.IndexByte(src[i:], '\n'); nl >= 0 {
				i += nl + 1
			} else {
				i = len(src)
			}
		case c == '[':
			level, ok := longBracket(src[i:])
			if !ok {
				i++
				continue
			}
			end := skipLong(src, i, level)
			if strings.Contains(src[i:end], name) {
				return true
			}
			i = end
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(src) && src[j] != c && src[j] != '\n' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			end := min(j+1, len(src))
			if strings.Contains(src[i:end], name) {
				return true
			}
			i = end
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && (isIdentStart(src[j]) || isDigit(src[j])) {
				j++
			}
			if src[i:j] == name {
				return true
			}
			i = j
		case isDigit(c):
			// A number such as 0x1f or 1e5: its letters are no identifier.
			j := i + 1
			for j < len(src) && (isIdentStart(src[j]) || isDigit(src[j]) || src[j] == '.') {
				j++
			}
			i = j
		default:
			i++
		}
	}
	return false
}

// longBracket reads the opening of a long string or comment, [[ or [==[,
// and returns its level (the number of =).
func longBracket(s string) (int, bool) {
	if len(s) < 2 || s[0] != '[' {
		return 0, false
	}
	level := 0
	for level+1 < len(s) && s[level+1] == '=' {
		level++
	}
	if level+1 < len(s) && s[level+1] == '[' {
		return level, true
	}
	return 0, false
}

// skipLong returns the index after the long bracket of level opened at
// src[i], or len(src) when it is not closed.
func skipLong(src string, i, level int) int {
	closing := "]" + strings.Repeat("=", level) + "]"
	if end := strings.Index(src[i+level+2:], closing); end >= 0 {
		return i + level + 2 + end + len(closing)
	}
	return len(src)
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
