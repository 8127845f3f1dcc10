package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/test/stack"
)

// TestQuickDrain runs the drain scenario small, through the same code as `make bench`,
// so the benchmark cannot rot. It asserts correctness only: every order stored once,
// none poisoned. Speed is the benchmark's to report.
func TestQuickDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the stack and drains 200 orders")
	}
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	v, err := sluiceVariant(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	spec := drainSpec{Orders: 200, Rate: 100, Instances: 2, Limit: time.Minute}
	res, err := runDrain(ctx, "quick", spec, v, testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Drained {
		t.Errorf("%d orders still waiting after %v", res.Waiting, spec.Limit)
	}
	if res.Stored != spec.Orders || res.Lost != 0 || res.Duplicated != 0 || res.Poisoned != 0 {
		t.Errorf("stored %d of %d, lost %d, duplicated %d, poisoned %d; want all stored once, none lost or poisoned",
			res.Stored, spec.Orders, res.Lost, res.Duplicated, res.Poisoned)
	}
	t.Logf("drained %d orders in %v: efficiency %.3f, %d of %d attempts throttled",
		res.Stored, res.Drain, res.Efficiency(), res.Throttled, res.Attempts)
}

// testLog writes progress lines to the test log.
type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
