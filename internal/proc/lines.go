package proc

import "bytes"

// lineSplitter cuts an output stream into lines for fn: each without its
// newline, a line longer than MaxLineBytes in pieces of MaxLineBytes, and
// what is left at the end of the stream handed over by flush. Between
// writes it keeps only an unfinished line, so a stream that is idle at a
// line's end holds no buffer at all. fn's slice is valid only during the
// call. It is not safe for concurrent use.
type lineSplitter struct {
	fn    func([]byte)
	carry []byte
}

// write takes the next bytes of the stream.
func (s *lineSplitter) write(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		part := b
		if i >= 0 {
			part = b[:i]
		}
		part = s.fullPieces(part)
		if i < 0 {
			s.carry = append(s.carry, part...) // an unfinished line: wait for its end
			return
		}
		if len(s.carry) > 0 {
			s.fn(append(s.carry, part...))
			s.carry = nil
		} else {
			s.fn(part)
		}
		b = b[i+1:]
	}
}

// fullPieces hands fn the pieces of MaxLineBytes that the unfinished line
// and part (without a newline) make up, and returns the rest of part.
func (s *lineSplitter) fullPieces(part []byte) []byte {
	for len(s.carry)+len(part) > MaxLineBytes {
		if len(s.carry) == 0 {
			s.fn(part[:MaxLineBytes])
			part = part[MaxLineBytes:]
			continue
		}
		n := MaxLineBytes - len(s.carry)
		s.fn(append(s.carry, part[:n]...))
		s.carry = nil
		part = part[n:]
	}
	return part
}

// flush hands fn the unfinished line at the end of the stream, if any.
func (s *lineSplitter) flush() {
	if len(s.carry) > 0 {
		s.fn(s.carry)
		s.carry = nil
	}
}
