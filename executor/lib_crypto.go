package executor

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"math"

	lua "github.com/Shopify/go-lua"
)

// The crypto library: hashes, HMAC and random bytes.

// maxRandomBytes bounds crypto.random_bytes.
const maxRandomBytes = 1 << 20

func (s *state) cryptoFunctions() []lua.RegistryFunction {
	digest := func(h func() hash.Hash) lua.Function {
		return func(l *lua.State) int {
			src := checkString(l, 1)
			s.chargeBytes(len(src))
			d := h()
			d.Write([]byte(src))
			l.PushString(hex.EncodeToString(d.Sum(nil)))
			return 1
		}
	}
	return []lua.RegistryFunction{
		{Name: "sha256", Function: digest(sha256.New)},
		{Name: "sha1", Function: digest(sha1.New)},
		{Name: "md5", Function: digest(md5.New)},
		{Name: "hmac_sha256", Function: func(l *lua.State) int {
			key := checkString(l, 1)
			msg := checkString(l, 2)
			s.chargeBytes(len(key) + len(msg))
			mac := hmac.New(sha256.New, []byte(key))
			mac.Write([]byte(msg))
			l.PushString(hex.EncodeToString(mac.Sum(nil)))
			return 1
		}},
		{Name: "random_bytes", Function: func(l *lua.State) int {
			n := lua.CheckNumber(l, 1)
			lua.ArgumentCheck(l, n >= 0 && n <= maxRandomBytes && n == math.Trunc(n), 1,
				fmt.Sprintf("an integer from 0 to %d expected", maxRandomBytes))
			s.chargeBytes(int(n))
			b := make([]byte, int(n))
			_, _ = rand.Read(b) // never fails on supported platforms (Go 1.24+ crashes instead)
			l.PushString(string(b))
			return 1
		}},
	}
}
