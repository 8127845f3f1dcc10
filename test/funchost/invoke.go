package funchost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// invocation is one call of a function with its trigger data.
type invocation struct {
	fn       *function
	id       string
	data     map[string]any
	metadata map[string]any
	logger   *slog.Logger
}

// outcome is what a successful invocation produced.
type outcome struct {
	http *httpOutput // the http output binding's response, for HTTP triggers
}

// invoke sends the invocation to the handler, checks the reply as the host does, and on
// success writes the output bindings. Any failure comes back as an error, after which
// nothing has been written.
func (h *Host) invoke(ctx context.Context, inv *invocation) (*outcome, error) {
	h.inflight.Add(1)
	defer h.inflight.Done()
	h.stats.invocations.Add(1)
	start := time.Now()
	inv.logger.Info("Executing function", "function", inv.fn.Name, "invocationId", inv.id)
	out, err := h.invokeOnce(ctx, inv)
	elapsed := time.Since(start)
	if err != nil {
		h.stats.failures.Add(1)
		inv.logger.Error("Executed function (Failed)", "function", inv.fn.Name, "invocationId", inv.id,
			"duration_ms", elapsed.Milliseconds(), "err", err)
		return nil, err
	}
	inv.logger.Info("Executed function (Succeeded)", "function", inv.fn.Name, "invocationId", inv.id,
		"duration_ms", elapsed.Milliseconds())
	return out, nil
}

func (h *Host) invokeOnce(ctx context.Context, inv *invocation) (*outcome, error) {
	if h.cfg.FunctionTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.cfg.FunctionTimeout)
		defer cancel()
	}
	w, err := h.worker(ctx)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(map[string]any{"Data": inv.data, "Metadata": inv.metadata})
	if err != nil {
		return nil, err
	}
	// The host's request content has no precomputed length, so the body goes chunked.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.baseURL()+"/"+inv.fn.Name,
		io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		return nil, err
	}
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "Azure-Functions-Host/"+h.hostVersion)
	req.Header.Set("X-Azure-Functions-HostVersion", h.hostVersion)
	req.Header.Set("X-Azure-Functions-InvocationId", inv.id)
	resp, err := h.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			h.stats.timeouts.Add(1)
			return nil, fmt.Errorf("Timeout value of %s exceeded by function '%s' (Id: '%s')", h.cfg.FunctionTimeout, inv.fn.Name, inv.id)
		}
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the handler's reply: %w", err)
	}
	result, err := readResult(resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	if err != nil {
		return nil, err
	}
	// Logs become traces tied to the invocation, at Information: there is no level.
	for _, line := range result.Logs {
		inv.logger.Info(line, "category", "Function."+inv.fn.Name+".User", "invocationId", inv.id)
	}

	// Convert every output before writing any, so a bad value fails the invocation
	// without a partial write.
	out := &outcome{}
	type pending struct {
		queue    string
		conn     string
		messages [][]byte
	}
	var writes []pending
	for _, b := range inv.fn.Outputs {
		var val json.RawMessage
		if b.Name == "$return" {
			val = result.ReturnValue
		} else {
			val = result.Outputs[b.Name]
		}
		switch strings.ToLower(b.Type) {
		case "http":
			var bv bindingValue
			if b.Name == "$return" {
				bv = convertOutput(val, b.DataType)
			} else {
				bv = bindingValue{json: val}
			}
			hr, err := parseHTTPOutput(bv)
			if err != nil {
				return nil, err
			}
			out.http = hr
		case "queue":
			if isNull(val) {
				continue
			}
			msgs, err := queueMessages(convertOutput(val, b.DataType))
			if err != nil {
				return nil, fmt.Errorf("output binding %s: %w", b.Name, err)
			}
			writes = append(writes, pending{queue: expandEnv(b.QueueName, h.env), conn: b.Connection, messages: msgs})
		default:
			if !isNull(val) {
				return nil, fmt.Errorf("output binding %s of type %s is not imitated", b.Name, b.Type)
			}
		}
	}
	for _, p := range writes {
		for _, m := range p.messages {
			if err := h.queues.send(context.WithoutCancel(ctx), p.conn, p.queue, m, h.cfg.Queues.Base64); err != nil {
				return nil, fmt.Errorf("writing to queue %s: %w", p.queue, err)
			}
			h.stats.written.Add(1)
		}
		h.wakeListener(p.queue)
	}
	return out, nil
}
