package httpapi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
)

const (
	// defaultMaxImportBytes bounds an import body when Config.MaxImportBytes
	// is zero: 1 GiB, some 30 million typical lines.
	defaultMaxImportBytes = 1 << 30
	// importBatch is how many JIDs go to Redis per round trip.
	importBatch = 1000
	// maxImportLine is the longest line read; a JID is at most 3071 bytes.
	maxImportLine = 4096
	// maxReportedInvalid bounds the invalid lines listed in the answer, so
	// that its size does not grow with the body; InvalidCount has them all.
	maxReportedInvalid = 1000
	// importDeadline is how long one import may take to read and answer,
	// past the server's usual timeouts.
	importDeadline = 30 * time.Minute
	// maxEchoedJID is how much of an invalid line the answer repeats.
	maxEchoedJID = 100
)

// importResult is the answer to POST /v1/users/{username}/followers/import.
type importResult struct {
	Imported     int           `json:"imported"`
	Already      int           `json:"already"`
	Invalid      []invalidLine `json:"invalid"`
	InvalidCount int           `json:"invalid_count"`
}

// invalidLine is one line that held no usable JID.
type invalidLine struct {
	Line  int    `json:"line"`
	JID   string `json:"jid"`
	Error string `json:"error"`
}

// importFollowers handles POST /v1/users/{username}/followers/import (admin):
// a text/plain body with one JID per line, streamed in batches of
// importBatch, so memory stays constant however long the body is. Blank
// lines and lines starting with # are skipped; invalid lines are reported
// with their numbers and the valid ones kept. Importing again changes
// nothing: JIDs already following count as "already".
func (s *server) importFollowers(w http.ResponseWriter, r *http.Request) {
	if !s.requireAdmin(w, r) {
		return
	}
	if !isTextPlain(r.Header.Get("Content-Type")) {
		writeProblem(w, blank(http.StatusUnsupportedMediaType, "send the JIDs as text/plain, one per line"))
		return
	}
	username := chi.URLParam(r, "username")
	if !s.userMustExist(w, r, username) {
		return
	}
	// A long import outlives the server's read and write timeouts.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(importDeadline))
	_ = rc.SetWriteDeadline(time.Now().Add(importDeadline))
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxImportBytes)
	res, err := s.runImport(r, username, body)
	s.metrics.imported.WithLabelValues("imported").Add(float64(res.Imported))
	s.metrics.imported.WithLabelValues("already").Add(float64(res.Already))
	s.metrics.imported.WithLabelValues("invalid").Add(float64(res.InvalidCount))
	var storeErr *importStoreError
	switch {
	case isTooLarge(err):
		writeProblem(w, blank(http.StatusRequestEntityTooLarge,
			fmt.Sprintf("import body exceeds %d bytes; the lines before the limit were imported", s.cfg.MaxImportBytes)))
	case errors.As(err, &storeErr):
		s.fail(w, r, "import followers", storeErr.err)
	case err != nil:
		writeProblem(w, malformedImport("the body could not be read to its end; importing it again is safe"))
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

// importStoreError marks a store failure, as opposed to a body that could
// not be read.
type importStoreError struct{ err error }

func (e *importStoreError) Error() string { return e.err.Error() }

// runImport reads body line by line and adds the JIDs in batches.
func (s *server) runImport(r *http.Request, username string, body io.Reader) (importResult, error) {
	res := importResult{Invalid: []invalidLine{}}
	batch := make([]string, 0, importBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		added, err := s.graph.AddFollowers(r.Context(), username, batch)
		if err != nil {
			return &importStoreError{err}
		}
		res.Imported += added
		res.Already += len(batch) - added
		batch = batch[:0]
		return nil
	}
	lines := newLineReader(body)
	for n := 1; ; n++ {
		line, tooLong, err := lines.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, errors.Join(err, flush())
		}
		bare, bad := s.importLine(line, tooLong)
		if bad != "" {
			res.invalid(n, line, bad)
			continue
		}
		if bare == "" {
			continue
		}
		if batch = append(batch, bare); len(batch) == importBatch {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	return res, flush()
}

// importLine returns the bare JID of a line, "" for a line to skip, or why
// the line is invalid.
func (s *server) importLine(line []byte, tooLong bool) (string, string) {
	if tooLong {
		return "", fmt.Sprintf("line is longer than %d bytes", maxImportLine)
	}
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] == '#' {
		return "", ""
	}
	if !utf8.Valid(line) {
		return "", "not valid UTF-8"
	}
	bare, err := s.normalizeJID(string(line))
	if err != nil {
		return "", err.Error()
	}
	return bare, ""
}

func (res *importResult) invalid(n int, line []byte, why string) {
	res.InvalidCount++
	if len(res.Invalid) >= maxReportedInvalid {
		return
	}
	echo := bytes.TrimSpace(line)
	if len(echo) > maxEchoedJID {
		echo = echo[:maxEchoedJID]
	}
	res.Invalid = append(res.Invalid, invalidLine{Line: n, JID: string(bytes.ToValidUTF8(echo, []byte("\uFFFD"))), Error: why})
}

func malformedImport(detail string) problem {
	return typed(typeInvalidImport, "Unreadable import", http.StatusBadRequest, detail)
}

// lineReader splits a stream into lines of at most maxImportLine bytes
// without ever holding more than one buffer; a longer line is reported as
// too long (with its first bytes) and skipped to its end.
type lineReader struct {
	br *bufio.Reader
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, maxImportLine)}
}

// next returns the next line without its end, whether it was too long, and
// io.EOF after the last line. The line is valid until the next call.
func (l *lineReader) next() ([]byte, bool, error) {
	line, err := l.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		head := append([]byte(nil), line[:maxEchoedJID]...)
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = l.br.ReadSlice('\n')
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, false, err
		}
		return head, true, nil
	case errors.Is(err, io.EOF) && len(line) == 0:
		return nil, false, io.EOF
	case err != nil && !errors.Is(err, io.EOF):
		return nil, false, err
	}
	return bytes.TrimSuffix(line, []byte("\n")), false, nil
}
