package app

import (
	"errors"
	"fmt"
	"testing"

	"github.com/dartup/dartup/clientsdk"
)

type typedErr struct{}

func (typedErr) Error() string     { return "typed" }
func (typedErr) ErrorType() string { return "Custom.Type\r\n" }

func TestFunctionError(t *testing.T) {
	for _, tc := range []struct {
		err       error
		typ, text string
	}{
		{errors.New("boom"), "errorString", "boom"},
		{fmt.Errorf("wrapped: %w", typedErr{}), "Custom.Type", "wrapped: typed"},
		{fmt.Errorf("x: %w", clientsdk.Errorf(404, "NoSuchUser", "user 7")), "NoSuchUser", "user 7"},
		{&clientsdk.Error{Code: 400, Message: "no type"}, "Unhandled", "no type"},
		{panicError{42}, "int", "42"},
		{panicError{errors.New("in a panic")}, "errorString", "in a panic"},
	} {
		e := functionError(tc.err)
		if e.Code != 500 || e.Type != tc.typ || e.Message != tc.text {
			t.Errorf("functionError(%v) = %+v, want 500 %q %q", tc.err, e, tc.typ, tc.text)
		}
	}
}
