package storage

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// tempPrefix starts the names of the local store's temporary files. Keys
// with a segment that starts with it are rejected, so a temporary file is
// never mistaken for an object.
const tempPrefix = ".thinkgen-tmp-"

// KeyError reports an object key (or list prefix) that a store refuses.
type KeyError struct {
	Key    string
	Reason string
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("thinkgen/storage: invalid key %q: %s", e.Key, e.Reason)
}

// ValidateKey checks that key is a clean relative object key: slash-separated
// non-empty segments, none of them "." or "..", no leading or trailing
// slash, no backslash and no control characters. The same key then names
// the same object in every store, and no key can leave a local store's
// directory.
func ValidateKey(key string) error {
	if key == "" {
		return &KeyError{key, "empty"}
	}
	if strings.HasSuffix(key, "/") {
		return &KeyError{key, "ends with /"}
	}
	return validatePath(key)
}

// validatePrefix checks a List prefix: like a key, but it may be empty and
// may end with a slash.
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return validatePath(strings.TrimSuffix(prefix, "/"))
}

func validatePath(key string) error {
	if !utf8.ValidString(key) {
		return &KeyError{key, "is not valid UTF-8"}
	}
	for _, r := range key {
		switch {
		case r == '\\':
			return &KeyError{key, "contains a backslash"}
		case unicode.IsControl(r):
			return &KeyError{key, fmt.Sprintf("contains the control character %U", r)}
		}
	}
	if strings.HasPrefix(key, "/") {
		return &KeyError{key, "is an absolute path"}
	}
	if len(key) > 900 {
		return &KeyError{key, "longer than 900 bytes"}
	}
	for _, seg := range strings.Split(key, "/") {
		switch {
		case seg == "":
			return &KeyError{key, "has an empty segment"}
		case seg == "." || seg == "..":
			return &KeyError{key, fmt.Sprintf("has a %q segment", seg)}
		case strings.HasPrefix(seg, tempPrefix):
			return &KeyError{key, "uses the reserved prefix " + tempPrefix}
		}
	}
	return nil
}
