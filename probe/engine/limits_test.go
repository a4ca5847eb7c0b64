package engine

import "testing"

func TestSocketBudget(t *testing.T) {
	tests := []struct {
		requested int
		limit     uint64
		want      int
	}{
		{1024, 1 << 20, 1024}, // fits
		{1024, 1024, 1024 - fdReserve},
		{4096, 256, 256 - fdReserve},
		{10, 20, 1}, // a limit below the reserve still leaves one socket
	}
	for _, tc := range tests {
		if got := SocketBudget(tc.requested, tc.limit); got != tc.want {
			t.Errorf("SocketBudget(%d, %d) = %d, want %d", tc.requested, tc.limit, got, tc.want)
		}
	}
}
