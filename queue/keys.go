package queue

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/picloud/picloud/internal/db"
)

// Scope is what an API key may do.
type Scope string

const (
	// ScopeAdmin may do everything.
	ScopeAdmin Scope = "admin"
	// ScopeInvoke may call functions and read invocations.
	ScopeInvoke Scope = "invoke"
)

// Allows reports whether a key of scope s may act where required is needed.
func (s Scope) Allows(required Scope) bool {
	return s == ScopeAdmin || s == required
}

// KeyPrefix starts every API key, so that a key pasted in the wrong place
// (a log, a repository) can be recognised and redacted.
const KeyPrefix = "pic_"

// keysChannel announces a revoked key to every node's cache.
const keysChannel = "picloud_keys"

// keyCacheTTL bounds how stale a cached key may be when a revocation's
// notification was missed (the listener was reconnecting), and how often
// last_used_at is written for a busy key.
const keyCacheTTL = time.Minute

// APIKey describes a key; the key itself is shown once, at creation.
type APIKey struct {
	ID         int64
	Name       string
	Scope      Scope
	Prefix     string // the key's first characters, to tell keys apart
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// InvalidScopeError reports a scope that is neither admin nor invoke.
type InvalidScopeError struct{ Scope string }

func (e *InvalidScopeError) Error() string {
	return fmt.Sprintf("invalid scope %q: must be %q or %q", e.Scope, ScopeAdmin, ScopeInvoke)
}

// CreateAPIKey makes a key and returns it with its description. Only its
// hash is stored: the key cannot be read back.
func (c *Client) CreateAPIKey(ctx context.Context, name string, scope Scope) (string, APIKey, error) {
	if scope != ScopeAdmin && scope != ScopeInvoke {
		return "", APIKey{}, &InvalidScopeError{Scope: string(scope)}
	}
	secret := make([]byte, keyRandomBytes)
	if _, err := rand.Read(secret); err != nil {
		return "", APIKey{}, fmt.Errorf("generate key: %w", err)
	}
	key := KeyPrefix + strings.ToLower(base32.StdEncoding.EncodeToString(secret))
	hash := sha256.Sum256([]byte(key))
	row, err := c.queries.InsertAPIKey(ctx, db.InsertAPIKeyParams{
		Name: name, Scope: string(scope), Prefix: key[:len(KeyPrefix)+6], Hash: hash[:],
	})
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.ConstraintName == "api_key_name_length" {
		return "", APIKey{}, &InvalidOptionsError{"a key's name is at most 200 characters"}
	}
	if err != nil {
		return "", APIKey{}, fmt.Errorf("store key: %w", err)
	}
	return key, apiKeyFromRow(db.ListAPIKeysRow(row)), nil
}

// ListAPIKeys returns every key, revoked ones included, oldest first.
func (c *Client) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	rows, err := c.queries.ListAPIKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	keys := make([]APIKey, len(rows))
	for i, r := range rows {
		keys[i] = apiKeyFromRow(r)
	}
	return keys, nil
}

// RevokeAPIKey revokes a key on every node at once; revoking it again is a
// no-op. An unknown id gives ErrKeyNotFound.
func (c *Client) RevokeAPIKey(ctx context.Context, id int64) (APIKey, error) {
	row, err := c.queries.RevokeAPIKey(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return APIKey{}, fmt.Errorf("%w: %d", ErrKeyNotFound, id)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("revoke key: %w", err)
	}
	c.keys.clear() // the notification would do it too, a moment later
	return apiKeyFromRow(db.ListAPIKeysRow(row)), nil
}

// Authenticate returns the scope of a valid key, or ErrUnauthenticated.
// Keys are cached for a minute, so a busy API checks a key without a round
// trip; a revocation clears every node's cache through a notification.
func (c *Client) Authenticate(ctx context.Context, key string) (Scope, error) {
	if !strings.HasPrefix(key, KeyPrefix) {
		return "", ErrUnauthenticated
	}
	hash := sha256.Sum256([]byte(key))
	if scope, ok := c.keys.get(hash); ok {
		return scope, nil
	}
	generation := c.keys.generation()
	row, err := c.queries.UseAPIKey(ctx, hash[:])
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrUnauthenticated
	}
	if err != nil {
		return "", fmt.Errorf("check API key: %w", err)
	}
	c.keys.put(hash, Scope(row.Scope), generation)
	return Scope(row.Scope), nil
}

func apiKeyFromRow(r db.ListAPIKeysRow) APIKey {
	return APIKey{
		ID: r.ID, Name: r.Name, Scope: Scope(r.Scope), Prefix: r.Prefix,
		CreatedAt: r.CreatedAt, LastUsedAt: r.LastUsedAt, RevokedAt: r.RevokedAt,
	}
}

// keyCache maps key hashes to scopes. Only valid keys enter it: caching
// misses would let anyone fill it with garbage.
type keyCache struct {
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

func (k *keyCache) get(hash [sha256.Size]byte) (Scope, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.entries[hash]
	if !ok || time.Now().After(e.expires) {
		return "", false
	}
	return e.scope, true
}

func (k *keyCache) generation() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gen
}

func (k *keyCache) put(hash [sha256.Size]byte, scope Scope, generation uint64) {
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
	k.entries[hash] = cachedKey{scope: scope, expires: now.Add(keyCacheTTL)}
}

func (k *keyCache) clear() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.entries = nil
	k.gen++
}

// keysHandler clears the cache when a key is revoked anywhere, and after a
// reconnect, when a revocation may have gone unheard.
type keysHandler struct{ c *Client }

func (h keysHandler) HandleNotification(context.Context, *pgconn.Notification, *pgx.Conn) error {
	h.c.keys.clear()
	return nil
}

func (h keysHandler) HandleBacklog(context.Context, string, *pgx.Conn) error {
	h.c.keys.clear()
	return nil
}
