package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/picloud/picloud/catalog"
)

// Schedules is what the API needs of the cron schedules: *catalog.Catalog.
type Schedules interface {
	PutSchedule(ctx context.Context, s catalog.Schedule) (catalog.Schedule, bool, error)
	ListSchedules(ctx context.Context, function string) ([]catalog.Schedule, error)
	DeleteSchedule(ctx context.Context, function, name string) error
}

// ScheduleBody is a cron schedule of a function.
type ScheduleBody struct {
	Function         string          `json:"function"`
	Name             string          `json:"name"`
	Cron             string          `json:"cron" example:"*/5 * * * *"`
	Timezone         string          `json:"timezone" example:"Europe/Berlin"`
	Payload          json.RawMessage `json:"payload"`
	Enabled          bool            `json:"enabled"`
	NextRunAt        *time.Time      `json:"next_run_at" doc:"The next tick; null when disabled."`
	LastRunAt        *time.Time      `json:"last_run_at" doc:"The tick of the latest invocation."`
	LastInvocationID *int64          `json:"last_invocation_id"`
	CreatedAt        time.Time       `json:"created_at"`
	UpdatedAt        time.Time       `json:"updated_at"`
}

func scheduleBody(s catalog.Schedule) ScheduleBody {
	return ScheduleBody{
		Function: s.Function, Name: s.Name, Cron: s.Cron, Timezone: s.Timezone, Payload: s.Payload, Enabled: s.Enabled,
		NextRunAt: s.NextRunAt, LastRunAt: s.LastRunAt, LastInvocationID: s.LastInvocationID,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
	}
}

type scheduleKey struct {
	Name     string `path:"name" pattern:"^[a-z][a-z0-9_-]{0,62}$" maxLength:"63" doc:"Function name."`
	Schedule string `path:"schedule" pattern:"^[a-z][a-z0-9_-]{0,62}$" maxLength:"63" doc:"Schedule name."`
}

type putScheduleInput struct {
	Name     string `path:"name" pattern:"^[a-z][a-z0-9_-]{0,62}$" maxLength:"63" doc:"Function name."`
	Schedule string `path:"schedule" pattern:"^[a-z][a-z0-9_-]{0,62}$" maxLength:"63" doc:"Schedule name."`
	Body     struct {
		Cron     string `json:"cron" minLength:"1" maxLength:"200" example:"*/5 * * * *" doc:"Five fields (minute hour day month weekday), six with seconds first, or @hourly, @daily, @weekly, @every 10s and the like."`
		Timezone string `json:"timezone,omitempty" default:"UTC" example:"Europe/Berlin" doc:"IANA time zone the expression is read in."`
		Payload  any    `json:"payload,omitempty" doc:"JSON the script sees as req.payload on every tick."`
		Enabled  *bool  `json:"enabled,omitempty" doc:"Default true."`
	}
}

type scheduleOutput struct {
	Status int
	Body   ScheduleBody
}

type listSchedulesOutput struct {
	Body struct {
		Schedules []ScheduleBody `json:"schedules"`
	}
}

func (s *Server) registerSchedules() {
	tags := []string{"schedules"}
	register(s.api, huma.Operation{
		OperationID: "put-schedule",
		Method:      http.MethodPut,
		Path:        "/v1/functions/{name}/schedules/{schedule}",
		Summary:     "Create or replace a schedule",
		Description: "Invokes the function (trigger schedule) on every tick of the cron expression, exactly once per tick however many workers run. " +
			"Ticks missed while no worker ran are not replayed in a burst: a schedule that was due several times fires once, for its latest tick. Answers 201 when new, else 200.",
		Tags:          tags,
		DefaultStatus: http.StatusOK,
		Errors:        []int{http.StatusNotFound, http.StatusUnprocessableEntity},
	}, s.putSchedule)
	created := *s.api.OpenAPI().Paths["/v1/functions/{name}/schedules/{schedule}"].Put.Responses["200"]
	created.Description = "Created"
	s.api.OpenAPI().Paths["/v1/functions/{name}/schedules/{schedule}"].Put.Responses["201"] = &created
	register(s.api, huma.Operation{
		OperationID: "list-function-schedules",
		Method:      http.MethodGet,
		Path:        "/v1/functions/{name}/schedules",
		Summary:     "List a function's schedules",
		Tags:        tags,
	}, func(ctx context.Context, in *functionNameParam) (*listSchedulesOutput, error) {
		return s.listSchedules(ctx, in.Name)
	})
	register(s.api, huma.Operation{
		OperationID: "list-schedules",
		Method:      http.MethodGet,
		Path:        "/v1/schedules",
		Summary:     "List all schedules",
		Tags:        tags,
	}, func(ctx context.Context, _ *struct{}) (*listSchedulesOutput, error) {
		return s.listSchedules(ctx, "")
	})
	register(s.api, huma.Operation{
		OperationID:   "delete-schedule",
		Method:        http.MethodDelete,
		Path:          "/v1/functions/{name}/schedules/{schedule}",
		Summary:       "Delete a schedule",
		Tags:          tags,
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusNotFound},
	}, s.deleteSchedule)
}

func (s *Server) putSchedule(ctx context.Context, in *putScheduleInput) (*scheduleOutput, error) {
	sched := catalog.Schedule{Function: in.Name, Name: in.Schedule, Cron: in.Body.Cron, Timezone: in.Body.Timezone, Enabled: true}
	if in.Body.Enabled != nil {
		sched.Enabled = *in.Body.Enabled
	}
	if in.Body.Payload != nil {
		payload, err := json.Marshal(in.Body.Payload)
		if err != nil {
			return nil, huma.Error422UnprocessableEntity("payload: " + err.Error())
		}
		sched.Payload = payload
	}
	out, created, err := s.config.Schedules.PutSchedule(ctx, sched)
	if invalid := (*catalog.InvalidScheduleError)(nil); errors.As(err, &invalid) {
		return nil, huma.Error422UnprocessableEntity(invalid.Error())
	}
	if errors.Is(err, catalog.ErrFunctionNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("function %q does not exist", in.Name))
	}
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return &scheduleOutput{Status: status, Body: scheduleBody(out)}, nil
}

func (s *Server) listSchedules(ctx context.Context, function string) (*listSchedulesOutput, error) {
	list, err := s.config.Schedules.ListSchedules(ctx, function)
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	out := &listSchedulesOutput{}
	out.Body.Schedules = make([]ScheduleBody, len(list))
	for i, sched := range list {
		out.Body.Schedules[i] = scheduleBody(sched)
	}
	return out, nil
}

func (s *Server) deleteSchedule(ctx context.Context, in *scheduleKey) (*struct{}, error) {
	err := s.config.Schedules.DeleteSchedule(ctx, in.Name, in.Schedule)
	if errors.Is(err, catalog.ErrScheduleNotFound) {
		return nil, huma.Error404NotFound(fmt.Sprintf("function %q has no schedule %q", in.Name, in.Schedule))
	}
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	return nil, nil
}
