package cosmosstandin_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"

	"github.com/sluice-dev/sluice/test/cosmosstandin"
)

type order struct {
	ID         string `json:"id"`
	CustomerID string `json:"customerId"`
	Total      int    `json:"total"`
}

// newContainer creates a database and an orders container on a fresh
// stand-in and returns a client for the container.
func newContainer(t *testing.T) *azcosmos.ContainerClient {
	t.Helper()
	s := cosmosstandin.StartT(t)
	cred, err := azcosmos.NewKeyCredential(cosmosstandin.EmulatorKey)
	if err != nil {
		t.Fatal(err)
	}
	// Verification is off only because the endpoint is loopback and the
	// stand-in's certificate is self-signed and expired.
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	t.Cleanup(tr.CloseIdleConnections)
	client, err := azcosmos.NewClientWithKey(s.Endpoint, cred, &azcosmos.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: &http.Client{Transport: tr}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)

	ctx := context.Background()
	if _, err := client.CreateDatabase(ctx, azcosmos.DatabaseProperties{ID: "sluice"}, nil); err != nil {
		t.Fatalf("create database: %v", err)
	}
	db, err := client.NewDatabase("sluice")
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.CreateContainer(ctx, azcosmos.ContainerProperties{
		ID: "orders",
		PartitionKeyDefinition: azcosmos.PartitionKeyDefinition{
			Paths: []string{"/customerId"},
		},
	}, nil)
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	c, err := db.NewContainer("orders")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func statusOf(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func TestItemLifecycle(t *testing.T) {
	c := newContainer(t)
	ctx := context.Background()
	pk := azcosmos.NewPartitionKeyString("c1")
	doc := func(o order) []byte {
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	resp, err := c.CreateItem(ctx, pk, doc(order{"o1", "c1", 10}), nil)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if resp.RawResponse.StatusCode != http.StatusCreated {
		t.Errorf("create status = %d, want 201", resp.RawResponse.StatusCode)
	}
	if resp.ETag == "" {
		t.Error("create returned no ETag")
	}

	_, err = c.CreateItem(ctx, pk, doc(order{"o1", "c1", 99}), nil)
	if got := statusOf(err); got != http.StatusConflict {
		t.Errorf("duplicate create: status %d (err %v), want 409", got, err)
	}

	if _, err := c.UpsertItem(ctx, pk, doc(order{"o1", "c1", 20}), nil); err != nil {
		t.Fatalf("upsert existing: %v", err)
	}
	if _, err := c.UpsertItem(ctx, pk, doc(order{"o2", "c1", 5}), nil); err != nil {
		t.Fatalf("upsert new: %v", err)
	}

	read, err := c.ReadItem(ctx, pk, "o1", nil)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var got order
	if err := json.Unmarshal(read.Value, &got); err != nil {
		t.Fatal(err)
	}
	if got != (order{"o1", "c1", 20}) {
		t.Errorf("read after upsert = %+v, want total 20", got)
	}

	_, err = c.ReadItem(ctx, pk, "missing", nil)
	if got := statusOf(err); got != http.StatusNotFound {
		t.Errorf("read missing: status %d (err %v), want 404", got, err)
	}

	// The same id under another partition key is a different item.
	_, err = c.ReadItem(ctx, azcosmos.NewPartitionKeyString("c2"), "o1", nil)
	if got := statusOf(err); got != http.StatusNotFound {
		t.Errorf("read in other partition: status %d (err %v), want 404", got, err)
	}

	pager := c.NewQueryItemsPager("SELECT * FROM c WHERE c.total > @min", pk,
		&azcosmos.QueryOptions{QueryParameters: []azcosmos.QueryParameter{{Name: "@min", Value: 6}}})
	var ids []string
	for pages := 0; pager.More() && pages < 10; pages++ {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("query: %v", err)
		}
		for _, item := range page.Items {
			var o order
			if err := json.Unmarshal(item, &o); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, o.ID)
		}
	}
	if !slices.Equal(ids, []string{"o1"}) {
		t.Errorf("query returned %v, want [o1]", ids)
	}

	if _, err := c.DeleteItem(ctx, pk, "o2", nil); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = c.ReadItem(ctx, pk, "o2", nil)
	if got := statusOf(err); got != http.StatusNotFound {
		t.Errorf("read after delete: status %d, want 404", got)
	}
}

func TestConditionalReplace(t *testing.T) {
	c := newContainer(t)
	ctx := context.Background()
	pk := azcosmos.NewPartitionKeyString("c1")
	created, err := c.CreateItem(ctx, pk, []byte(`{"id":"o1","customerId":"c1","total":1}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpsertItem(ctx, pk, []byte(`{"id":"o1","customerId":"c1","total":2}`), nil); err != nil {
		t.Fatal(err)
	}
	// The ETag from the create is stale now, so the replace must fail.
	_, err = c.ReplaceItem(ctx, pk, "o1", []byte(`{"id":"o1","customerId":"c1","total":3}`),
		&azcosmos.ItemOptions{IfMatchEtag: &created.ETag})
	if got := statusOf(err); got != http.StatusPreconditionFailed {
		t.Errorf("replace with stale ETag: status %d (err %v), want 412", got, err)
	}
}

// TestTransactionalBatch checks batches when the stand-in supports them.
// Stand-in 1.0.1 does not: it reads the partition key of each operation
// from the operation, while azcosmos sends it once in a header, so every
// operation after a create fails with 500. It is not atomic either: a
// create earlier in the failed batch stays written.
func TestTransactionalBatch(t *testing.T) {
	c := newContainer(t)
	ctx := context.Background()
	pk := azcosmos.NewPartitionKeyString("c1")
	b := c.NewTransactionalBatch(pk)
	b.CreateItem([]byte(`{"id":"b1","customerId":"c1"}`), nil)
	b.UpsertItem([]byte(`{"id":"b2","customerId":"c1"}`), nil)
	resp, err := c.ExecuteTransactionalBatch(ctx, b, nil)
	if err != nil {
		_, leftover := c.ReadItem(ctx, pk, "b1", nil)
		t.Skipf("stand-in gap: transactional batch fails (%d); first item left written: %v",
			statusOf(err), leftover == nil)
	}
	if !resp.Success {
		t.Fatalf("batch failed: %+v", resp.OperationResults)
	}
	for _, id := range []string{"b1", "b2"} {
		if _, err := c.ReadItem(ctx, pk, id, nil); err != nil {
			t.Errorf("read %s after batch: %v", id, err)
		}
	}
}

func TestPatch(t *testing.T) {
	c := newContainer(t)
	ctx := context.Background()
	pk := azcosmos.NewPartitionKeyString("c1")
	if _, err := c.CreateItem(ctx, pk, []byte(`{"id":"o1","customerId":"c1","total":1}`), nil); err != nil {
		t.Fatal(err)
	}
	var ops azcosmos.PatchOperations
	ops.AppendIncrement("/total", 41)
	if _, err := c.PatchItem(ctx, pk, "o1", ops, nil); err != nil {
		t.Fatalf("patch: %v", err)
	}
	read, err := c.ReadItem(ctx, pk, "o1", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got order
	if err := json.Unmarshal(read.Value, &got); err != nil {
		t.Fatal(err)
	}
	if got.Total != 42 {
		t.Errorf("total after increment = %d, want 42", got.Total)
	}
}

// TestKeepAlive guards the launcher's reason to exist: the stock server
// closes every connection, which costs a TLS handshake per request.
func TestKeepAlive(t *testing.T) {
	s := cosmosstandin.StartT(t)
	c := s.HTTPClient()
	defer c.CloseIdleConnections()
	for range 2 {
		resp, err := c.Get(s.Endpoint)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Close {
			t.Fatalf("stand-in asked to close the connection (Connection: %q)", resp.Header.Get("Connection"))
		}
	}
}

func TestStartWithoutNodeModules(t *testing.T) {
	_, err := cosmosstandin.Start(context.Background(), cosmosstandin.Options{RepoRoot: t.TempDir()})
	if err == nil {
		t.Fatal("Start succeeded without node_modules")
	}
}
