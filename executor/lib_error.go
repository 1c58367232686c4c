package executor

import (
	"errors"
	"fmt"

	lua "github.com/Shopify/go-lua"
)

// raiseValue raises the value at the top of the stack as the error object,
// whatever its type. go-lua's own Error insists on a string (it calls
// CheckString on it), but its protected call simply takes the value on top
// of the stack as the error object once it recovers a RuntimeError panic.
// So panicking with a RuntimeError ourselves, the value left on top, carries
// tables, nil and booleans through pcall unchanged. msg is what the run's
// error says if nothing catches the value.
func raiseValue(l *lua.State, msg string) {
	panic(lua.RuntimeError(msg))
}

// describeErrorValue is the readable text of a non-string error value at
// idx: its __tostring, or "(error object is a table value)" as lua.c says.
func describeErrorValue(l *lua.State, idx int) string {
	msg := fmt.Sprintf("(error object is a %s value)", lua.TypeNameOf(l, idx))
	if l.TypeOf(idx) == lua.TypeTable && lua.MetaField(l, idx, "__tostring") {
		l.Pop(1)
		if s, ok := toStringMeta(l, idx); ok {
			msg = s
		}
		l.Pop(1)
	}
	return msg
}

// errorText is the message of an error that ended a protected call, for an
// error object that is not a string: the text raiseValue attached, without
// go-lua's "runtime error: " prefix.
func errorText(err error) string {
	var re lua.RuntimeError
	if errors.As(err, &re) {
		return string(re)
	}
	return err.Error()
}
