package executor

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	lua "github.com/Shopify/go-lua"
)

// The base64 and hex libraries.

func (s *state) base64Functions() []lua.RegistryFunction {
	encode := func(name string, enc *base64.Encoding) lua.Function {
		return func(l *lua.State) int {
			src := checkString(l, 1)
			checkOutput(l, name, enc.EncodedLen(len(src)))
			s.chargeBytes(len(src))
			l.PushString(enc.EncodeToString([]byte(src)))
			return 1
		}
	}
	decode := func(name string, enc *base64.Encoding, trim bool) lua.Function {
		return func(l *lua.State) int {
			src := checkString(l, 1)
			if trim {
				// Accept padded input too: URL-safe data often arrives
				// from encoders that pad.
				src = strings.TrimRight(src, "=")
			}
			s.chargeBytes(len(src))
			b, err := enc.DecodeString(src)
			if err != nil {
				lua.Errorf(l, "%s", fmt.Sprintf("%s: invalid input (%v)", name, err))
			}
			l.PushString(string(b))
			return 1
		}
	}
	return []lua.RegistryFunction{
		{Name: "encode", Function: encode("base64.encode", base64.StdEncoding)},
		{Name: "decode", Function: decode("base64.decode", base64.StdEncoding, false)},
		{Name: "urlencode", Function: encode("base64.urlencode", base64.RawURLEncoding)},
		{Name: "urldecode", Function: decode("base64.urldecode", base64.RawURLEncoding, true)},
	}
}

func (s *state) hexFunctions() []lua.RegistryFunction {
	return []lua.RegistryFunction{
		{Name: "encode", Function: func(l *lua.State) int {
			src := checkString(l, 1)
			checkOutput(l, "hex.encode", hex.EncodedLen(len(src)))
			s.chargeBytes(len(src))
			l.PushString(hex.EncodeToString([]byte(src)))
			return 1
		}},
		{Name: "decode", Function: func(l *lua.State) int {
			src := checkString(l, 1)
			s.chargeBytes(len(src))
			b, err := hex.DecodeString(src)
			if err != nil {
				msg := strings.TrimPrefix(err.Error(), "encoding/hex: ")
				lua.Errorf(l, "%s", "hex.decode: invalid input ("+msg+")")
			}
			l.PushString(string(b))
			return 1
		}},
	}
}
