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
	mt, params, err := mime.ParseMediaType(ct)
	isJSON := mt == "application/json" || (strings.HasSuffix(mt, "+json") && strings.Contains(mt, "/") && !strings.HasPrefix(mt, "/"))
	if ct == "" || err != nil || !isJSON {
		return nil, &Problem{Status: http.StatusUnsupportedMediaType, Field: "Content-Type",
			Detail: fmt.Sprintf("send the order as application/json, not %q", truncate(ct, 100))}
	}
	// JSON is UTF-8; a body declared in another charset would be read as UTF-8 anyway and
	// stored with its other characters replaced.
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return nil, &Problem{Status: http.StatusUnsupportedMediaType, Field: "Content-Type",
			Detail: fmt.Sprintf("send the order in UTF-8, not charset %q", truncate(cs, 40))}
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
