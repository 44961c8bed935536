package server

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/memgate/memgate/storage"
)

// Deliveries older than the retention go; younger ones stay, so a replay
// of a recent body is still refused by its hash.
func TestPruneDeliveriesKeepsTheReplayGuard(t *testing.T) {
	ctx := context.Background()
	b := newTestServerWith(t, "sqlite:"+filepath.Join(t.TempDir(), "p.db"), Config{WebhookSecret: "s", MaxEventAge: 96 * time.Hour})
	keep := b.s.deliveryRetention()
	if keep != MinDeliveryRetention {
		t.Fatalf("retention %s, want %s for a 4-day event bound", keep, MinDeliveryRetention)
	}
	for i, age := range []time.Duration{keep + time.Hour, keep + 24*time.Hour, keep - time.Hour, time.Minute} {
		if _, err := b.store.RecordDelivery(ctx, nil, storage.Delivery{GUID: fmt.Sprintf("g%d", i), Event: "pull_request",
			ReceivedAt: time.Now().Add(-age), BodySHA256: fmt.Sprintf("%064d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := b.s.pruneDeliveries(ctx, keep)
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want the 2 older than %s", n, err, keep)
	}
	if left, _ := b.store.CountDeliveries(ctx); left != 2 {
		t.Fatalf("%d deliveries left, want 2", left)
	}
	// The kept ones still guard their bodies.
	if _, err := b.store.RecordDelivery(ctx, nil, storage.Delivery{GUID: "new", Event: "pull_request", BodySHA256: fmt.Sprintf("%064d", 3)}); err == nil {
		t.Fatal("a kept body was accepted again under a new delivery id")
	}
	// A pruned body would be refused as stale by the event age bound instead.
	if n, err := b.s.pruneDeliveries(ctx, keep); err != nil || n != 0 {
		t.Fatalf("second prune: %d, %v", n, err)
	}
}

func TestNoEventAgeBoundKeepsDeliveriesForEver(t *testing.T) {
	b := newTestServerWith(t, "sqlite:"+filepath.Join(t.TempDir(), "p.db"), Config{WebhookSecret: "s"})
	if keep := b.s.deliveryRetention(); keep != 0 {
		t.Fatalf("retention %s without an event age bound, want 0 (for ever)", keep)
	}
	if keep := (&Server{cfg: Config{MaxEventAge: 30 * 24 * time.Hour}}).deliveryRetention(); keep != 60*24*time.Hour {
		t.Fatalf("retention %s for a 30-day bound, want 60 days", keep)
	}
}
