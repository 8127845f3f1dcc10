package funchost

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// route is an HTTP trigger's route template, split into segments.
type route struct {
	fn       *function
	segments []segment
	methods  []string // upper case; empty means every method
	literals int      // literal segments, for precedence
}

type segment struct {
	literal    string
	param      string
	optional   bool
	catchAll   bool
	constraint string
}

func (h *Host) buildRoutes() error {
	for _, f := range h.functions {
		if !f.isHTTP() || f.Disabled {
			continue
		}
		tmpl := f.Name
		if f.Trigger.Route != nil {
			tmpl = *f.Trigger.Route
		}
		full := strings.Trim(tmpl, "/")
		if h.cfg.RoutePrefix != "" {
			full = strings.Trim(h.cfg.RoutePrefix+"/"+full, "/")
		}
		r := &route{fn: f}
		for _, m := range f.Trigger.Methods {
			r.methods = append(r.methods, strings.ToUpper(m))
		}
		if full != "" {
			for _, s := range strings.Split(full, "/") {
				seg, err := parseSegment(s)
				if err != nil {
					return fmt.Errorf("function %s route %q: %w", f.Name, tmpl, err)
				}
				if seg.literal != "" {
					r.literals++
				}
				r.segments = append(r.segments, seg)
			}
		}
		h.routes = append(h.routes, r)
	}
	// Literal segments win over parameters, as ASP.NET's route precedence orders them.
	sort.SliceStable(h.routes, func(i, j int) bool { return h.routes[i].literals > h.routes[j].literals })
	return nil
}

// HTTPRoute is an HTTP trigger as the host serves it, for listing.
type HTTPRoute struct {
	Function string
	Methods  string // e.g. "GET,POST", or "ALL"
	Path     string // e.g. /api/customers/{customerId}/orders/{id}
}

// HTTPRoutes lists the HTTP triggers the host serves, in path order.
func (h *Host) HTTPRoutes() []HTTPRoute {
	var out []HTTPRoute
	for _, r := range h.routes {
		methods := "ALL"
		if len(r.methods) > 0 {
			methods = strings.Join(r.methods, ",")
		}
		var parts []string
		for _, s := range r.segments {
			switch {
			case s.literal != "":
				parts = append(parts, s.literal)
			case s.catchAll:
				parts = append(parts, "{*"+s.param+"}")
			case s.optional:
				parts = append(parts, "{"+s.param+"?}")
			default:
				parts = append(parts, "{"+s.param+"}")
			}
		}
		out = append(out, HTTPRoute{Function: r.fn.Name, Methods: methods, Path: "/" + strings.Join(parts, "/")})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func parseSegment(s string) (segment, error) {
	if !strings.HasPrefix(s, "{") {
		if strings.ContainsAny(s, "{}") {
			return segment{}, fmt.Errorf("segment %q mixes text and parameters, which the imitation does not support", s)
		}
		return segment{literal: s}, nil
	}
	if !strings.HasSuffix(s, "}") {
		return segment{}, fmt.Errorf("segment %q is not a parameter", s)
	}
	inner := s[1 : len(s)-1]
	seg := segment{}
	if strings.HasPrefix(inner, "*") {
		seg.catchAll, inner = true, inner[1:]
	}
	if strings.HasSuffix(inner, "?") {
		seg.optional, inner = true, inner[:len(inner)-1]
	}
	if name, c, ok := strings.Cut(inner, ":"); ok {
		inner, seg.constraint = name, strings.ToLower(c)
	}
	if inner == "" {
		return segment{}, fmt.Errorf("segment %q has no parameter name", s)
	}
	seg.param = inner
	return seg, nil
}

// match returns the route parameters when path fits the template.
func (r *route) match(path string) (map[string]string, bool) {
	path = strings.Trim(path, "/")
	var parts []string
	if path != "" {
		parts = strings.Split(path, "/")
	}
	params := map[string]string{}
	for i, seg := range r.segments {
		if seg.catchAll {
			params[seg.param] = strings.Join(parts[min(i, len(parts)):], "/")
			return params, true
		}
		if i >= len(parts) {
			if seg.optional {
				continue
			}
			return nil, false
		}
		p := parts[i]
		if seg.literal != "" {
			if !strings.EqualFold(seg.literal, p) {
				return nil, false
			}
			continue
		}
		if !constraintHolds(seg.constraint, p) {
			return nil, false
		}
		params[seg.param] = p
	}
	if len(parts) > len(r.segments) {
		return nil, false
	}
	return params, true
}

func constraintHolds(c, v string) bool {
	switch c {
	case "":
		return true
	case "int", "long":
		_, err := strconv.ParseInt(v, 10, 64)
		return err == nil
	case "bool":
		return strings.EqualFold(v, "true") || strings.EqualFold(v, "false")
	case "alpha":
		for _, r := range v {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return false
			}
		}
		return v != ""
	case "guid":
		return len(v) == 36 && strings.Count(v, "-") == 4
	default:
		return true
	}
}

func (h *Host) startHTTP(addr string) error {
	if err := h.buildRoutes(); err != nil {
		return err
	}
	if addr == "" {
		addr = "127.0.0.1:7071"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for HTTP triggers: %w", err)
	}
	h.listener = l
	if h.cfg.MaxConcurrent > 0 {
		h.httpSem = make(chan struct{}, h.cfg.MaxConcurrent)
	}
	h.httpSrv = &http.Server{Handler: http.HandlerFunc(h.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = h.httpSrv.Serve(l) }()
	h.logger.Info("serving HTTP triggers", "url", h.URL())
	return nil
}

func (h *Host) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h.stats.httpRequests.Add(1)
	path := r.URL.Path
	if path == "/" || path == "" {
		// The host's own page for the root URL.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, "<html><body>Your Functions app is up and running.</body></html>\n")
		return
	}
	var matched *route
	var params map[string]string
	for _, rt := range h.routes {
		p, ok := rt.match(path)
		if !ok {
			continue
		}
		if len(rt.methods) > 0 && !slices.Contains(rt.methods, r.Method) {
			continue
		}
		matched, params = rt, p
		break
	}
	if matched == nil {
		// The host answers a path or a method that no function takes with 404.
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if !h.authorised(matched.fn, r) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}

	// maxOutstandingRequests bounds the requests waiting plus running; the rest get 429.
	if h.cfg.MaxOutstanding > 0 {
		if n := h.waiting.Add(1); n > int64(h.cfg.MaxOutstanding) {
			h.waiting.Add(-1)
			h.stats.httpThrottled.Add(1)
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		defer h.waiting.Add(-1)
	}
	if h.httpSem != nil {
		select {
		case h.httpSem <- struct{}{}:
			defer func() { <-h.httpSem }()
		case <-r.Context().Done():
			return
		}
	}

	inv, err := h.httpInvocation(matched.fn, r, params)
	if err != nil {
		h.logger.Error("reading the request", "function", matched.fn.Name, "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	// The invocation runs to completion even when the caller hangs up, as it does on the
	// host: its outputs (a queued message) must not depend on the client.
	out, err := h.invoke(context.WithoutCancel(r.Context()), inv)
	if err != nil {
		// A failed invocation gives the caller a 500 with an empty body.
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	resp := out.http
	if resp == nil {
		resp = &httpOutput{Status: 200, Headers: [][2]string{{"Content-Type", "application/json; charset=utf-8"}}, Body: []byte("{}")}
	}
	for _, kv := range resp.Headers {
		w.Header().Set(kv[0], kv[1])
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(resp.Body)))
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

func (h *Host) authorised(fn *function, r *http.Request) bool {
	level := strings.ToLower(fn.Trigger.AuthLevel)
	if !h.opts.EnforceKeys || level == "anonymous" {
		return true
	}
	key := r.Header.Get("x-functions-key")
	if key == "" {
		key = r.URL.Query().Get("code")
	}
	eq := func(a, b string) bool { return b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	if eq(key, h.opts.MasterKey) {
		return true
	}
	return level == "function" && eq(key, h.opts.FunctionKey)
}

// httpInvocation builds Data.<trigger> and Metadata as the host does for an HTTP trigger.
func (h *Host) httpInvocation(fn *function, r *http.Request, params map[string]string) (*invocation, error) {
	id := newGUID()
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	query := map[string]string{}
	for k, vs := range r.URL.Query() {
		query[k] = strings.Join(vs, ",")
	}
	headersArr := map[string][]string{}
	headersStr := map[string]string{}
	for k, vs := range r.Header {
		headersArr[k] = vs
		headersStr[k] = strings.Join(vs, ",")
	}
	headersArr["Host"] = []string{r.Host}
	headersStr["Host"] = r.Host
	paramsAny := map[string]any{}
	for k, v := range params {
		paramsAny[k] = v
	}
	req := map[string]any{
		"Url":     scheme + "://" + r.Host + r.URL.RequestURI(),
		"Method":  r.Method,
		"Query":   query,
		"Headers": headersArr,
		"Params":  paramsAny,
		"Identities": []map[string]any{{
			"AuthenticationType": nil, "IsAuthenticated": false, "Actor": nil, "BootstrapContext": nil,
			"Claims": []any{}, "Label": nil, "Name": nil,
			"NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
			"RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
		}},
	}
	var body []byte
	// The body is read only when the request declares a length; a chunked request's body
	// never reaches the handler.
	if r.ContentLength > 0 {
		var err error
		body, err = io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if mt == "application/octet-stream" || strings.HasPrefix(mt, "multipart/") {
			req["Body"] = base64.StdEncoding.EncodeToString(body)
		} else {
			req["Body"] = string(body)
		}
	}
	// The HTTP extension's binding data, in its order: body properties, then query
	// values, then route values, each replacing what came before under the same name;
	// Query and Headers only when no such key exists yet. The sys object comes last.
	meta := map[string]any{}
	if len(body) > 0 {
		applyJSONBindingData(meta, string(body), true)
	}
	for k, v := range query {
		if !strings.EqualFold(k, "code") {
			setFold(meta, k, wireValue(v))
		}
	}
	for k, v := range params {
		setFold(meta, k, wireValue(v))
	}
	if _, ok := findKey(meta, "Query"); !ok {
		meta["Query"] = query
	}
	if _, ok := findKey(meta, "Headers"); !ok {
		meta["Headers"] = headersStr
	}
	setFold(meta, "sys", sysMetadata(fn.Name, time.Now()))
	finishMetadata(meta)
	return &invocation{
		fn:       fn,
		id:       id,
		data:     map[string]any{fn.Trigger.Name: req},
		metadata: meta,
		logger:   h.logger,
	}, nil
}
