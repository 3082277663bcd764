package clientsdk

import (
	"context"
	"encoding/json"
	"time"
)

// Control API verbs of the dead letters (docs/events.md).
const (
	VerbDLQList    = "dlq-list"    // dartup.api.dlq-list
	VerbDLQShow    = "dlq-show"    // dartup.api.dlq-show
	VerbDLQRedrive = "dlq-redrive" // dartup.api.dlq-redrive
	VerbDLQPurge   = "dlq-purge"   // dartup.api.dlq-purge
)

// DeadLetter is an async event in DLQStream: one that failed 1 + retries
// times, outlived its lambda's maximum event age, could never run (its
// lambda is gone, or it is too large), or was sent to a name that is no
// lambda.
type DeadLetter struct {
	// ID is the dead letter's sequence in DLQStream (dartup dlq show ID).
	ID  uint64 `json:"id"`
	App string `json:"app"`
	// RequestID is the event's request id, kept by a redrive.
	RequestID string `json:"request_id"`
	// Attempts is how many times the function ran it (0: never).
	Attempts int `json:"attempts"`
	// Error, ErrorType and ErrorCode say what failed last.
	Error     string `json:"error,omitempty"`
	ErrorType string `json:"error_type,omitempty"`
	ErrorCode int    `json:"error_code,omitempty"`
	// Time is when it was dead-lettered; Enqueued when the event was
	// stored; FirstAttempt and LastAttempt when the function was called
	// (FirstAttempt is known to the server that made it: left out when
	// another one did).
	Time         time.Time `json:"time"`
	Enqueued     time.Time `json:"enqueued,omitzero"`
	FirstAttempt time.Time `json:"first_attempt,omitzero"`
	LastAttempt  time.Time `json:"last_attempt,omitzero"`
	// Size is the event's size in bytes.
	Size int `json:"size"`
	// Headers and Event are filled by DeadLetter (dlq show): every header
	// of the dead letter, and the event (JSON, or a JSON string when it is
	// not JSON).
	Headers map[string][]string `json:"headers,omitempty"`
	Event   json.RawMessage     `json:"event,omitempty"`
}

// DLQListRequest is the request body of dartup.api.dlq-list.
type DLQListRequest struct {
	// Name selects one lambda's dead letters; "" lists all.
	Name string `json:"name,omitempty"`
	// Limit bounds the answer (default and at most MaxDLQList), newest kept.
	Limit int `json:"limit,omitempty"`
}

// MaxDLQList bounds the dead letters one dlq-list answers.
const MaxDLQList = 1000

// DLQListResponse is the answer of dartup.api.dlq-list, oldest first.
type DLQListResponse struct {
	DeadLetters []DeadLetter `json:"dead_letters"`
	// Total is the number of dead letters that matched; more than listed
	// when the limit cut the oldest.
	Total uint64 `json:"total"`
}

// DLQShowRequest is the request body of dartup.api.dlq-show.
type DLQShowRequest struct {
	ID uint64 `json:"id"`
}

// DLQRedriveRequest is the request body of dartup.api.dlq-redrive.
type DLQRedriveRequest struct {
	Name string `json:"name"`
	// IDs are the dead letters to run again; none: all of Name's.
	IDs []uint64 `json:"ids,omitempty"`
}

// DLQRedriveResponse is the answer of dartup.api.dlq-redrive.
type DLQRedriveResponse struct {
	// Redriven lists the dead letters stored again as async invocations
	// (and deleted from the dead letters).
	Redriven []DeadLetter `json:"redriven"`
}

// DLQPurgeResponse is the answer of dartup.api.dlq-purge.
type DLQPurgeResponse struct {
	Purged uint64 `json:"purged"`
}

// DeadLetters lists the dead letters of lambda name (all with ""), oldest
// first, at most MaxDLQList (the newest). Errors: *Error 400 for an invalid
// name, or from the server.
func (c *Client) DeadLetters(ctx context.Context, name string) (*DLQListResponse, error) {
	if name != "" {
		if err := ValidateName(name); err != nil {
			return nil, err
		}
	}
	var r DLQListResponse
	if err := c.call(ctx, VerbDLQList, DLQListRequest{Name: name}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// DeadLetter returns dead letter id with its headers and event. Errors:
// *Error 404 when there is none.
func (c *Client) DeadLetter(ctx context.Context, id uint64) (*DeadLetter, error) {
	var r DeadLetter
	if err := c.call(ctx, VerbDLQShow, DLQShowRequest{ID: id}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Redrive stores dead letters of lambda name again as async invocations,
// with their request ids, and deletes them from the dead letters: the ones
// given, or all of name's. Each is stored with its own JetStream message id,
// so that a redrive cut short between the two stores it once. Errors: *Error
// 404 for no such lambda or dead letter, 400 for a dead letter of another
// lambda, 507 when the async queue is full (the message says how many were
// redriven before it filled).
func (c *Client) Redrive(ctx context.Context, name string, ids ...uint64) (*DLQRedriveResponse, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	var r DLQRedriveResponse
	if err := c.call(ctx, VerbDLQRedrive, DLQRedriveRequest{Name: name, IDs: ids}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// PurgeDeadLetters deletes every dead letter of lambda name and returns
// how many. Errors: *Error 400 for an invalid name.
func (c *Client) PurgeDeadLetters(ctx context.Context, name string) (uint64, error) {
	if err := ValidateName(name); err != nil {
		return 0, err
	}
	var r DLQPurgeResponse
	if err := c.call(ctx, VerbDLQPurge, NameRequest{Name: name}, &r); err != nil {
		return 0, err
	}
	return r.Purged, nil
}
