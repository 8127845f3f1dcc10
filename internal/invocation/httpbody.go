package invocation

import (
	"fmt"
	"mime"
	"net/http"
	"strings"
)

// JSONBody returns the request's body if it is a JSON body within maxBytes, or the
// problem to answer instead: 415 for another media type, 400 for no body, 413 for too
// large.
func JSONBody(req *HTTPRequest, maxBytes int64) ([]byte, *Problem) {
	ct := req.Header("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return nil, &Problem{Status: http.StatusUnsupportedMediaType, Field: "Content-Type",
			Detail: fmt.Sprintf("send the order as application/json, not %q", truncate(ct, 100))}
	}
	if req.Body == nil || *req.Body == "" {
		return nil, &Problem{Status: http.StatusBadRequest, Detail: "the request has no body"}
	}
	if int64(len(*req.Body)) > maxBytes {
		return nil, &Problem{Status: http.StatusRequestEntityTooLarge,
			Detail: fmt.Sprintf("the body is %d bytes; the limit is %d", len(*req.Body), maxBytes)}
	}
	return []byte(*req.Body), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
