package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/alecthomas/kong"

	"github.com/picloud/picloud/internal/db"
	"github.com/picloud/picloud/keys"
)

// keysCmd manages API keys straight in the database, so that an operator
// can make the first admin key before any key exists; SDK users have the
// same operations under /v1/keys.
type keysCmd struct {
	DatabaseURL string `name:"database-url" env:"DATABASE_URL" help:"PostgreSQL connection URL."`
	Output      string `short:"o" default:"text" enum:"text,json" help:"Output format: text or json."`

	Create keysCreateCmd `cmd:"" help:"Create a key and print it, once: only its hash is stored."`
	List   keysListCmd   `cmd:"" name:"ls" aliases:"list" help:"List keys (never the keys themselves)."`
	Revoke keysRevokeCmd `cmd:"" help:"Revoke a key; every node stops accepting it at once."`
}

type keysCreateCmd struct {
	Scope string `required:"" enum:"admin,invoke" help:"admin may do everything; invoke may call functions and read invocations."`
	Name  string `help:"A label for people, such as who or what holds the key."`
}

type keysListCmd struct{}

type keysRevokeCmd struct {
	ID int64 `arg:"" help:"Key id, from picloud keys ls."`
}

// keyJSON is a key as -o json prints it: the shape of the API's answers.
type keyJSON struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	Scope      string     `json:"scope"`
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	Key        string     `json:"key,omitempty"`
}

// errNoKeysDatabase says where the URL comes from: keys are made in the
// database a server uses, and for dev's private cluster only dev knows it.
var errNoKeysDatabase = errors.New("no database: set DATABASE_URL or pass --database-url, naming the database the server uses; " +
	"for picloud dev's private database, use the DATABASE_URL it prints at start (export DATABASE_URL='postgres://postgres@/picloud?host=...')")

func toKeyJSON(k keys.Key) keyJSON {
	return keyJSON{ID: k.ID, Name: k.Name, Scope: string(k.Scope), Prefix: k.Prefix, CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt}
}

// withKeys runs fn with the key store on the database; it needs no
// migration lock and starts no listener.
func (c *keysCmd) withKeys(ctx context.Context, fn func(*keys.Store) error) error {
	if c.DatabaseURL == "" {
		return withExitCode(exitUsage, errNoKeysDatabase)
	}
	pool, err := openPool(ctx, c.DatabaseURL, 1)
	if err != nil {
		return err
	}
	defer pool.Close()
	return fn(keys.New(db.New(pool)))
}

func (c *keysCmd) print(kctx *kong.Context, v any, text func()) error {
	if c.Output != "json" {
		text()
		return nil
	}
	enc := json.NewEncoder(kctx.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (k *keysCreateCmd) Run(ctx context.Context, kctx *kong.Context, c *keysCmd) error {
	return c.withKeys(ctx, func(store *keys.Store) error {
		key, created, err := store.Create(ctx, k.Name, keys.Scope(k.Scope))
		if invalid := (*keys.InvalidNameError)(nil); errors.As(err, &invalid) {
			return withExitCode(exitUsage, err)
		}
		if err != nil {
			return err
		}
		out := toKeyJSON(created)
		out.Key = key
		return c.print(kctx, out, func() {
			fmt.Fprintln(kctx.Stdout, key)
			fmt.Fprintf(kctx.Stderr, "Created %s key %d. This is the only time it is shown: keep it now.\n", created.Scope, created.ID)
		})
	})
}

func (k *keysListCmd) Run(ctx context.Context, kctx *kong.Context, c *keysCmd) error {
	return c.withKeys(ctx, func(store *keys.Store) error {
		keys, err := store.List(ctx)
		if err != nil {
			return err
		}
		out := struct {
			Keys []keyJSON `json:"keys"`
		}{Keys: make([]keyJSON, len(keys))}
		for i, key := range keys {
			out.Keys[i] = toKeyJSON(key)
		}
		return c.print(kctx, out, func() {
			tw := newTable(kctx.Stdout)
			fmt.Fprintln(tw, "ID\tSCOPE\tPREFIX\tNAME\tCREATED\tLAST USED\tREVOKED")
			for _, key := range keys {
				fmt.Fprintf(tw, "%d\t%s\t%s…\t%s\t%s\t%s\t%s\n", key.ID, key.Scope, key.Prefix, nameOrDash(key.Name),
					formatTime(key.CreatedAt), formatOptionalTime(key.LastUsedAt), formatOptionalTime(key.RevokedAt))
			}
			_ = tw.Flush()
		})
	})
}

func (k *keysRevokeCmd) Run(ctx context.Context, kctx *kong.Context, c *keysCmd) error {
	return c.withKeys(ctx, func(store *keys.Store) error {
		revoked, err := store.Revoke(ctx, k.ID)
		if errors.Is(err, keys.ErrNotFound) {
			return withExitCode(exitNotFound, err)
		}
		if err != nil {
			return err
		}
		return c.print(kctx, toKeyJSON(revoked), func() {
			fmt.Fprintf(kctx.Stdout, "revoked key %d (%s…)\n", revoked.ID, revoked.Prefix)
		})
	})
}

func nameOrDash(name string) string {
	if name == "" {
		return "-"
	}
	return name
}

func formatOptionalTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return formatTime(*t)
}
