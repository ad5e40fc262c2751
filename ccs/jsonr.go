package ccs

// A reader for the members of one JSON object, used instead of decoding into
// a map or a struct because both silently keep only one of two members with
// the same name: a client could then smuggle a payload past the size count
// (the map kept one copy, the raw text carried all of them) or make two
// parsers disagree on what a message says. The reader sees every member in
// order, raw, without allocating.

// objectReader walks the top-level members of a JSON object. The input must
// already be valid JSON (json.Valid); on anything else next reports the
// end and err is set, it never panics.
type objectReader struct {
	b    []byte
	i    int
	done bool
	// err is set when the input was not a well-formed object.
	err bool
	// spaced is set when whitespace separated any two tokens of the
	// object's own level: its text is then not in compact form.
	spaced bool
}

// newObjectReader starts reading obj; ok is false when obj is not a JSON
// object.
func newObjectReader(obj []byte) (r objectReader, ok bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return objectReader{}, false
	}
	return objectReader{b: obj, i: i + 1}, true
}

// next returns the next member's name (a JSON string, quotes included) and
// value, both raw slices of the input; ok is false at the end.
func (r *objectReader) next() (key, val []byte, ok bool) {
	if r.done || r.err {
		return nil, nil, false
	}
	b := r.b
	i := r.skip(r.i)
	if i < len(b) && b[i] == '}' {
		r.done = true
		return nil, nil, false
	}
	if i < len(b) && b[i] == ',' {
		i = r.skip(i + 1)
	}
	ke := endOfString(b, i)
	if ke < 0 {
		r.err = true
		return nil, nil, false
	}
	j := r.skip(ke)
	if j >= len(b) || b[j] != ':' {
		r.err = true
		return nil, nil, false
	}
	vs := r.skip(j + 1)
	ve := endOfValue(b, vs)
	if ve < 0 {
		r.err = true
		return nil, nil, false
	}
	r.i = ve
	return b[i:ke], b[vs:ve], true
}

// skip skips whitespace from i and notes whether there was any.
func (r *objectReader) skip(i int) int {
	j := skipSpace(r.b, i)
	if j != i {
		r.spaced = true
	}
	return j
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index just past the JSON string that starts at
// b[i], or -1 if there is none.
func endOfString(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// endOfValue returns the index just past the JSON value that starts at
// b[i], or -1 if there is none.
func endOfValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return endOfString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e := endOfString(b, j)
				if e < 0 {
					return -1
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// keySet remembers decoded member names to find a repeated one. Objects are
// small as a rule: a slice, searched linearly, until it grows past a few
// entries; then a map, so that an object of many members costs linear
// time, not quadratic.
type keySet struct {
	few  []string
	many map[string]struct{}
}

const keySetSlice = 16

// add records k and reports false if it was already there.
func (s *keySet) add(k string) bool {
	if s.many != nil {
		if _, dup := s.many[k]; dup {
			return false
		}
		s.many[k] = struct{}{}
		return true
	}
	for _, f := range s.few {
		if f == k {
			return false
		}
	}
	if len(s.few) < keySetSlice {
		s.few = append(s.few, k)
		return true
	}
	s.many = make(map[string]struct{}, 2*keySetSlice)
	for _, f := range s.few {
		s.many[f] = struct{}{}
	}
	s.many[k] = struct{}{}
	s.few = nil
	return true
}

// DuplicateKey returns the first name that occurs twice among the top-level
// members of the JSON object obj, names compared after decoding (so "a" and
// "\u0061" are one name). ok is false when the names are unique or obj is
// not a JSON object. obj should be valid JSON; the legacy HTTP send calls
// it on a body it has already parsed, where a map would have kept only one
// of the two.
func DuplicateKey(obj []byte) (name string, ok bool) {
	r, isObj := newObjectReader(obj)
	if !isObj {
		return "", false
	}
	var seen keySet
	for key, _, more := r.next(); more; key, _, more = r.next() {
		k, _ := jsonString(key)
		if !seen.add(k) {
			return k, true
		}
	}
	return "", false
}
