package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/sluice-dev/sluice/internal/queues"
	"github.com/sluice-dev/sluice/internal/redelivery"
	"github.com/sluice-dev/sluice/test/azurite"
)

func TestAccount(t *testing.T) {
	const key = "AccountKey=a2V5;"
	for _, c := range []struct {
		o           queues.Options
		name        string
		development bool
	}{
		{queues.Options{ConnectionString: "UseDevelopmentStorage=true"}, "devstoreaccount1", true},
		{queues.Options{ConnectionString: "usedevelopmentstorage=true;"}, "devstoreaccount1", true},
		{queues.Options{ConnectionString: "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" + key + "QueueEndpoint=http://127.0.0.1:41234/devstoreaccount1;"}, "devstoreaccount1", true},
		{queues.Options{ConnectionString: "AccountName=devstoreaccount1;" + key + "QueueEndpoint=http://localhost:10001/devstoreaccount1"}, "devstoreaccount1", true},
		{queues.Options{ConnectionString: "DefaultEndpointsProtocol=https;AccountName=prodorders;" + key + "EndpointSuffix=core.windows.net"}, "prodorders", false},
		{queues.Options{ConnectionString: "AccountName=devstoreaccount1;" + key + "QueueEndpoint=https://devstoreaccount1.queue.example.net/"}, "devstoreaccount1", false},
		{queues.Options{ConnectionString: "AccountName=other;" + key + "QueueEndpoint=http://127.0.0.1:10001/other"}, "other", false},
		{queues.Options{ConnectionString: "QueueEndpoint=https://prodorders.queue.core.windows.net/;SharedAccessSignature=sv=x"}, "prodorders", false},
		{queues.Options{ServiceURL: "https://prodorders.queue.core.windows.net/"}, "prodorders", false},
		{queues.Options{ServiceURL: "http://127.0.0.1:10001/devstoreaccount1"}, "devstoreaccount1", true},
	} {
		name, dev, err := queues.Account(c.o)
		if err != nil || name != c.name || dev != c.development {
			t.Errorf("account(%+v) = %q, %v, %v; want %q, %v", c.o, name, dev, err, c.name, c.development)
		}
	}

	prod := queues.Options{ConnectionString: "DefaultEndpointsProtocol=https;AccountName=prodorders;" + key}
	if _, err := queues.CheckAccount(prod, ""); err == nil || !strings.Contains(err.Error(), "-account prodorders") {
		t.Errorf("an Azure account without -account: err = %v, want a refusal naming -account prodorders", err)
	}
	if _, err := queues.CheckAccount(prod, "staging"); err == nil {
		t.Error("-account staging was accepted for account prodorders")
	}
	if got, err := queues.CheckAccount(prod, "prodorders"); err != nil || got != "prodorders" {
		t.Errorf("-account prodorders: %q, %v", got, err)
	}
	if _, err := queues.CheckAccount(queues.Options{ConnectionString: "UseDevelopmentStorage=true"}, "prodorders"); err == nil {
		t.Error("-account prodorders was accepted for the local emulator")
	}
}

func TestStorageSettings(t *testing.T) {
	dir := t.TempDir()
	write := func(name, cs string) {
		b, _ := json.Marshal(map[string]any{"Values": map[string]string{"AzureWebJobsStorage": cs}})
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	noEnv := func(string) (string, bool) { return "", false }
	if _, _, err := queues.FromSettings(dir, noEnv); err == nil {
		t.Error("no settings anywhere was accepted")
	}
	write("local.settings.sample.json", "UseDevelopmentStorage=true")
	if o, src, err := queues.FromSettings(dir, noEnv); err != nil || src != "local.settings.sample.json" || o.ConnectionString != "UseDevelopmentStorage=true" {
		t.Errorf("sample only: %+v from %q, %v", o, src, err)
	}
	write("local.settings.json", "AccountName=mine;AccountKey=a2V5")
	if o, src, err := queues.FromSettings(dir, noEnv); err != nil || src != "local.settings.json" || o.ConnectionString != "AccountName=mine;AccountKey=a2V5" {
		t.Errorf("local.settings.json: %+v from %q, %v", o, src, err)
	}
	env := func(k string) (string, bool) {
		if k == "AzureWebJobsStorage__accountName" {
			return "prodorders", true
		}
		return "", false
	}
	if o, src, err := queues.FromSettings(dir, env); err != nil || src != "the environment" || o.ServiceURL != "https://prodorders.queue.core.windows.net/" {
		t.Errorf("environment: %+v from %q, %v", o, src, err)
	}
}

// TestRefusesAnAzureAccount shows that without -account nothing is dialled: the account
// named does not exist, and the refusal comes before any request.
func TestRefusesAnAzureAccount(t *testing.T) {
	env := func(k string) (string, bool) {
		if k == "AzureWebJobsStorage" {
			return "DefaultEndpointsProtocol=https;AccountName=prodorders;AccountKey=a2V5;EndpointSuffix=core.windows.net", true
		}
		return "", false
	}
	var out bytes.Buffer
	_, err := run(context.Background(), t.TempDir(), "", Options{From: "orders-poison"}, env, &out)
	if err == nil || !strings.Contains(err.Error(), "-account prodorders") || out.Len() != 0 {
		t.Errorf("err = %v, output %q; want a refusal before anything is printed or sent", err, out.String())
	}
	if _, err := run(context.Background(), t.TempDir(), "", Options{From: "orders"}, env, &out); err == nil {
		t.Error("-from orders (not a poison queue) without -to was accepted")
	}
}

func TestClassify(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	record, _ := json.Marshal(queues.PoisonMessage{Reason: "invalid-order", Function: "process", PoisonedAt: time.Now(),
		Message: `{"id":"o-1","_redelivery":{"count":2}}`})
	for _, c := range []struct {
		raw, reason, original string
	}{
		{b64(string(record)), "invalid-order", `{"id":"o-1"}`},
		{b64(`{"id":"o-2","_redelivery":{"count":9}}`), Unreasoned, `{"id":"o-2"}`},
		{b64(`{"id":"o-3","reason":"gift"}`), Unreasoned, `{"id":"o-3","reason":"gift"}`}, // an order with a reason field
		{b64(`not json`), Unreasoned, `not json`},
		{"%%% not base64", Undecodable, ""},
	} {
		m := classify(c.raw)
		if m.reason != c.reason || m.original != c.original {
			t.Errorf("classify(%q) = %q, %q; want %q, %q", c.raw, m.reason, m.original, c.reason, c.original)
		}
	}
}

// queueEnv is Azurite with the clients a test needs.
type queueEnv struct {
	t   *testing.T
	q   *queues.Client
	svc *azqueue.ServiceClient
	cs  string
}

func startQueues(t *testing.T) *queueEnv {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	az := azurite.StartT(t, azurite.Options{RepoRoot: root})
	q, err := queues.New(queues.Options{ConnectionString: az.ConnectionString})
	if err != nil {
		t.Fatal(err)
	}
	return &queueEnv{t: t, q: q, svc: q.Service(), cs: az.ConnectionString}
}

func order(i int, deferrals int) string {
	if deferrals == 0 {
		return fmt.Sprintf(`{"id":"o-%d","customerId":"c-1"}`, i)
	}
	return fmt.Sprintf(`{"id":"o-%d","customerId":"c-1","%s":{"count":%d,"firstSeen":"2026-01-01T00:00:00Z","lastReason":"cosmos-unavailable"}}`,
		i, redelivery.StateField, deferrals)
}

// poison writes a message to <queue>-poison the way the handler does.
func (e *queueEnv) poison(queue, reason, text string) {
	e.t.Helper()
	if err := e.q.Poison(context.Background(), queue, queues.PoisonMessage{Reason: reason, Function: "process", Message: text}); err != nil {
		e.t.Fatal(err)
	}
}

// enqueueRaw writes text to queue as it is, the way the host copies a message to a
// poison queue.
func (e *queueEnv) enqueueRaw(queue, text string) {
	e.t.Helper()
	qc := e.svc.NewQueueClient(queue)
	if _, err := qc.Create(context.Background(), nil); err != nil && !strings.Contains(err.Error(), "QueueAlreadyExists") {
		e.t.Fatal(err)
	}
	if _, err := qc.EnqueueMessage(context.Background(), text, nil); err != nil {
		e.t.Fatal(err)
	}
}

// drain takes every visible message off queue and returns their raw texts.
func (e *queueEnv) drain(queue string) []string {
	e.t.Helper()
	ctx := context.Background()
	qc := e.svc.NewQueueClient(queue)
	var texts []string
	for range 1000 {
		resp, err := qc.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: new(int32(32))})
		if err != nil {
			if strings.Contains(err.Error(), "QueueNotFound") {
				return nil
			}
			e.t.Fatal(err)
		}
		if len(resp.Messages) == 0 {
			return texts
		}
		for _, m := range resp.Messages {
			texts = append(texts, *m.MessageText)
			if _, err := qc.DeleteMessage(ctx, *m.MessageID, *m.PopReceipt, nil); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	e.t.Fatalf("queue %s did not drain", queue)
	return nil
}

// orderIDs decodes the messages of a target queue (base64 order JSON) into their order
// ids, failing if one still carries deferral history.
func orderIDs(t *testing.T, raws []string) []string {
	t.Helper()
	var ids []string
	for _, raw := range raws {
		b, err := base64.StdEncoding.DecodeString(raw)
		if err != nil {
			t.Fatalf("message %q is not base64: %v", raw, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("message %s is not a JSON object: %v", b, err)
		}
		if _, ok := m[redelivery.StateField]; ok {
			t.Errorf("message %s still carries %s", b, redelivery.StateField)
		}
		ids = append(ids, fmt.Sprint(m["id"]))
	}
	slices.Sort(ids)
	return ids
}

// poisonIDs reads the order ids of the handler-written messages in a poison queue.
func poisonIDs(t *testing.T, raws []string) []string {
	t.Helper()
	var ids []string
	for _, raw := range raws {
		m := classify(raw)
		var o struct{ ID string }
		if err := json.Unmarshal([]byte(m.original), &o); err != nil {
			t.Fatalf("poison message %q: %v", raw, err)
		}
		ids = append(ids, o.ID)
	}
	slices.Sort(ids)
	return ids
}

func ids(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("o-%d", i))
	}
	slices.Sort(out)
	return out
}

func TestRedrive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Azurite")
	}
	e := startQueues(t)
	env := func(k string) (string, bool) {
		if k == "AzureWebJobsStorage" {
			return e.cs, true
		}
		return "", false
	}

	t.Run("by reason, then the rest", func(t *testing.T) {
		e.t = t
		for i := range 4 {
			e.poison("red-a", "cosmos-unavailable", order(i, 3))
		}
		e.poison("red-a", "invalid-order", order(4, 0))
		e.poison("red-a", "invalid-order", order(5, 0))
		e.enqueueRaw("red-a-poison", base64.StdEncoding.EncodeToString([]byte(order(6, 5)))) // the host's bare copy
		e.enqueueRaw("red-a-poison", "%%% not base64")

		var out bytes.Buffer
		rep, err := run(context.Background(), t.TempDir(), "", Options{From: "red-a-poison", Reasons: []string{"cosmos-unavailable"}}, env, &out)
		if err != nil {
			t.Fatal(err)
		}
		wantSkipped := map[string]int{"invalid-order": 2, Unreasoned: 1, Undecodable: 1}
		if !maps.Equal(rep.Moved, map[string]int{"cosmos-unavailable": 4}) || !maps.Equal(rep.Skipped, wantSkipped) {
			t.Errorf("moved %v, skipped %v; want cosmos-unavailable 4, and %v", rep.Moved, rep.Skipped, wantSkipped)
		}
		for _, want := range []string{"redrive red-a-poison → red-a on storage account devstoreaccount1 (local emulator)",
			"moved 4: cosmos-unavailable 4", "left in red-a-poison 4: invalid-order 2, (no reason) 1, (not base64) 1", "-include-unreasoned"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
		if got := orderIDs(t, e.drain("red-a")); !slices.Equal(got, ids(0, 4)) {
			t.Errorf("queue red-a holds %v, want %v", got, ids(0, 4))
		}

		// What the first run left is visible again at once, and moves now.
		rep, err = Redrive(context.Background(), e.q, Options{From: "red-a-poison", To: "red-a", IncludeUnreasoned: true})
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(rep.Moved, map[string]int{"invalid-order": 2, Unreasoned: 1}) || !maps.Equal(rep.Skipped, map[string]int{Undecodable: 1}) {
			t.Errorf("second run moved %v, skipped %v", rep.Moved, rep.Skipped)
		}
		if got := orderIDs(t, e.drain("red-a")); !slices.Equal(got, ids(4, 7)) {
			t.Errorf("queue red-a holds %v, want %v", got, ids(4, 7))
		}
		if left := e.drain("red-a-poison"); !slices.Equal(left, []string{"%%% not base64"}) {
			t.Errorf("red-a-poison holds %q, want only the undecodable message", left)
		}
	})

	t.Run("dry run, then a limited run", func(t *testing.T) {
		e.t = t
		for i := range 3 {
			e.poison("red-b", "transient", order(i, 1))
		}
		rep, err := Redrive(context.Background(), e.q, Options{From: "red-b-poison", To: "red-b", DryRun: true})
		if err != nil || total(rep.Moved) != 3 {
			t.Fatalf("dry run: %+v, %v; want 3 to move", rep, err)
		}
		rep, err = Redrive(context.Background(), e.q, Options{From: "red-b-poison", To: "red-b", Max: 2})
		if err != nil || total(rep.Moved) != 2 {
			t.Fatalf("-max 2: %+v, %v; want 2 moved", rep, err)
		}
		moved, left := orderIDs(t, e.drain("red-b")), poisonIDs(t, e.drain("red-b-poison"))
		if len(moved) != 2 || len(left) != 1 || !slices.Equal(slices.Sorted(slices.Values(append(moved, left...))), ids(0, 3)) {
			t.Errorf("red-b holds %v and red-b-poison %v; want 2 and 1 of %v", moved, left, ids(0, 3))
		}
	})

	t.Run("missing queue", func(t *testing.T) {
		rep, err := Redrive(context.Background(), e.q, Options{From: "red-none-poison", To: "red-none"})
		if err != nil || !rep.Missing || total(rep.Moved) != 0 {
			t.Errorf("%+v, %v; want a report of a missing queue", rep, err)
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		e.t = t
		for i := range 40 {
			e.poison("red-c", "transient", order(i, 2))
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rep, err := Redrive(ctx, e.q, Options{From: "red-c-poison", To: "red-c", afterEnqueue: func(n int) error {
			if n == 10 {
				cancel() // Ctrl-C between the enqueue and the delete of the tenth
			}
			return nil
		}})
		if err != nil || !rep.Interrupted || total(rep.Moved) != 10 || rep.Duplicated != 0 {
			t.Fatalf("%+v, %v; want 10 moved, then interrupted", rep, err)
		}
		moved, left := orderIDs(t, e.drain("red-c")), poisonIDs(t, e.drain("red-c-poison"))
		if len(moved) != 10 || !slices.Equal(slices.Sorted(slices.Values(append(moved, left...))), ids(0, 40)) {
			t.Errorf("red-c holds %d and red-c-poison %d; want every order exactly once, 10 of them moved", len(moved), len(left))
		}
	})

	t.Run("crash between enqueue and delete", func(t *testing.T) {
		e.t = t
		for i := range 20 {
			e.poison("red-d", "transient", order(i, 2))
		}
		errCrash := errors.New("process killed")
		o := Options{From: "red-d-poison", To: "red-d", Visibility: time.Second, afterEnqueue: func(n int) error {
			if n == 5 {
				return errCrash
			}
			return nil
		}}
		if _, err := Redrive(context.Background(), e.q, o); !errors.Is(err, errCrash) {
			t.Fatalf("err = %v, want the crash", err)
		}
		// The crashed run released nothing: its messages come back once their
		// visibility ends, and a new run moves them.
		o.afterEnqueue = nil
		moved := 0
		for try := 0; moved < 16 && try < 50; try++ {
			rep, err := Redrive(context.Background(), e.q, o)
			if err != nil {
				t.Fatal(err)
			}
			moved += total(rep.Moved)
			if moved < 16 {
				time.Sleep(200 * time.Millisecond)
			}
		}
		// Every order arrives; the one whose move the crash cut short arrives twice.
		got := orderIDs(t, e.drain("red-d"))
		if moved != 16 || len(got) != 21 || !slices.Equal(slices.Compact(slices.Clone(got)), ids(0, 20)) {
			t.Errorf("after the crash and a rerun (%d moved), red-d holds %v; want each of %v, one of them twice", moved, got, ids(0, 20))
		}
		if left := e.drain("red-d-poison"); len(left) != 0 {
			t.Errorf("red-d-poison still holds %d messages", len(left))
		}
	})
}
