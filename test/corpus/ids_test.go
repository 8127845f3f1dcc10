package corpus

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/order"
	"github.com/sluice-dev/sluice/test/faults"
	"github.com/sluice-dev/sluice/test/stack"
)

// awkwardIDs are ids a client might send that the validation accepts: each must survive
// a create and a read, through the queue and through PUT, byte for byte. The ones it
// refuses ('/', '\', '?', '#', surrounding white space, control characters, over 255
// bytes) are cases of the corpus.
var awkwardIDs = []string{
	"a b", "ördér", "日本語", "😀", "👩‍👩‍👧", "100%", "%41", "a+b", "a&b=c", `quote"d`, "it's",
	"a:b;c", "a@b", "...", "~", "^", "[x]", "{x}", "a|b", "a*b", "a,b", "<x>", "`x`", "$x", "!x",
	"(x)", "a\u00a0b", "zero\u200bwidth", "rtl\u202eoverride", "e\u0301", strings.Repeat("x", 255),
	strings.Repeat("ü", 127),
}

// TestAcceptedIDsRoundTrip stores an order under every awkward id, once through the
// queue and once through PUT, and reads each back through the read function.
func TestAcceptedIDsRoundTrip(t *testing.T) {
	con := &faults.Console{}
	s := stack.StartT(t, stack.Options{NoFulfilment: true, Console: con})
	faults.WaitFor(t, "the cosmos container to be ready", time.Minute, func() bool {
		return con.Count("msg", "cosmos container ready") > 0
	})
	ctx := context.Background()
	var viaQueue []faults.Order
	for _, id := range awkwardIDs {
		if err := order.CheckKey(id); err != nil {
			t.Fatalf("id %q is refused (%v); it belongs in the corpus, not here", id, err)
		}
		viaQueue = append(viaQueue, faults.Order{CustomerID: "rt-queue", ID: id})
	}
	if err := faults.Send(ctx, s, viaQueue); err != nil {
		t.Fatal(err)
	}
	tally := faults.OrdersLedger(s).Settle(t, faults.Keys(viaQueue), time.Minute)
	faults.Check(t, "orders sent through the queue", tally)

	for _, id := range awkwardIDs {
		t.Run(id, func(t *testing.T) {
			path := "/api/customers/rt-put/orders/" + url.PathEscape(id)
			// A shed PUT is retried after its Retry-After, as a client of a shedding API
			// does; the round trip, not the shedding, is what this test is about.
			var put reply
			for attempt := 0; attempt < 10; attempt++ {
				put = send(t, &Case{Method: http.MethodPut, Path: path, ContentType: "application/json"},
					s.URL(), []byte(`{"items":[{"sku":"apple","quantity":1}]}`))
				if put.status != http.StatusTooManyRequests && put.status != http.StatusServiceUnavailable {
					break
				}
				wait, err := strconv.Atoi(put.header.Get("Retry-After"))
				if err != nil || wait < 1 {
					t.Fatalf("PUT %s = %d without a usable Retry-After (%q)", path, put.status, put.header.Get("Retry-After"))
				}
				time.Sleep(time.Duration(wait) * time.Second)
			}
			if put.status != http.StatusOK {
				t.Fatalf("PUT %s = %d %s", path, put.status, clip(put.body))
			}
			for _, customer := range []string{"rt-put", "rt-queue"} {
				item, ok, err := s.Item(ctx, customer, id)
				if err != nil || !ok || item["id"] != id {
					t.Errorf("stand-in read of %q for %s: found %v, id %q, err %v", id, customer, ok, item["id"], err)
				}
				p := "/api/customers/" + customer + "/orders/" + url.PathEscape(id)
				got := send(t, &Case{Method: http.MethodGet, Path: p}, s.URL(), nil)
				var back struct {
					ID string `json:"id"`
				}
				if got.status != http.StatusOK || json.Unmarshal(got.body, &back) != nil || back.ID != id {
					t.Errorf("GET %s = %d %s, want the order %q", p, got.status, clip(got.body), id)
				}
			}
		})
	}
	t.Logf("%d accepted ids stored through the queue and through PUT and read back: %s", len(awkwardIDs), tally)
}
