package executor

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	lua "github.com/Shopify/go-lua"
)

// benchStringFunc pushes the real string library's function name on a
// fresh state's stack (reached through the string metatable, as ("x"):f()
// does), so a benchmark measures the library function itself, not the
// fixed cost of an invocation.
func benchStringFunc(b *testing.B, name string) *lua.State {
	b.Helper()
	s := newState(1, slog.New(slog.NewTextHandler(io.Discard, nil)))
	l := s.l
	l.PushString("")
	if !l.MetaTable(-1) {
		b.Fatal("no string metatable")
	}
	l.Field(-1, "__index")
	l.Field(-1, name)
	l.Replace(1)
	l.SetTop(1)
	return l
}

// template is 1 KiB of text with placeholders like {{name}}.
var template = func() string {
	const unit = "Dear {{name}}, your order {{order}} ships on {{date}}; total {{total}} EUR.\n"
	t := strings.Repeat(unit, 1024/len(unit)+1)
	return t[:1024-len(unit)/2] + strings.Repeat(" ", len(unit)/2)
}()

// BenchmarkGsub: typical templating, placeholders replaced from a table.
func BenchmarkGsub(b *testing.B) {
	l := benchStringFunc(b, "gsub")
	l.NewTable()
	for k, v := range map[string]string{"name": "Ada Lovelace", "order": "#12345", "date": "2024-05-17", "total": "42.00"} {
		l.PushString(v)
		l.SetField(-2, k)
	}
	vars := l.Top()
	b.ReportAllocs()
	b.SetBytes(int64(len(template)))
	for b.Loop() {
		l.PushValue(1)
		l.PushString(template)
		l.PushString("{{(%w+)}}")
		l.PushValue(vars)
		l.Call(3, 2)
		if n, _ := l.ToInteger(-1); n != strings.Count(template, "}}") {
			b.Fatalf("%d replacements", n)
		}
		l.Pop(2)
	}
}

// BenchmarkGsubFunction: the same with a Lua function computing each
// replacement.
func BenchmarkGsubFunction(b *testing.B) {
	l := benchStringFunc(b, "gsub")
	if err := lua.LoadString(l, `return function(k) return k:upper() end`); err != nil {
		b.Fatal(err)
	}
	l.Call(0, 1)
	fn := l.Top()
	b.ReportAllocs()
	b.SetBytes(int64(len(template)))
	for b.Loop() {
		l.PushValue(1)
		l.PushString(template)
		l.PushString("{{(%w+)}}")
		l.PushValue(fn)
		l.Call(3, 2)
		l.Pop(2)
	}
}

// BenchmarkFindPattern: a pattern with captures found at the end of 1 KiB.
func BenchmarkFindPattern(b *testing.B) {
	l := benchStringFunc(b, "find")
	subject := strings.Repeat("lorem ipsum dolor sit amet, ", 37)[:1014] + "2024-05-17"
	b.ReportAllocs()
	b.SetBytes(int64(len(subject)))
	for b.Loop() {
		l.PushValue(1)
		l.PushString(subject)
		l.PushString("(%d+)-(%d+)-(%d+)")
		l.Call(2, 5)
		if start, _ := l.ToInteger(-5); start != 1015 {
			b.Fatalf("found at %d", start)
		}
		l.Pop(5)
	}
}
