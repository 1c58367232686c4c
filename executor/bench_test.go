package executor

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkRunHello measures the fixed cost of an invocation on a pooled
// state whose compiled chunk is cached: fresh environment, request table,
// one print, response conversion.
func BenchmarkRunHello(b *testing.B) {
	p := newTestPool(b, 1)
	fn := exampleFunction(b, "hello")
	req := Request{Trigger: "http", Method: "GET", Path: "/", Query: map[string]string{"name": "bench"}, Headers: map[string]string{"accept": "*/*"}}
	ctx := context.Background()
	if res := p.Run(ctx, fn, req, Limits{}); res.Status != Succeeded {
		b.Fatal(res.Error)
	}
	b.ReportAllocs()
	for b.Loop() {
		if res := p.Run(ctx, fn, req, Limits{}); res.Status != Succeeded {
			b.Fatal(res.Error)
		}
	}
}

// BenchmarkRunEcho adds JSON decoding of a small body and encoding of a
// nested response table.
func BenchmarkRunEcho(b *testing.B) {
	p := newTestPool(b, 1)
	fn := exampleFunction(b, "echo")
	req := Request{Trigger: "http", Method: "POST", Path: "/x", Query: map[string]string{"a": "1"},
		Headers: map[string]string{"content-type": "application/json"},
		Body:    []byte(`{"user":{"id":42,"tags":["a","b"]},"items":[1,2,3,4,5]}`)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res := p.Run(ctx, fn, req, Limits{}); res.Status != Succeeded {
			b.Fatal(res.Error)
		}
	}
}

// fiftyLines is a plausible 50-line handler.
var fiftyLines = func() string {
	var sb strings.Builder
	sb.WriteString("local function validate(item)\n")
	for i := range 10 {
		fmt.Fprintf(&sb, "  if item.f%d ~= nil and type(item.f%d) ~= \"number\" then error(\"f%d must be a number\") end\n", i, i, i)
	}
	sb.WriteString("  return true\nend\n\n")
	sb.WriteString("local function total(items)\n  local sum = 0\n  for _, item in ipairs(items) do\n    validate(item)\n    sum = sum + (item.price or 0) * (item.qty or 1)\n  end\n  return sum\nend\n\n")
	sb.WriteString("function handle(req)\n  local body = json.decode(req.body)\n  local items = body.items or {}\n")
	for i := range 21 {
		fmt.Fprintf(&sb, "  local v%d = (items[%d] and items[%d].price or 0) * %d\n", i, i+1, i+1, i+1)
	}
	sb.WriteString("  log.info(\"items\", #items)\n  return {status = 200, body = {total = total(items), first = v0}}\nend\n")
	return sb.String()
}()

func BenchmarkCompile50Lines(b *testing.B) {
	if n := strings.Count(fiftyLines, "\n"); n != 50 {
		b.Fatalf("script has %d lines", n)
	}
	if err := Compile("bench", fiftyLines); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := Compile("bench", fiftyLines); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInstructionRate reports how many VM instructions per second go-lua
// executes for three kinds of loop; DefaultInstructions is derived from it.
// Each op runs until a 20 M instruction budget stops it.
func BenchmarkInstructionRate(b *testing.B) {
	const budget = 20_000_000
	loops := map[string]string{
		"empty":      `while true do end`,
		"arithmetic": `local x = 0 while true do x = x + 1.5 end`,
		"table":      `local t, i = {}, 0 while true do i = i + 1 t[i % 100 + 1] = i end`,
		"calls":      `local function f(s) return #s end while true do f("abc") end`,
		"strings":    `local s = "abc" while true do local u = s:upper() .. "x" end`,
	}
	for _, name := range []string{"empty", "arithmetic", "table", "calls", "strings"} {
		b.Run(name, func(b *testing.B) {
			p := newTestPool(b, 1)
			fn := Function{Name: name, Source: "function handle() " + loops[name] + " end"}
			var elapsed time.Duration
			for b.Loop() {
				res := p.Run(context.Background(), fn, Request{}, Limits{Instructions: budget, Timeout: time.Minute})
				if res.Status != TimedOut {
					b.Fatal(res.Status, res.Error)
				}
				elapsed += res.Duration
			}
			b.ReportMetric(float64(budget)*float64(b.N)/elapsed.Seconds()/1e6, "Minstr/s")
		})
	}
}
