package app

import (
	"os"

	"github.com/dartup/dartup/clientsdk"
)

// journal is dartup's in-flight file (clientsdk.EnvLambdaInflight) as a
// direct worker keeps it: the records of the last two batched done
// notices it sent, then the records it holds, then the request it runs
// (dartup heeds that line only when its took notice never came). A notice
// published may wait in the connection's buffer for nats.go's flusher,
// and die there with the worker; dartup counts a record of the file
// unless it is in one of the last two batches it received. Each change is
// one write. A nil journal (no file, or one that could not be written)
// does nothing. Its methods are called under the worker's mu.
type journal struct {
	f   *os.File
	off int64 // the end of the records (sent and held): where the run line goes
	// older and last are the lines of the two batches sent last; held
	// those of the records held since.
	older, last, held []byte
	buf               []byte
}

// openJournal opens and empties dartup's in-flight file, if the
// environment names one that can be written; nil otherwise (the worker
// goes without).
func openJournal() *journal {
	path := os.Getenv(clientsdk.EnvLambdaInflight)
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil
	}
	j := &journal{f: f}
	j.write(append([]byte(clientsdk.InflightPrefix), 0), 0)
	j.off = int64(len(clientsdk.InflightPrefix))
	if j.f == nil {
		return nil
	}
	return j
}

// write writes b at off; after a failure (a full disk: the write may be
// cut short) the journal does nothing more, and the file is emptied: the
// records it lists go out in notices from then on, and dartup would count
// them again, and 502 a request its line names that was answered.
func (j *journal) write(b []byte, off int64) bool {
	if _, err := j.f.WriteAt(b, off); err != nil {
		_ = j.f.Truncate(0) // dartup ignores a file without the prefix
		_ = j.f.Close()
		j.f = nil
		return false
	}
	return true
}

// run writes line, the request running (clientsdk.AppendInflightRun),
// after the records held; an empty line (or one past the file's bound)
// names none.
func (j *journal) run(line []byte) {
	if j == nil || j.f == nil {
		return
	}
	if j.off+int64(len(line))+1 > clientsdk.MaxInflightFile {
		line = nil
	}
	j.buf = append(append(j.buf[:0], line...), 0)
	j.write(j.buf, j.off)
}

// hold writes rec's line over the running request's, after the records.
// It reports false when the line would pass the file's bound: the worker
// sends the records it holds instead.
func (j *journal) hold(rec clientsdk.DoneRecord) bool {
	if j == nil || j.f == nil {
		return true
	}
	start := len(j.held)
	j.held = clientsdk.AppendInflightHeld(j.held, rec)
	line := j.held[start:]
	if j.off+int64(len(line))+1 > clientsdk.MaxInflightFile {
		j.held = j.held[:start]
		return false
	}
	j.buf = append(append(j.buf[:0], line...), 0)
	if j.write(j.buf, j.off) {
		j.off += int64(len(line))
	}
	return true
}

// sent notes that the records held are being sent in a batch: they
// become the last batch sent, the one before it the older, and the older
// one leaves the file; line, the request running, if any, follows them.
// One write, from the prefix on.
func (j *journal) sent(line []byte) {
	if j == nil || j.f == nil {
		return
	}
	j.older, j.last, j.held = append(j.older[:0], j.last...), append(j.last[:0], j.held...), j.held[:0]
	j.buf = append(j.buf[:0], clientsdk.InflightPrefix...)
	if len(j.buf)+len(j.older)+len(j.last)+len(line)+1 <= clientsdk.MaxInflightFile {
		j.buf = append(j.buf, j.older...)
	}
	j.buf = append(j.buf, j.last...)
	j.off = int64(len(j.buf))
	j.buf = append(j.buf, line...)
	j.buf = append(j.buf, 0)
	j.write(j.buf, 0)
}
