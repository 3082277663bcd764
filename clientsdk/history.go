package clientsdk

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// RevisionKey returns the key of version v of app in RevisionsBucket:
// "APP.VERSION".
func RevisionKey(app string, v uint64) string {
	return app + "." + strconv.FormatUint(v, 10)
}

// ParseRevisionKey splits a RevisionsBucket key into its app and version;
// ok is false for a key RevisionKey does not make.
func ParseRevisionKey(key string) (app string, v uint64, ok bool) {
	app, num, found := strings.Cut(key, ".")
	if !found || ValidateName(app) != nil {
		return "", 0, false
	}
	v, err := strconv.ParseUint(num, 10, 64)
	if err != nil || v == 0 {
		return "", 0, false
	}
	return app, v, true
}

// MaxPushedByLength bounds the "who" of a push or rollback (USER@HOST).
const MaxPushedByLength = 256

// HistoryResponse is the answer of dartup.api.history.
type HistoryResponse struct {
	// Name is the app's name.
	Name string `json:"name"`
	// Current is the version that is the app's desired state now.
	Current uint64 `json:"current"`
	// Keep is how many versions the app keeps (AppSpec.History).
	Keep int `json:"keep"`
	// Versions are the kept versions, newest first.
	Versions []HistoryEntry `json:"versions"`
	// RollbackTo is the version `dartup rollback NAME` (without --to)
	// would run again: the newest older one that differs; 0 for none.
	RollbackTo uint64 `json:"rollback_to,omitempty"`
}

// HistoryEntry is one kept version of an app.
type HistoryEntry struct {
	// Version is the app's own version number (AppSpec.Version).
	Version  uint64    `json:"version"`
	PushedAt time.Time `json:"pushed_at"`
	PushedBy string    `json:"pushed_by,omitempty"`
	// RollbackOf is the version this one was made from by a rollback.
	RollbackOf uint64 `json:"rollback_of,omitempty"`
	// SHA256 is the digest of the version's artifact ("" for a command).
	SHA256 string `json:"sha256,omitempty"`
	// Current: this version is the app's desired state now.
	Current bool `json:"current,omitempty"`
	// Changes are what changed since the next older kept version
	// (DiffSpecs); none for the oldest kept one (see Oldest).
	Changes []SpecChange `json:"changes,omitempty"`
	// Oldest: no older version is kept to compare this one with.
	Oldest bool `json:"oldest,omitempty"`
}

// RollbackRequest is the request body of dartup.api.rollback.
type RollbackRequest struct {
	Name string `json:"name"`
	// To is the kept version to go back to; 0 means the newest kept
	// version older than the current one.
	To uint64 `json:"to,omitempty"`
	// By says who asks, as for a push (USER@HOST); it becomes the new
	// version's PushedBy.
	By string `json:"by,omitempty"`
}

// History returns the versions app name keeps, newest first, with what
// changed from one to the next. Errors: *Error 400 for an invalid name,
// 404 for an unknown app, or a transport error.
func (c *Client) History(ctx context.Context, name string) (*HistoryResponse, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	var r HistoryResponse
	if err := c.call(ctx, VerbHistory, NameRequest{Name: name}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Rollback makes a kept version of app name (to; 0 for the one before the
// current one) its desired state again, as a new version: the server
// stores that version's spec with the next version number, RollbackOf set
// and the app's current stopped state, and runners roll it out as after a
// push. It returns the stored spec; WaitDeployed with its Revision waits
// for the outcome. A rollback whose answer does not come in time is not
// sent again (a second one would go back one version further). Errors:
// *Error 400 for an invalid name or version, 404 for an unknown app or a
// version that is not kept (the message lists the kept ones), 409 when
// the app already runs that spec or changed meanwhile, 410 when the
// version's artifact is no longer stored, or a transport error.
func (c *Client) Rollback(ctx context.Context, name string, to uint64) (*AppSpec, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	var s AppSpec
	if err := c.call(ctx, VerbRollback, RollbackRequest{Name: name, To: to, By: c.pushedBy()}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}
