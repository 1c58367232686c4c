package catalog

import (
	"errors"

	"github.com/picloud/picloud/executor"
)

// SourceError is a source the catalog refuses to store, because every
// invocation of it would fail: it does not compile, or it cannot define
// the global handle that every invocation calls.
type SourceError struct {
	// Line is the line the Lua parser stopped at; zero when the source
	// compiles but does not define handle.
	Line int
	// Message says what is wrong, with the line for a syntax error:
	// "line 3: '=' expected near 'x'".
	Message string
}

func (e *SourceError) Error() string {
	if e.Line == 0 {
		return e.Message
	}
	return "the source does not compile: " + e.Message
}

// CheckFunction runs PutFunction's checks (the name, the options, and that
// the source compiles and names handle) without storing anything.
func (c *Catalog) CheckFunction(name, source string, opts FunctionOptions) error {
	return checkFunction(name, source, opts)
}

// checkSource refuses a source that does not compile or cannot define
// handle. The sandbox's errors become SourceError here, the one place the
// catalog meets the sandbox, so that callers need not import it.
func checkSource(name, source string) error {
	err := executor.Compile(name, source)
	if syntaxErr := (*executor.SyntaxError)(nil); errors.As(err, &syntaxErr) {
		return &SourceError{Line: syntaxErr.Line, Message: syntaxErr.Error()}
	}
	if err != nil {
		return err
	}
	if err := executor.CheckHandle(source); err != nil {
		return &SourceError{Message: err.Error()}
	}
	return nil
}
