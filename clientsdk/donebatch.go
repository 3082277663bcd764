package clientsdk

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A direct worker (EnvLambdaDirect) that runs requests the server sent it
// back to back sends the records of those it finished within 1 ms in one
// done notice of several records (docs/protocol.md §7.6): a message with
// no headers whose body is DoneBatchPrefix and then one line per request:
//
//	ID STATUS RAN_US AGO_US REPLY TRACEPARENT REQUEUED ERROR_TYPE
//
// ID is the request id; STATUS 200, 413 or 500 as HeaderLambdaStatus;
// RAN_US how long it ran (µs); AGO_US how long before the notice it ended
// (µs); REPLY, TRACEPARENT and REQUEUED the caller's reply subject, its
// trace and dartup's requeue token, "-" for none; ERROR_TYPE, the rest of
// the line, the function's error type (CleanErrorType), empty for 200.

// DoneBatchPrefix starts a batched done notice.
const DoneBatchPrefix = "dartup-done 1\n"

// MaxDoneBatch is the most records one batched done notice carries (a
// worker sends its batch at the latest when it holds this many).
const MaxDoneBatch = 64

// EnvLambdaBacklog, in direct mode, is how many requests the server sent
// a worker (besides the one it runs) it may hold and run back to back
// while each is over within 1 ms: its share of the lambda's --queue, given
// only while the lambda has all the workers --max-workers allows (with
// fewer, a request that waits must reach dartup, which starts another
// worker). With more waiting it gives up its subscription and tells dartup
// it took the request, as for one that runs longer. Absent or 0: none.
// HeaderLambdaBacklog, on a message to the worker's subject, changes it.
const EnvLambdaBacklog = "DARTUP_LAMBDA_BACKLOG"

// HeaderLambdaBacklog on a message to a direct worker's subject is its new
// share (EnvLambdaBacklog), sent when the lambda's pool fills or empties.
const HeaderLambdaBacklog = "Dartup-Backlog"

// DoneRecord is one request in a batched done notice.
type DoneRecord struct {
	RequestID   string
	Status      int    // 200, 413 or 500
	ErrorType   string // the function's error type; "" for 200
	Reply       string // the caller's reply subject; "" when none waits
	TraceParent string // the caller's traceparent, or ""
	Requeued    string // dartup's requeue token on the request, or ""
	Ran         time.Duration
	Ago         time.Duration // from its end to the notice
}

// AppendDoneRecord appends r's line to b, a batch that starts with
// DoneBatchPrefix (added when b is empty). An optional field that could
// not be read back (a space or a newline in it, or "-") is left out.
func AppendDoneRecord(b []byte, r DoneRecord) []byte {
	if len(b) == 0 {
		b = append(b, DoneBatchPrefix...)
	}
	return appendDoneLine(b, r)
}

// appendDoneLine appends r's line to b.
func appendDoneLine(b []byte, r DoneRecord) []byte {
	b = append(b, r.RequestID...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, max(r.Ran.Microseconds(), 0), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, max(r.Ago.Microseconds(), 0), 10)
	for _, f := range []string{r.Reply, r.TraceParent, r.Requeued} {
		b = append(b, ' ')
		b = append(b, doneField(f)...)
	}
	b = append(b, ' ')
	b = append(b, CleanErrorType(r.ErrorType)...)
	return append(b, '\n')
}

// doneField is f as an optional field of a record: "-" for none.
func doneField(f string) string {
	if f == "" || f == "-" || strings.ContainsAny(f, " \n") {
		return "-"
	}
	return f
}

// IsDoneBatch tells whether data is a batched done notice's body.
func IsDoneBatch(data []byte) bool { return bytes.HasPrefix(data, []byte(DoneBatchPrefix)) }

// ParseDoneBatch reads a batched done notice's records, at most
// MaxDoneBatch; it stops at the first line it cannot read, with why. The
// request id must be valid (ValidRequestID); the other fields are the
// reader's to check.
func ParseDoneBatch(data []byte) ([]DoneRecord, error) {
	rest, ok := bytes.CutPrefix(data, []byte(DoneBatchPrefix))
	if !ok {
		return nil, errors.New("not a batched done notice")
	}
	var out []DoneRecord
	for len(rest) > 0 {
		line, next, found := bytes.Cut(rest, []byte{'\n'})
		if !found {
			return out, fmt.Errorf("record %d has no end of line", len(out)+1)
		}
		if len(out) == MaxDoneBatch {
			return out, fmt.Errorf("more than %d records", MaxDoneBatch)
		}
		r, err := parseDoneRecord(string(line))
		if err != nil {
			return out, fmt.Errorf("record %d: %w", len(out)+1, err)
		}
		out = append(out, r)
		rest = next
	}
	return out, nil
}

// parseDoneRecord reads one record's line.
func parseDoneRecord(line string) (DoneRecord, error) {
	f := strings.SplitN(line, " ", 8)
	if len(f) != 8 {
		return DoneRecord{}, errors.New("not 8 fields")
	}
	r := DoneRecord{RequestID: f[0], ErrorType: f[7]}
	if !ValidRequestID(r.RequestID) {
		return DoneRecord{}, errors.New("no valid request id")
	}
	switch f[1] {
	case "200", "413", "500":
		r.Status, _ = strconv.Atoi(f[1])
	default:
		return DoneRecord{}, fmt.Errorf("status %.8q is not 200, 413 or 500", f[1])
	}
	for i, d := range []*time.Duration{&r.Ran, &r.Ago} {
		us, err := strconv.ParseInt(f[2+i], 10, 64)
		if err != nil || us < 0 || us > int64(24*time.Hour/time.Microsecond) {
			return DoneRecord{}, fmt.Errorf("time %.24q is not a number of µs within a day", f[2+i])
		}
		*d = time.Duration(us) * time.Microsecond
	}
	for i, p := range []*string{&r.Reply, &r.TraceParent, &r.Requeued} {
		if f[4+i] != "-" {
			*p = f[4+i]
		}
	}
	return r, nil
}
