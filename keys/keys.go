// Package keys creates, lists, revokes and checks PiCloud's API keys,
// and finds keys sent where they do not belong so they can be redacted.
//
// Only a key's SHA-256 is stored. Valid keys are cached for a minute on
// each node; a revocation clears every node's cache through a PostgreSQL
// notification on Channel, which the node's listener hands to the Store.
package keys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/picloud/picloud/internal/db"
)

// Errors callers tell apart with errors.Is.
var (
	// ErrUnauthenticated: the call needs an API key and came without a
	// valid one.
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrNotFound        = errors.New("API key not found")
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

// Prefix starts every API key, so that a key pasted in the wrong place
// (a log, a repository) can be recognised and redacted.
const Prefix = "pic_"

// Channel announces a revoked key to every node's cache; the node's
// listener passes its notifications to Store.HandleNotification.
const Channel = "picloud_keys"

// cacheTTL bounds how stale a cached key may be when a revocation's
// notification was missed (the listener was reconnecting), and how often
// last_used_at is written for a busy key.
const cacheTTL = time.Minute

// Key describes a key; the key itself is shown once, at creation.
type Key struct {
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

// InvalidNameError reports a key name the database refuses (too long).
type InvalidNameError struct{ Reason string }

// Error keeps the text the API returned before keys had a package of
// their own, so that clients matching on it see no change.
func (e *InvalidNameError) Error() string { return "invalid function options: " + e.Reason }

// Store keeps the keys in the database and a cache of the valid ones.
type Store struct {
	queries *db.Queries
	cache   cache
}

// New returns a store on queries.
func New(queries *db.Queries) *Store {
	return &Store{queries: queries}
}

// Create makes a key and returns it with its description. Only its hash
// is stored: the key cannot be read back.
func (s *Store) Create(ctx context.Context, name string, scope Scope) (string, Key, error) {
	if scope != ScopeAdmin && scope != ScopeInvoke {
		return "", Key{}, &InvalidScopeError{Scope: string(scope)}
	}
	secret := make([]byte, randomBytes)
	if _, err := rand.Read(secret); err != nil {
		return "", Key{}, fmt.Errorf("generate key: %w", err)
	}
	key := Prefix + strings.ToLower(base32.StdEncoding.EncodeToString(secret))
	hash := sha256.Sum256([]byte(key))
	row, err := s.queries.InsertAPIKey(ctx, db.InsertAPIKeyParams{
		Name: name, Scope: string(scope), Prefix: key[:len(Prefix)+6], Hash: hash[:],
	})
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.ConstraintName == "api_key_name_length" {
		return "", Key{}, &InvalidNameError{"a key's name is at most 200 characters"}
	}
	if err != nil {
		return "", Key{}, fmt.Errorf("store key: %w", err)
	}
	return key, keyFromRow(db.ListAPIKeysRow(row)), nil
}

// List returns every key, revoked ones included, oldest first.
func (s *Store) List(ctx context.Context) ([]Key, error) {
	rows, err := s.queries.ListAPIKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	keys := make([]Key, len(rows))
	for i, r := range rows {
		keys[i] = keyFromRow(r)
	}
	return keys, nil
}

// Revoke revokes a key on every node at once; revoking it again is a
// no-op. An unknown id gives ErrNotFound.
func (s *Store) Revoke(ctx context.Context, id int64) (Key, error) {
	row, err := s.queries.RevokeAPIKey(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Key{}, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if err != nil {
		return Key{}, fmt.Errorf("revoke key: %w", err)
	}
	s.cache.clear() // the notification would do it too, a moment later
	return keyFromRow(db.ListAPIKeysRow(row)), nil
}

// Authenticate returns the scope of a valid key, or ErrUnauthenticated.
// Keys are cached for a minute, so a busy API checks a key without a round
// trip; a revocation clears every node's cache through a notification.
func (s *Store) Authenticate(ctx context.Context, key string) (Scope, error) {
	if !strings.HasPrefix(key, Prefix) {
		return "", ErrUnauthenticated
	}
	hash := sha256.Sum256([]byte(key))
	if scope, ok := s.cache.get(hash); ok {
		return scope, nil
	}
	generation := s.cache.generation()
	row, err := s.queries.UseAPIKey(ctx, hash[:])
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrUnauthenticated
	}
	if err != nil {
		return "", fmt.Errorf("check API key: %w", err)
	}
	s.cache.put(hash, Scope(row.Scope), generation)
	return Scope(row.Scope), nil
}

// HandleNotification clears the cache when a key is revoked anywhere.
func (s *Store) HandleNotification(context.Context, *pgconn.Notification, *pgx.Conn) error {
	s.cache.clear()
	return nil
}

// HandleBacklog clears the cache after the listener reconnects, when a
// revocation may have gone unheard.
func (s *Store) HandleBacklog(context.Context, string, *pgx.Conn) error {
	s.cache.clear()
	return nil
}

func keyFromRow(r db.ListAPIKeysRow) Key {
	return Key{
		ID: r.ID, Name: r.Name, Scope: Scope(r.Scope), Prefix: r.Prefix,
		CreatedAt: r.CreatedAt, LastUsedAt: r.LastUsedAt, RevokedAt: r.RevokedAt,
	}
}
