package httpserve

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestDecodeJSON(t *testing.T) {
	type body struct {
		N int    `json:"n"`
		S string `json:"s"`
	}
	tests := []struct {
		name    string
		in      string
		want    body
		unknown string // the unknown field the error names, if any
		errIs   error
		errAs   any
		errHas  string
	}{
		{name: "object", in: `{"n": 2, "s": "x"}`, want: body{N: 2, S: "x"}},
		{name: "trailing space", in: "{\"n\": 1}\n", want: body{N: 1}},
		{name: "unknown field", in: `{"n": 1, "m": 2}`, unknown: "m"},
		{name: "unknown field with a quote", in: `{"a\"b": 2}`, unknown: `a"b`},
		{name: "trailing object", in: `{"n": 1} {}`, errHas: "trailing data after the JSON object"},
		{name: "empty", in: "", errIs: io.EOF},
		{name: "wrong type", in: `{"n": "x"}`, errAs: new(*json.UnmarshalTypeError)},
		{name: "malformed", in: `{"n": }`, errAs: new(*json.SyntaxError)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got body
			err := DecodeJSON(strings.NewReader(tc.in), &got)
			f, isUnknown := "", false
			if err != nil {
				f, isUnknown = UnknownField(err)
			}
			switch {
			case tc.unknown != "":
				if !isUnknown || f != tc.unknown {
					t.Fatalf("err %v: UnknownField = %q, %t; want %q, true", err, f, isUnknown, tc.unknown)
				}
			case tc.errIs != nil:
				if !errors.Is(err, tc.errIs) {
					t.Fatalf("err %v, want %v", err, tc.errIs)
				}
			case tc.errAs != nil:
				if !errors.As(err, tc.errAs) {
					t.Fatalf("err %v (%T), want a %T", err, err, tc.errAs)
				}
			case tc.errHas != "":
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err %v, want one saying %q", err, tc.errHas)
				}
			default:
				if err != nil || got != tc.want {
					t.Fatalf("DecodeJSON = %+v, %v; want %+v", got, err, tc.want)
				}
			}
			if tc.unknown == "" && isUnknown {
				t.Errorf("UnknownField(%v) = %q, true; want false", err, f)
			}
		})
	}
}
