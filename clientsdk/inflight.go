package clientsdk

import "strings"

// EnvLambdaInflight, in direct mode, names a file of the worker's in which
// it writes the request it runs (InflightRecord) before its handler, and
// which it clears (a 0 byte at offset 0) before it answers — unless the
// done notice with that request's record goes out first, in which case the
// file may keep naming it: dartup ignores a file that names the last
// record it had. A request
// over within 1 ms sends dartup no took notice: if the worker dies in it,
// dartup reads the file to answer the caller 502 instead of leaving it to
// its own timeout. A worker that cannot open the file goes on without it.
const EnvLambdaInflight = "DARTUP_LAMBDA_INFLIGHT"

// MaxInflightRecord bounds an in-flight record (dartup reads no more).
const MaxInflightRecord = 1024

// InflightRecord is the record of the request a direct worker runs: its
// request id, the caller's reply subject and trace, one a line after a
// leading "1". It is nil when it would not fit MaxInflightRecord.
func InflightRecord(id, reply, traceparent string) []byte {
	if strings.ContainsAny(id+reply+traceparent, "\n\x00") {
		return nil
	}
	b := []byte("1\n" + id + "\n" + reply + "\n" + traceparent + "\n")
	if len(b) > MaxInflightRecord {
		return nil
	}
	return b
}

// ParseInflightRecord reads what InflightRecord wrote at the start of b;
// ok is false for a cleared file or anything else.
func ParseInflightRecord(b []byte) (id, reply, traceparent string, ok bool) {
	if len(b) > MaxInflightRecord {
		b = b[:MaxInflightRecord]
	}
	rest, found := strings.CutPrefix(string(b), "1\n")
	if !found {
		return "", "", "", false
	}
	f := strings.SplitN(rest, "\n", 4)
	if len(f) < 4 || !ValidRequestID(f[0]) {
		return "", "", "", false
	}
	return f[0], f[1], f[2], true
}
