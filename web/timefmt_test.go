package web

import (
	"testing"
	"time"
)

func TestAgo(t *testing.T) {
	now := time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{-time.Minute, "just now"}, // a clock a little ahead
		{10 * time.Second, "just now"},
		{50 * time.Second, "1 min ago"},
		{3*time.Minute + 10*time.Second, "3 min ago"},
		{59 * time.Minute, "59 min ago"},
		{90 * time.Minute, "1 h ago"},
		{23 * time.Hour, "23 h ago"},
		{50 * time.Hour, "2 d ago"},
		{8 * 24 * time.Hour, "6 Mar 2025"},
	} {
		if got := ago(now.Add(-tc.d), now); got != tc.want {
			t.Errorf("ago(now-%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
