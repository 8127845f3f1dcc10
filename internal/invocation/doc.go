// Package invocation speaks the Azure Functions custom-handler protocol: it decodes the
// envelope the Functions host POSTs to /<FunctionName>, hands it to the function registered
// under that name, and encodes the function's answer as the {Outputs, Logs, ReturnValue}
// object the host expects.
//
// The host's real wire format differs from the sample in the documentation. The host
// serialises every string and number a second time, so a queue message "hi" arrives as
// "\"hi\"", DequeueCount arrives as "5", and Id and PopReceipt carry their own quotes.
// Times arrive without fractional seconds. The decoders here accept both the real form and
// the documented one, so a handler that passes its tests also runs under the real host.
package invocation
