package db

// Written by hand, unlike the rest of the package: the parameters that
// store "not set" as SQL null take these.

import "time"

// OptionalMillis maps zero or less, "not set", to SQL null, and rounds
// anything shorter than a millisecond up to one.
func OptionalMillis(d time.Duration) *int32 {
	if d <= 0 {
		return nil
	}
	ms := int32(max(d.Milliseconds(), 1))
	return &ms
}

// OptionalInt64 maps zero or less, "not set", to SQL null.
func OptionalInt64(n int64) *int64 {
	if n <= 0 {
		return nil
	}
	return &n
}

// OptionalInt maps zero or less, "not set", to SQL null.
func OptionalInt(n int) *int32 {
	if n <= 0 {
		return nil
	}
	v := int32(n)
	return &v
}
