// Package executor runs user-supplied Lua functions in a sandbox.
//
// A Pool owns a fixed number of Lua states (github.com/Shopify/go-lua, Lua
// 5.2); Run borrows one, runs the function's handle(req) under limits and
// returns a Result that never needs a Go error: every problem is a Status
// (Failed, TimedOut, Cancelled) with a readable Error.
//
// # Lua contract
//
// The script defines a global function handle(req). Top-level code runs
// before every call (compiled code is cached, but each invocation starts
// from a fresh global environment, see below). req has the fields trigger,
// method, path ("/" when empty), query and headers (tables of strings,
// header names lower-case), body (a string, possibly binary, "" when
// empty), payload (Request.Payload decoded from JSON, or nil) and attempt
// (1 for the first attempt, 2 for the first retry, and so on).
//
// The first value handle returns becomes Result.Value (its JSON) and the HTTP
// Response:
//
//   - nil or nothing: 204 with an empty body; Value is null.
//   - a string: 200, text/plain; charset=utf-8, the string as body.
//   - a response table, one whose keys are all among status, headers and
//     body (at least one), with status a number or a string Lua reads as a
//     number ("404"), headers a table of string to string and body a string
//     or a table: status (default 200), the headers as given, and the body;
//     a table body is encoded as JSON. The status must be an integer from
//     200 to 599, else the run fails: 1xx are interim answers, which would
//     leave the client without a final one. Unless the headers set
//     Content-Type (any case), a string body gets text/plain; charset=utf-8
//     and a table body application/json; no body means an empty one. Header
//     names must be HTTP tokens and values free of control characters, else
//     the run fails. Value is the JSON of the whole table.
//   - any other table, a number or a boolean: 200, application/json, the
//     JSON of the value. So {status = "ok"} is data, not a response table.
//   - a function, a cyclic table, NaN or an infinity anywhere: Failed.
//
// JSON conversion (the response, Value, json.encode) follows these rules: a
// table with keys exactly 1..n is an array, any other non-empty table an
// object with sorted keys (number keys written as strings, other key types
// fail); an empty table is {} unless it is marked as an array. Tables from
// json.decode and req.payload arrays are marked, so [] stays [] after a
// round trip, and a marked array with holes is written with nulls;
// json.array([t]) marks a table (a new one if t is nil). Integral numbers
// have no fraction. Tables are read raw: metatables (__index, __pairs,
// __tostring) are ignored apart from the array mark. Strings have invalid UTF-8 replaced by U+FFFD (NUL
// bytes stay, escaped as \u0000). json.decode turns null into nil (so a
// null member is absent and a null element a hole) and keeps numbers as
// floats (integers beyond 2^53 lose precision). Nesting is limited to 128
// levels both ways. Errors raise Lua errors ("json.encode: ...").
//
// print(...) and log.debug/info/warn/error(...) join their arguments with
// tabs after tostring, like print, and append to Result.Logs (print at level
// "info"); nothing reaches the process's stdout. An invocation keeps at most
// 1000 entries and 64 KiB of messages, followed by one "log truncated" warn
// entry. Messages are made valid UTF-8 without NUL bytes.
//
// Lua errors fail the run with the Lua message, which starts with
// "<name>:<line>:" (the function Name is the chunk name), for example
// "hello:3: attempt to call a nil value". Errors the executor reports itself
// start with "<name>: ", for example "hello: handle is not defined; define
// function handle(req)" or "hello: syntax error: line 2: ...". Error values
// that are not strings reach pcall and xpcall unchanged, as in Lua (local ok,
// e = pcall(error, {code = 42}) gives e.code == 42; pcall(error) gives false,
// nil); uncaught, they fail the run with the position and "(error object is
// a table value)" or the table's __tostring, e.g. "hello:3: (error object is
// a table value)".
//
// # Sandbox
//
// Available: the base functions assert, error, getmetatable, ipairs, next,
// pairs, pcall, print, rawequal, rawget, rawlen, rawset, select,
// setmetatable, tonumber, tostring, type, xpcall and _VERSION; the string,
// table, math and bit32 libraries; os.time, os.clock, os.date and
// os.difftime; json and log; base64, hex, crypto, uuid and time (see
// Libraries below). Not available: load, loadstring, loadfile,
// dofile, require, collectgarbage, io, debug, package, coroutine and the rest
// of os.
//
// Differences from stock go-lua, each closing a hole found in experiments:
// code is loaded in text mode only (binary chunks can crash the process);
// pcall and xpcall are reimplemented so limits cannot be caught and so
// xpcall's handler is the one given (go-lua calls stack slot 1) and runs
// under the instruction budget; math.random has a generator per state,
// reseeded for every invocation, so math.randomseed affects only the calling
// invocation; math.huge is +Inf (go-lua: the largest finite float);
// os.clock counts seconds since the invocation started (go-lua: process
// CPU time); os.date is implemented here (C99 conversions in the C locale
// plus %s, and "*t"); os.date and os.time work in UTC whether or not the
// format starts with "!", because there is no user time zone;
// string.rep fails beyond 16 MiB (go-lua: fatal out-of-memory), and so
// do os.date and time.format;
// table.concat is linear (go-lua: quadratic) and also capped at 16 MiB;
// the string library is completed and corrected (see Libraries); tostring,
// print, log.*, table.concat, string.format and error write numbers as Lua
// 5.2 does, inf, -inf, nan and -nan included (go-lua: +Inf, -Inf, NaN).
//
// Isolation between invocations that reuse a pooled state: each invocation
// gets a new global table whose metatable reads through to a frozen table
// of the base functions, and new overlay tables for every library (string,
// table, math, ..., time) that read through to the real libraries. Scripts
// may add or replace fields (function string.trim(s) ... end works), but
// everything written disappears with the invocation; assigning nil to a
// library field does not hide the original. The metatables involved, and the
// string metatable, are protected with __metatable, so getmetatable cannot
// reach the shared tables. String methods ("x"):f() go through the
// invocation's string overlay, as in Lua, where they go through the string
// table: function string.trim(s) ... end makes ("  y  "):trim() work and
// string.upper = f changes ("x"):upper(), for that invocation only (the
// string metatable's __index is rebound to each invocation's overlay before
// its code runs, and back to the real library afterwards). The compiled
// chunk is cached per state and gets the new environment as its _ENV
// upvalue before each run.
//
// Every Go function reachable from Lua runs under a guard: a Go panic in it
// (go-lua has some, e.g. select("")) fails the run as
// "internal error in the Lua runtime", even inside pcall, and the state is
// discarded and rebuilt. The operator log (Config.Logger) gets the panic and
// stack.
//
// # Libraries
//
// The string library is Lua 5.2's, complete: go-lua lacks match, gmatch and
// gsub and its find ignores patterns, so these four are implemented here
// (package internal/luapattern) with patterns exactly as in the Lua 5.2
// manual, §6.4.1: classes %a %c %d %g %l %p %s %u %w %x (upper case for the
// complement) and ".", sets with ranges and classes, "^" sets, quantifiers
// * + - ?, anchors, captures, position captures "()", back-references
// %1-%9, %b and %f. Characters are bytes and classes those of the C locale
// (ASCII only: "é" is two bytes, neither of them %a). find takes init
// (negative counts from the end) and plain; gsub takes a string (%0-%9,
// %%), a table or a function, and a maximum count, and returns the count
// too. Errors are Lua's: "malformed pattern (ends with '%')", "invalid
// capture index %2", "unfinished capture", "pattern too complex" (more than
// 200 nested pattern items), "too many captures" (32). Also replaced:
// reverse (bytes, not runes), lower and upper (ASCII only, other bytes
// unchanged; go-lua mapped Unicode and mangled invalid UTF-8), and format:
// C's conversions (c d i o u x X e E f g G a A q s) with at most two digits
// of width and of precision, %g with C's default precision 6, %s through
// tostring with widths counted in bytes, %q as Lua 5.2 quotes, and a Lua
// error (not a crash) for a malformed format. Unlike C Lua, %s keeps bytes
// after a NUL.
//
//	local user, host = ("ada@example.com"):match("^([^@]+)@(.+)$")
//	local html = ("Hi {{name}}!"):gsub("{{(%w+)}}", {name = "Ada"})
//	for k, v in ("a=1, b=2"):gmatch("(%w+)=(%w+)") do print(k, v) end
//
// Helper libraries (read-only overlays like the others). Results larger than
// 16 MiB fail the call; decoding errors are Lua errors ("base64.decode:
// invalid input (...)").
//
//   - base64.encode(s), base64.decode(s): standard alphabet with padding;
//     base64.urlencode(s), base64.urldecode(s): URL-safe alphabet without
//     padding (urldecode accepts padding too). Example:
//     base64.encode("foobar") == "Zm9vYmFy".
//   - hex.encode(s) (lower case), hex.decode(s) (either case). Example:
//     hex.encode("\255A") == "ff41".
//   - crypto.sha256(s), crypto.sha1(s), crypto.md5(s) and
//     crypto.hmac_sha256(key, s) return lower-case hex digests;
//     crypto.random_bytes(n) returns n bytes from crypto/rand (n at most
//     1 MiB). Example: a webhook check,
//     crypto.hmac_sha256(secret, req.body) == req.headers["x-signature"].
//   - uuid.v4() (random) and uuid.v7() (Unix milliseconds first, then a
//     finer fraction of the millisecond, so strictly increasing within the
//     process), both as canonical lower-case strings. Example: uuid.v4()
//     gives something like "0e3c7c2e-5d0b-4c1f-9a53-2f8e0d1b7a64".
//   - time.now() is Unix time in seconds with milliseconds as the fraction;
//     time.format(epoch?, layout?) writes RFC 3339 in UTC (with .mmm when
//     the time has milliseconds), or uses a strftime layout as os.date does
//     (years 1 to 9999); time.parse(s) reads RFC 3339 with any offset and
//     returns epoch seconds, failing on anything else. Examples:
//     time.format(1234567890) == "2009-02-13T23:31:30Z",
//     time.format(0, "%Y-%m-%d") == "1970-01-01" and
//     time.parse("2009-02-14T01:31:30+02:00") == 1234567890.
//
// Fixed in the library functions (go-lua is used unmodified): numbers
// given to go-lua's string.byte, string.len and string.sub, and to
// string.rep, are written as tostring writes them (string.len(1/0) is 3,
// not 4 for "+Inf"); tonumber of a decimal beyond the float range is an
// infinity, as with C's strtod (tonumber("1e500") is inf; go-lua: nil).
// table.sort is Lua 5.2's algorithm (go-lua's raised "invalid order
// function for sorting" for an array holding NaN); it raises that error
// where Lua does. Argument errors name the library function where it lives
// ("bad argument #1 to 'string.rep'"), see guard: go-lua names it from the
// instruction after the call ('?', or a neighbour: 'print' in
// print(string.rep()), '__len' when a # follows), and cannot search the
// globals as Lua 5.2 does for pcall(string.rep).
//
// Not fixable outside go-lua, because the VM and the compiler do it
// themselves, and so documented as differences in docs/functions.md:
//   - ".." converts numbers with Go's "%.14g": (1/0) .. "" is "+Inf" and
//     (0/0) .. "" is "NaN" (Lua: "inf", "nan" or "-nan"). Scripts should
//     concatenate tostring(x) or use string.format("%s", x).
//   - A decimal beyond the float range is a syntax error in source
//     ("malformed number" for 1e500; Lua: inf), and "1e500" + 0 is an
//     arithmetic error (Lua: inf). Scripts should write math.huge, or call
//     tonumber before arithmetic.
//   - Argument errors cannot name the function as the call spells it
//     (Lua 5.2: 'rep' for string.rep() or ("x"):rep()) and count self in
//     method calls: ("x"):rep() says "bad argument #2 to 'string.rep'"
//     where Lua says "bad argument #1 to 'rep'".
//
// TestVMDifferences and TestConcatNumberFormat pin these, so an upgrade of
// go-lua that fixes one shows.
//
// Still different from Lua 5.2 (the VM's messages): runtime errors rarely
// name the variable ("attempt to call a nil value", Lua: "attempt to call
// method 'trim' (a nil value)"), since go-lua finds variables by comparing
// values, not stack slots; comparison errors quote the types ("attempt to
// compare 'number' with 'string'"); tonumber(s, base) of a number beyond
// 64 bits is nil (Lua: an approximation).
//
// # Limits and how tight they are
//
// Instruction budget (Limits.Instructions, default DefaultInstructions): a
// count hook runs every 1000 VM instructions (or every Instructions, if
// smaller), so a script stops within 1000 instructions of its budget.
//
// Wall clock (Limits.Timeout, default 10 s) and ctx: checked by the same
// hook, i.e. every 1000 instructions: every 7 to 90 microseconds depending
// on the kind of code (see DefaultInstructions). Both are blind while go-lua runs a Go library function:
// table.sort of a million numbers takes about 1.3 s and cannot be
// interrupted (a Lua comparator can), so a run can overshoot by that much.
// Converting the result to JSON checks the limits every 1024 values.
// Pattern matching counts its work in steps (one pattern item tried at one
// position, or about 16 bytes compared in bulk), charged at one instruction
// per two steps and checked every 1024 steps, so a backtracking pattern such
// as ("a"):rep(1e6):find(".-.-.-.-b") ends on the budget or the clock like a
// Lua loop would; nested pattern items are limited to 200 ("pattern too
// complex"). The helpers charge one instruction per 16 bytes they process
// (a KiB costs 64), and so do the other library functions that build or
// scan large strings in Go: string.rep, upper, lower, reverse and format,
// table.concat (plus one per piece), json.encode (its output) and
// json.decode (its input), os.date and time.format (twelve bytes per byte
// of format, their largest output). table.sort charges n*log2(n)
// instructions before it starts, table.insert and table.remove with a
// position n (the elements they may shift). Large charges check the limits
// at once, so a loop of such calls stops within one call of its limit
// instead of running hundreds of them between two hook calls.
//
// Once a limit is hit the abort is sticky: the hook panics with a value that
// is not an error, which go-lua's protected calls do not convert, and it
// panics again on every later hook call; pcall and xpcall re-raise it. The
// state is then discarded, since unwinding leaves go-lua's bookkeeping
// inconsistent. Outcome: ctx cancelled gives Cancelled; the instruction
// budget, Limits.Timeout or ctx's deadline gives TimedOut. A ctx that is done
// while waiting for a free state gives the same statuses with Duration 0.
//
// Output: a response body above 6 MiB, or a Value above 16 MiB of JSON,
// fails the run.
//
// Not limited yet: memory. go-lua has no allocation accounting, so a script
// that doubles a string in a loop reaches a fatal (unrecoverable) Go
// out-of-memory between two hook calls. Lua-level stack overflow is an
// ordinary Lua error ("stack overflow"); the state is then replaced because
// go-lua never shrinks its stack. For the same reason a state whose stack
// grew past 64 Ki slots (deep recursion, table.unpack of a huge range) is
// replaced after any run, successful ones included.
//
// # Concurrency and caching
//
// A Pool runs at most Config.Size invocations at once, one per state; Run
// blocks (respecting ctx) while all states are busy. Each state caches up to
// Config.CacheSize compiled chunks (LRU, keyed by Function.Name and Version,
// with Source compared as a safety net); compiling a new version evicts the
// older ones. States are created lazily and after a discard.
package executor
