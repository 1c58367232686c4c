package executor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	lua "github.com/Shopify/go-lua"
)

// SyntaxError is returned by Compile (and shown in Result.Error when a stored
// function does not compile).
type SyntaxError struct {
	Line    int    // 1-based line the parser stopped at
	Message string // the Lua parser's text, e.g. "'=' expected near 'x'"
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Message) }

// Compile parses source in text mode without running it. It returns nil or a
// *SyntaxError and never panics.
func Compile(name, source string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &SyntaxError{Line: 1, Message: fmt.Sprintf("the Lua parser failed: %v", v)}
		}
	}()
	l := lua.NewState()
	if err := load(l, name, source); err != nil {
		var se *SyntaxError
		if !errors.As(err, &se) {
			// go-lua's parser crashed (its protected call turned a Go
			// panic into an error, e.g. a failed assertion in its number
			// scanner for "A.0X0000"): to the caller, this source does
			// not compile.
			return &SyntaxError{Line: 1, Message: err.Error()}
		}
		return err
	}
	return nil
}

// chunkName makes go-lua print positions as "<name>:<line>:". A leading "="
// means "use the rest verbatim" ("@" would mean a file name, and a bare
// string is shown as [string "..."]).
func chunkName(name string) string {
	if name == "" {
		name = "function"
	}
	return "=" + name
}

// chunkID is what go-lua prints for chunkName(name): it cuts the name to 59
// bytes (its idSize is 60, including the "=").
func chunkID(name string) string {
	src := chunkName(name)
	if len(src) <= 60 {
		return src[1:]
	}
	return src[1:60]
}

// load compiles source in text mode only: go-lua's binary chunk loader trusts
// its input (a crafted 40-byte chunk caused a fatal out-of-memory). On
// success it pushes the chunk; on failure it pushes nothing and returns a
// *SyntaxError, or another error if the parser itself failed.
func load(l *lua.State, name, source string) error {
	err := lua.LoadBuffer(l, source, chunkName(name), "t")
	if err == nil {
		return nil
	}
	msg, _ := l.ToString(-1)
	l.Pop(1)
	if !errors.Is(err, lua.SyntaxError) {
		return fmt.Errorf("the Lua parser failed: %w", err)
	}
	return parseSyntaxError(name, msg)
}

// parseSyntaxError splits go-lua's "<chunk>:<line>: <message>".
func parseSyntaxError(name, msg string) *SyntaxError {
	if rest, ok := strings.CutPrefix(msg, chunkID(name)+":"); ok {
		if num, text, ok := strings.Cut(rest, ":"); ok {
			if line, err := strconv.Atoi(num); err == nil {
				return &SyntaxError{Line: line, Message: strings.TrimSpace(text)}
			}
		}
	}
	// Messages without a position (a binary chunk refused by text mode)
	// concern the start of the source.
	return &SyntaxError{Line: 1, Message: msg}
}
