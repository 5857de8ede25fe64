package web

import (
	"strconv"
	"time"
)

// ago says how long before now t was, as the page shows it: "just now",
// "3 min ago", "5 h ago", "2 d ago", and past a week the date. static/live.js
// writes the same words for the posts it adds and as time passes.
func ago(t, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 45*time.Second:
		return "just now"
	case d < time.Hour:
		return strconv.Itoa(max(1, int(d/time.Minute))) + " min ago"
	case d < 24*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h ago"
	case d < 7*24*time.Hour:
		return strconv.Itoa(int(d/(24*time.Hour))) + " d ago"
	}
	return t.UTC().Format("2 Jan 2006")
}

// exactTime is the time shown on hover: to the minute, in UTC.
func exactTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// machineTime is the datetime attribute of a <time> element.
func machineTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
