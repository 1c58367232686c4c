package keys

import (
	"crypto/sha256"
	"sync"
	"time"
)

// cache maps key hashes to scopes. Only valid keys enter it: caching
// misses would let anyone fill it with garbage.
type cache struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]cachedKey
	// gen counts clears; a lookup that raced a clear must not put back
	// what the clear removed.
	gen uint64
}

type cachedKey struct {
	scope   Scope
	expires time.Time
}

func (k *cache) get(hash [sha256.Size]byte) (Scope, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.entries[hash]
	if !ok || time.Now().After(e.expires) {
		return "", false
	}
	return e.scope, true
}

func (k *cache) generation() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gen
}

func (k *cache) put(hash [sha256.Size]byte, scope Scope, generation uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if generation != k.gen {
		return
	}
	if k.entries == nil {
		k.entries = make(map[[sha256.Size]byte]cachedKey)
	}
	now := time.Now()
	if len(k.entries) >= 10_000 {
		for h, e := range k.entries {
			if now.After(e.expires) {
				delete(k.entries, h)
			}
		}
	}
	k.entries[hash] = cachedKey{scope: scope, expires: now.Add(cacheTTL)}
}

func (k *cache) clear() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.entries = nil
	k.gen++
}
