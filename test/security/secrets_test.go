package security

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/test/azurite"
	"github.com/sluice-dev/sluice/test/faultproxy"
	"github.com/sluice-dev/sluice/test/faults"
	"github.com/sluice-dev/sluice/test/funchost"
	"github.com/sluice-dev/sluice/test/stack"
)

// canary returns a recognisable secret of n characters that is also valid base64, so it
// can stand in for an account key: a marker, then random letters and digits.
func canary(marker string, n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n-len(marker))
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return marker + string(b)
}

// TestSecretsStayOutOfLogsAndResponses runs the pipeline with recognisable secrets in
// every credential it holds (the Cosmos key, the storage account key in
// AzureWebJobsStorage, the function and master keys) and a bearer token on requests,
// drives it through its success and failure paths, and searches every log line, every
// response and every poison message for them.
//
// The Cosmos stand-in accepts any key. Azurite checks its signatures, so it is given the
// storage canary as a second key of the development account (AZURITE_ACCOUNTS); the
// handler holds only the canary, and its poison messages prove it wrote with it.
func TestSecretsStayOutOfLogsAndResponses(t *testing.T) {
	cosmosKey := canary("SluiceCanaryCosmosKey", 88)
	storageKey := canary("SluiceCanaryStorageKey", 88)
	functionKey := canary("SluiceCanaryFunctionKey", 56)
	masterKey := canary("SluiceCanaryMasterKey", 56)
	bearer := canary("SluiceCanaryBearerToken", 64)
	secrets := map[string]string{"COSMOS_KEY": cosmosKey, "storage account key": storageKey,
		"function key": functionKey, "master key": masterKey, "bearer token": bearer}

	t.Setenv("AZURITE_ACCOUNTS", azurite.AccountName+":"+azurite.AccountKey+":"+storageKey)
	hostLog := &faults.Console{} // the hosts' records, the handlers' console lines among them
	console := &faults.Console{}
	s := stack.StartT(t, stack.Options{
		FaultProxy: true, Console: console,
		Logger: slog.New(slog.NewTextHandler(hostLog, &slog.HandlerOptions{Level: slog.LevelDebug})),
		HostOptions: func(o *funchost.Options) {
			o.EnforceKeys, o.FunctionKey, o.MasterKey = true, functionKey, masterKey
			o.Env = maps.Clone(o.Env)
			conn := strings.Replace(o.Env["AzureWebJobsStorage"], azurite.AccountKey, storageKey, 1)
			if conn == o.Env["AzureWebJobsStorage"] {
				t.Fatalf("the stack's connection string does not hold the development key")
			}
			o.Env["AzureWebJobsStorage"] = conn
		},
		Settings: map[string]string{"COSMOS_KEY": cosmosKey, "LOG_LEVEL": "debug", "QUEUE_REQUEUE_BASE_DELAY": "1s"},
	})
	faults.WaitFor(t, "the cosmos container to be ready", time.Minute, func() bool {
		return console.Count("msg", "cosmos container ready") > 0
	})
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", s.Hosts[0].HandlerPID()))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"COSMOS_KEY=" + cosmosKey, "AccountKey=" + storageKey} {
		if !bytes.Contains(environ, []byte(want)) {
			t.Fatalf("the handler does not hold the planted secret %.20s…; the search would prove nothing", want)
		}
	}

	// The store refuses some writes (401, 403, 500) so that error paths log too.
	s.Proxy.Script(
		faultproxy.Rule{Match: faultproxy.Writes, Times: 2, Status: http.StatusUnauthorized},
		faultproxy.Rule{Match: faultproxy.Writes, Times: 2, Status: http.StatusForbidden},
		faultproxy.Rule{Match: faultproxy.Reads, Times: 2, Status: http.StatusInternalServerError},
	)
	var responses bytes.Buffer
	client := &http.Client{Timeout: 30 * time.Second}
	call := func(method, path, body string, header map[string]string) {
		req, err := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		// The request's own query may hold a key; only the answer is recorded.
		fmt.Fprintf(&responses, "%s %s\n%d\n", method, req.URL.Path, resp.StatusCode)
		_ = resp.Header.Write(&responses)
		responses.Write(b)
		responses.WriteByte('\n')
	}
	withKey := map[string]string{"x-functions-key": functionKey, "Authorization": "Bearer " + bearer}
	order := func(id string) string {
		return fmt.Sprintf(`{"id":%q,"customerId":"secrets","items":[{"sku":"apple","quantity":1}]}`, id)
	}
	for _, id := range []string{"s-0", "s-1", "s-2", "s-3", "s-4", "s-5"} {
		call(http.MethodPost, "/api/orders", order(id), withKey)
	}
	call(http.MethodPost, "/api/orders?code="+functionKey, order("s-code"), map[string]string{"Authorization": "Bearer " + bearer})
	call(http.MethodPost, "/api/orders", `{"id":"s-bad",`, withKey)
	call(http.MethodPost, "/api/orders", order("s-nokey"), nil)
	call(http.MethodPost, "/api/orders", order("s-wrongkey"), map[string]string{"x-functions-key": "wrong-" + functionKey})
	call(http.MethodPut, "/api/customers/secrets/orders/s-put", `{"items":[{"sku":"apple","quantity":1}]}`, withKey)
	call(http.MethodGet, "/api/customers/secrets/orders/s-put?code="+masterKey, "", nil)
	call(http.MethodGet, "/api/customers/secrets/orders/missing", "", withKey)
	call(http.MethodGet, "/api/health", "", map[string]string{"x-functions-key": masterKey})
	ctx := context.Background()
	if err := s.Enqueue(ctx, "orders", `{"id":"s-poison","items":[]}`); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(ctx, "notifications", `{"orderId":"s/notify"}`); err != nil {
		t.Fatal(err)
	}
	var orders, notifications []string
	for _, id := range []string{"s-0", "s-1", "s-2", "s-3", "s-4", "s-5", "s-code"} {
		orders = append(orders, "secrets/"+id)
		notifications = append(notifications, id)
	}
	ordersLedger, fulfilmentLedger := faults.OrdersLedger(s), faults.FulfilmentLedger(s)
	tally := ordersLedger.Settle(t, append(orders, "/s-poison"), 2*time.Minute)
	faults.Check(t, "orders", tally)
	faults.Check(t, "fulfilments", fulfilmentLedger.Settle(t, append(notifications, "s/notify"), 2*time.Minute))
	var poison bytes.Buffer
	for _, p := range append(ordersLedger.Poisoned(), fulfilmentLedger.Poisoned()...) {
		if p.Reason == "" {
			t.Errorf("a message was poisoned without a reason: %q", p.Text)
		}
		poison.WriteString(p.Text + "\n")
	}
	if poison.Len() == 0 {
		t.Fatalf("no poison message: the handler never wrote to the queues with the planted key")
	}

	haystacks := map[string]string{
		"handler console": strings.Join(console.Lines(), "\n"),
		"host log":        strings.Join(hostLog.Lines(), "\n"),
		"HTTP responses":  responses.String(),
		"poison messages": poison.String(),
	}
	// Shapes of credentials, whatever their value: a connection string's key, a Cosmos
	// authorization token (type=master&ver=1.0&sig=…, URL-encoded), a storage signature.
	shapes := []string{"AccountKey=", "type%3dmaster", "type=master", "sig%3d", "SharedKey " + azurite.AccountName + ":", "Bearer "}
	for where, text := range haystacks {
		if text == "" {
			t.Errorf("%s: nothing collected", where)
		}
		for name, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds the %s: %s", where, name, around(text, secret))
			}
		}
		for _, shape := range shapes {
			if i := strings.Index(strings.ToLower(text), strings.ToLower(shape)); i >= 0 {
				t.Errorf("%s holds a credential (%q): %s", where, shape, around(text, text[i:i+len(shape)]))
			}
		}
	}
	st := s.Proxy.Stats()
	refused := st.FaultStatuses[http.StatusUnauthorized] + st.FaultStatuses[http.StatusForbidden] + st.FaultStatuses[http.StatusInternalServerError]
	if refused == 0 {
		t.Errorf("the store refused nothing; its error paths were not exercised")
	}
	t.Logf("%d store refusals (401, 403, 500); secrets searched for in %d console lines, %d host log lines, %d bytes of responses and %d bytes of poison messages: %s",
		refused, len(console.Lines()), len(hostLog.Lines()), responses.Len(), poison.Len(), tally)
}

// around quotes the line of text holding needle.
func around(text, needle string) string {
	i := strings.Index(text, needle)
	start := strings.LastIndexByte(text[:i], '\n') + 1
	end := strings.IndexByte(text[i:], '\n')
	if end < 0 {
		end = len(text) - i
	}
	line := text[start : i+end]
	if len(line) > 400 {
		line = line[:400] + "…"
	}
	return fmt.Sprintf("%q", line)
}
