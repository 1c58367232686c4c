package catalog

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/picloud/picloud/internal/db"
)

// EnvNamePattern is the form of a configuration or secret name.
const EnvNamePattern = `^[A-Za-z_][A-Za-z0-9_]{0,127}$`

var envName = regexp.MustCompile(EnvNamePattern)

// maxEnvValueBytes caps one configuration value or secret.
const maxEnvValueBytes = 64 << 10

// ErrEnvNotFound is returned when deleting a name that is not set.
var ErrEnvNotFound = errors.New("no such configuration value or secret")

// Env is a function's configuration: values readable back, and the names
// of its secrets, whose values are never read back.
type Env struct {
	Values  map[string]string
	Secrets []string
}

// SetEnv sets a configuration value (env.NAME in scripts) or, with secret,
// a secret (secrets.NAME), replacing either under that name.
func (c *Catalog) SetEnv(ctx context.Context, function, name, value string, secret bool) error {
	if !envName.MatchString(name) {
		return &InvalidOptionsError{fmt.Sprintf("name %q must match %s", name, EnvNamePattern)}
	}
	if len(value) > maxEnvValueBytes {
		return &InvalidOptionsError{fmt.Sprintf("value over %d bytes", maxEnvValueBytes)}
	}
	err := c.queries.SetFunctionEnv(ctx, db.SetFunctionEnvParams{Function: function, Name: name, Value: value, Secret: secret})
	if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign key
		return fmt.Errorf("%w: %s", ErrFunctionNotFound, function)
	}
	if err != nil {
		return fmt.Errorf("set env: %w", err)
	}
	return nil
}

// DeleteEnv removes a configuration value or secret.
func (c *Catalog) DeleteEnv(ctx context.Context, function, name string) error {
	n, err := c.queries.DeleteFunctionEnv(ctx, function, name)
	if err != nil {
		return fmt.Errorf("delete env: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrEnvNotFound, name)
	}
	return nil
}

// GetEnv returns a function's configuration and the names of its secrets.
func (c *Catalog) GetEnv(ctx context.Context, function string) (Env, error) {
	if _, err := c.queries.GetFunction(ctx, function); err != nil {
		return Env{}, fmt.Errorf("%w: %s", ErrFunctionNotFound, function)
	}
	rows, err := c.queries.ListFunctionEnv(ctx, function)
	if err != nil {
		return Env{}, fmt.Errorf("get env: %w", err)
	}
	env := Env{Values: map[string]string{}, Secrets: []string{}}
	for _, r := range rows {
		if r.Secret {
			env.Secrets = append(env.Secrets, r.Name)
		} else {
			env.Values[r.Name] = r.Value
		}
	}
	return env, nil
}
