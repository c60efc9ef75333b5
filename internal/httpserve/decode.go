package httpserve

import (
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
)

// DecodeJSON reads one JSON object from a request body into v, strictly:
// an unknown field is an error (UnknownField names it), and so is
// anything after the object. Other errors are encoding/json's (a
// *json.SyntaxError, a *json.UnmarshalTypeError, io.EOF for an empty
// body) or the body's (an *http.MaxBytesError past a limit).
func DecodeJSON(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// UnknownField reports whether err is DecodeJSON's error for an unknown
// field, and the field's name ("" when it cannot be read back).
func UnknownField(err error) (string, bool) {
	quoted, ok := strings.CutPrefix(err.Error(), "json: unknown field ")
	if !ok {
		return "", false
	}
	name, _ := strconv.Unquote(quoted)
	return name, true
}
