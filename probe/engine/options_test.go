package engine

import (
	"math"
	"testing"
	"time"
)

func TestValidateRate(t *testing.T) {
	valid := Options{Timeout: time.Second, UDPTimeout: time.Second, Sockets: 1, PerHost: 1}
	for _, r := range []float64{-1, math.NaN(), math.Inf(1)} {
		opts := valid
		opts.Rate = r
		if _, err := New(&Plan{}, opts); err == nil {
			t.Errorf("rate %v accepted", r)
		}
	}
	for _, r := range []float64{0, 0.5, 200} {
		opts := valid
		opts.Rate = r
		if err := opts.Validate(); err != nil {
			t.Errorf("rate %v refused: %v", r, err)
		}
	}
}
