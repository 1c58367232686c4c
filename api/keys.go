package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/picloud/picloud/keys"
)

// KeyBody describes an API key; the key itself appears only once, in the
// answer to its creation.
type KeyBody struct {
	ID         int64      `json:"id" example:"1"`
	Name       string     `json:"name" example:"ci deploys" doc:"A label for people; need not be unique."`
	Scope      string     `json:"scope" enum:"admin,invoke" doc:"admin may do everything; invoke may call functions and read invocations."`
	Prefix     string     `json:"prefix" example:"pic_k3x9qa" doc:"The key's first characters, to tell keys apart."`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty" doc:"Last time a request used the key, to within a minute."`
	RevokedAt  *time.Time `json:"revoked_at,omitempty" doc:"When the key was revoked; absent for a live key."`
}

// KeyStore is what the API needs of API keys: *keys.Store.
type KeyStore interface {
	Create(ctx context.Context, name string, scope keys.Scope) (string, keys.Key, error)
	List(ctx context.Context) ([]keys.Key, error)
	Revoke(ctx context.Context, id int64) (keys.Key, error)
	Authenticate(ctx context.Context, key string) (keys.Scope, error)
}

func keyBody(k keys.Key) KeyBody {
	return KeyBody{
		ID: k.ID, Name: k.Name, Scope: string(k.Scope), Prefix: k.Prefix,
		CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, RevokedAt: k.RevokedAt,
	}
}

type createKeyInput struct {
	Body struct {
		Name  string `json:"name,omitempty" maxLength:"200" example:"ci deploys" doc:"A label for people."`
		Scope string `json:"scope" enum:"admin,invoke" example:"invoke" doc:"admin may do everything; invoke may call functions and read invocations."`
	}
}

type createKeyOutput struct {
	Body struct {
		KeyBody
		Key string `json:"key" example:"pic_k3x9qa7d2m4c6e8g0j2l4n6p8r0t2v4x6z8b0d" doc:"The key. It is shown this once: only its hash is stored."`
	}
}

type keyIDInput struct {
	ID int64 `path:"id" minimum:"1" example:"1" doc:"Key id."`
}

type keyOutput struct {
	Body KeyBody
}

type listKeysOutput struct {
	Body struct {
		Keys []KeyBody `json:"keys"`
	}
}

func (s *Server) registerKeys() {
	tags := []string{"keys"}
	register(s.api, huma.Operation{
		OperationID:   "create-key",
		Method:        http.MethodPost,
		Path:          "/v1/keys",
		Summary:       "Create an API key",
		Description:   "Makes a key and answers with it, once: only its hash is stored. The first admin key is made with `picloud keys create --scope admin`, which works straight against the database.",
		Tags:          tags,
		DefaultStatus: http.StatusCreated,
		Errors:        []int{http.StatusUnprocessableEntity},
	}, s.createKey)
	register(s.api, huma.Operation{
		OperationID: "list-keys",
		Method:      http.MethodGet,
		Path:        "/v1/keys",
		Summary:     "List API keys",
		Description: "Every key, revoked ones included, oldest first; never the keys themselves.",
		Tags:        tags,
	}, s.listKeys)
	register(s.api, huma.Operation{
		OperationID: "revoke-key",
		Method:      http.MethodDelete,
		Path:        "/v1/keys/{id}",
		Summary:     "Revoke an API key",
		Description: "The key stops working on every node at once. It stays in the list, with revoked_at; revoking it again changes nothing.",
		Tags:        tags,
		Errors:      []int{http.StatusNotFound},
	}, s.revokeKey)
}

func (s *Server) createKey(ctx context.Context, in *createKeyInput) (*createKeyOutput, error) {
	key, k, err := s.config.Keys.Create(ctx, in.Body.Name, keys.Scope(in.Body.Scope))
	if nameErr := (*keys.InvalidNameError)(nil); errors.As(err, &nameErr) {
		return nil, huma.Error422UnprocessableEntity(nameErr.Error())
	}
	if scopeErr := (*keys.InvalidScopeError)(nil); errors.As(err, &scopeErr) {
		return nil, huma.Error422UnprocessableEntity(scopeErr.Error())
	}
	if err != nil {
		// Through internal: an error returned as is would reach the
		// client with the database's text.
		return nil, s.internal(ctx, err)
	}
	out := &createKeyOutput{}
	out.Body.KeyBody = keyBody(k)
	out.Body.Key = key
	return out, nil
}

func (s *Server) listKeys(ctx context.Context, _ *struct{}) (*listKeysOutput, error) {
	keys, err := s.config.Keys.List(ctx)
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	out := &listKeysOutput{}
	out.Body.Keys = make([]KeyBody, len(keys))
	for i, k := range keys {
		out.Body.Keys[i] = keyBody(k)
	}
	return out, nil
}

func (s *Server) revokeKey(ctx context.Context, in *keyIDInput) (*keyOutput, error) {
	k, err := s.config.Keys.Revoke(ctx, in.ID)
	if errors.Is(err, keys.ErrNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("API key %d does not exist", in.ID))
	}
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	return &keyOutput{Body: keyBody(k)}, nil
}
