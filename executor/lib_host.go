package executor

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	lua "github.com/Shopify/go-lua"

	"github.com/picloud/picloud/executor/internal/luajson"
)

// The host libraries (kv, http, picloud) reach outside the sandbox through
// Request.Host: in a sandbox child the call crosses the pipe to the worker,
// which owns the database and the network. Arguments and results are JSON.

func (s *state) kvFunctions() []lua.RegistryFunction {
	return []lua.RegistryFunction{
		{Name: "get", Function: s.kvGet},
		{Name: "set", Function: s.kvSet},
		{Name: "delete", Function: s.kvDelete},
		{Name: "incr", Function: s.kvIncr},
		{Name: "list", Function: s.kvList},
	}
}

func (s *state) httpFunctions() []lua.RegistryFunction {
	return []lua.RegistryFunction{{Name: "request", Function: s.httpRequest}}
}

func (s *state) picloudFunctions() []lua.RegistryFunction {
	return []lua.RegistryFunction{{Name: "invoke", Function: s.picloudInvoke}}
}

// hostCall makes a host call and returns its JSON result. Errors are Lua
// errors naming the call; a run that reached a limit while the call was
// out stops.
func (s *state) hostCall(l *lua.State, method string, args any) json.RawMessage {
	r := s.cur
	if r == nil || r.host == nil {
		lua.Errorf(l, "%s", method+" is not available here")
	}
	data, err := json.Marshal(args)
	if err != nil {
		lua.Errorf(l, "%s", fmt.Sprintf("%s: %v", method, err))
	}
	ctx, cancel := context.WithDeadline(r.ctx, r.deadline)
	result, err := r.host.Call(ctx, method, data)
	cancel()
	// The call took wall-clock time the hook did not see.
	s.charge(0)
	if err != nil {
		lua.Errorf(l, "%s", fmt.Sprintf("%s: %v", method, err))
	}
	return result
}

// encodeArg is the JSON of the Lua value at idx, for host call arguments.
func (s *state) encodeArg(l *lua.State, idx int, what string) json.RawMessage {
	if l.IsNoneOrNil(idx) {
		return json.RawMessage("null")
	}
	opts := luajson.EncodeOptions{ArrayMeta: pushArrayMeta(l), MaxBytes: maxValueBytes, Tick: s.cur.tick}
	b, err := luajson.Encode(l, l.AbsIndex(idx), opts)
	l.Pop(1) // the array metatable pushArrayMeta pushed
	if err != nil {
		if errors.Is(err, errStopped) {
			panic(abortSignal{})
		}
		lua.Errorf(l, "%s", fmt.Sprintf("%s: %v", what, err))
	}
	return b
}

// pushJSON pushes the decoded JSON value.
func pushJSON(l *lua.State, data json.RawMessage, what string) {
	meta := pushArrayMeta(l)
	if err := luajson.Decode(l, string(data), luajson.DecodeOptions{ArrayMeta: meta}); err != nil {
		lua.Errorf(l, "%s", fmt.Sprintf("%s: %v", what, err))
	}
	l.Remove(-2) // the array metatable
}

func (s *state) kvGet(l *lua.State) int {
	key := lua.CheckString(l, 1)
	var res struct {
		Found bool            `json:"found"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(s.hostCall(l, "kv.get", map[string]any{"key": key}), &res); err != nil {
		lua.Errorf(l, "%s", "kv.get: "+err.Error())
	}
	if !res.Found {
		l.PushNil()
		return 1
	}
	pushJSON(l, res.Value, "kv.get")
	return 1
}

func (s *state) kvSet(l *lua.State) int {
	key := lua.CheckString(l, 1)
	args := map[string]any{"key": key, "value": s.encodeArg(l, 2, "kv.set")}
	if l.IsTable(3) {
		l.Field(3, "ttl")
		if ttl, ok := l.ToNumber(-1); ok {
			args["ttl"] = ttl
		}
		l.Pop(1)
	}
	s.hostCall(l, "kv.set", args)
	return 0
}

func (s *state) kvDelete(l *lua.State) int {
	s.hostCall(l, "kv.delete", map[string]any{"key": lua.CheckString(l, 1)})
	return 0
}

func (s *state) kvIncr(l *lua.State) int {
	key := lua.CheckString(l, 1)
	by := lua.OptNumber(l, 2, 1)
	var sum float64
	if err := json.Unmarshal(s.hostCall(l, "kv.incr", map[string]any{"key": key, "by": by}), &sum); err != nil {
		lua.Errorf(l, "%s", "kv.incr: "+err.Error())
	}
	l.PushNumber(sum)
	return 1
}

func (s *state) kvList(l *lua.State) int {
	args := map[string]any{"prefix": lua.OptString(l, 1, "")}
	if l.IsTable(2) {
		l.Field(2, "limit")
		if n, ok := l.ToInteger(-1); ok {
			args["limit"] = n
		}
		l.Field(2, "after")
		if after, ok := l.ToString(-1); ok {
			args["after"] = after
		}
		l.Pop(2)
	}
	pushJSON(l, s.hostCall(l, "kv.list", args), "kv.list")
	return 1
}

// httpRequest takes {method, url, headers, body, timeout} and returns
// {status, headers, body}; bodies are Lua strings, which may be binary, so
// they cross as base64.
func (s *state) httpRequest(l *lua.State) int {
	lua.CheckType(l, 1, lua.TypeTable)
	field := func(name string) (string, bool) {
		// No deferred Pop: it would run while the error below unwinds and
		// leave the field's value, not the message, as the error object.
		l.Field(1, name)
		isNil := l.IsNil(-1)
		v, ok := l.ToString(-1)
		l.Pop(1)
		if isNil {
			return "", false
		}
		if !ok {
			lua.Errorf(l, "%s", "http.request: "+name+" must be a string")
		}
		return v, true
	}
	args := map[string]any{}
	url, ok := field("url")
	if !ok {
		lua.Errorf(l, "%s", "http.request: url is required")
	}
	args["url"] = url
	if method, ok := field("method"); ok {
		args["method"] = method
	}
	if body, ok := field("body"); ok {
		args["body_base64"] = base64.StdEncoding.EncodeToString([]byte(body))
	}
	l.Field(1, "timeout")
	if t, ok := l.ToNumber(-1); ok {
		args["timeout"] = t
	}
	l.Pop(1)
	l.Field(1, "headers")
	if l.IsTable(-1) {
		headers := map[string]string{}
		l.PushNil()
		for i := 0; l.Next(-2); i++ {
			s.walkStep(i)
			k, kok := l.ToString(-2)
			v, vok := l.ToString(-1)
			if !kok || !vok || l.TypeOf(-2) != lua.TypeString {
				lua.Errorf(l, "%s", "http.request: headers must map strings to strings")
			}
			headers[k] = v
			l.Pop(1)
		}
		args["headers"] = headers
	}
	l.Pop(1)

	var res struct {
		Status     int               `json:"status"`
		Headers    map[string]string `json:"headers"`
		BodyBase64 string            `json:"body_base64"`
	}
	if err := json.Unmarshal(s.hostCall(l, "http.request", args), &res); err != nil {
		lua.Errorf(l, "%s", "http.request: "+err.Error())
	}
	body, err := base64.StdEncoding.DecodeString(res.BodyBase64)
	if err != nil {
		lua.Errorf(l, "%s", "http.request: "+err.Error())
	}
	l.CreateTable(0, 3)
	l.PushInteger(res.Status)
	l.SetField(-2, "status")
	l.PushString(string(body))
	l.SetField(-2, "body")
	l.CreateTable(0, len(res.Headers))
	names := make([]string, 0, len(res.Headers))
	for k := range res.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		l.PushString(res.Headers[k])
		l.SetField(-2, k)
	}
	l.SetField(-2, "headers")
	return 1
}

// picloudInvoke(name, payload, {idempotency_key, run_at, delay}) enqueues
// another function; the invocation is written with this one's result, so a
// failed run enqueues nothing. It returns the new invocation's id.
func (s *state) picloudInvoke(l *lua.State) int {
	args := map[string]any{"function": lua.CheckString(l, 1), "payload": s.encodeArg(l, 2, "picloud.invoke")}
	if l.IsTable(3) {
		l.Field(3, "idempotency_key")
		if k, ok := l.ToString(-1); ok {
			args["idempotency_key"] = k
		}
		l.Field(3, "run_at")
		if t, ok := l.ToNumber(-1); ok {
			args["run_at"] = t
		}
		l.Field(3, "delay")
		if d, ok := l.ToNumber(-1); ok {
			args["delay"] = d
		}
		l.Pop(3)
	}
	var id int64
	if err := json.Unmarshal(s.hostCall(l, "picloud.invoke", args), &id); err != nil {
		lua.Errorf(l, "%s", "picloud.invoke: "+err.Error())
	}
	l.PushInteger(int(id))
	return 1
}
