package ccs

import "github.com/ccsd/ccsd/internal/limit"

// TopicPrefix starts a "to" that names a topic: "/topics/NAME".
const TopicPrefix = "/topics/"

// MaxTopicNameBytes bounds a topic name, FCM's documented pattern
// [a-zA-Z0-9-_.~%]{1,900}. A "to" naming a topic may therefore be longer
// than limit.MaxIDBytes, the bound of every other id.
const MaxTopicNameBytes = 900

// ValidTopicName reports whether name matches [a-zA-Z0-9-_.~%]{1,900}.
func ValidTopicName(name string) bool {
	if len(name) == 0 || len(name) > MaxTopicNameBytes {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == '~', c == '%':
		default:
			return false
		}
	}
	return true
}

// TopicOf returns the topic name of a "to" of the form "/topics/NAME"
// (ok false for any other target; the name is not validated).
func TopicOf(to string) (name string, ok bool) {
	if len(to) < len(TopicPrefix) || to[:len(TopicPrefix)] != TopicPrefix {
		return "", false
	}
	return to[len(TopicPrefix):], true
}

// TargetTooLong reports whether a "to" is past its bound: a topic target
// may hold a 900-byte name, every other target is an id (limit.MaxIDBytes).
func TargetTooLong(to string) bool {
	if _, ok := TopicOf(to); ok {
		return len(to) > len(TopicPrefix)+MaxTopicNameBytes
	}
	return len(to) > limit.MaxIDBytes
}
