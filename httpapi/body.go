package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// maxBodyBytes bounds every request body: a post of 500 code points is at
// most a few KiB even fully escaped.
const maxBodyBytes = 64 << 10

// readJSON decodes the request body, exactly one JSON value of at most
// maxBodyBytes without unknown object members, into dst. It returns nil or
// the problem to answer with.
func readJSON(w http.ResponseWriter, r *http.Request, dst any) *problem {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeProblem(err)
	}
	_, err := dec.Token()
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case isTooLarge(err):
		return decodeProblem(err)
	default:
		p := malformed("request body has data after the JSON value")
		return &p
	}
}

// decodeProblem maps a decoding error to its problem.
func decodeProblem(err error) *problem {
	var (
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
		enc     *encodingError
		p       problem
	)
	switch {
	case isTooLarge(err):
		p = blank(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", maxBodyBytes))
	case errors.As(err, &enc):
		p = typed(typeInvalidText, "Invalid post text", http.StatusUnprocessableEntity, enc.Error())
	case errors.Is(err, io.EOF):
		p = malformed("request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		p = malformed("request body ends inside a JSON value")
	case errors.As(err, &syntax):
		p = malformed(fmt.Sprintf("malformed JSON at byte %d: %s", syntax.Offset, syntax.Error()))
	case errors.As(err, &typeErr):
		p = malformed(typeMismatch(typeErr))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		p = malformed("unknown member " + strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		p = malformed("request body could not be read")
	}
	return &p
}

func isTooLarge(err error) bool {
	var tooLarge *http.MaxBytesError
	return errors.As(err, &tooLarge)
}

func typeMismatch(e *json.UnmarshalTypeError) string {
	if e.Field == "" {
		return fmt.Sprintf("request body must be a JSON %s, not %s", jsonKind(e.Type), e.Value)
	}
	return fmt.Sprintf("member %q must be a JSON %s, not %s", e.Field, jsonKind(e.Type), e.Value)
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	default:
		return "number"
	}
}

// malformed is the 400 answer to a body that is not the JSON expected.
func malformed(detail string) problem {
	return typed(typeInvalidJSON, "Malformed request body", http.StatusBadRequest, detail)
}
