// Package retryhttp builds the retrying HTTP client of thinkgen's service
// clients (the controller API's and the reward service's): connection
// errors, 429 and 5xx replies are retried with exponential backoff, and
// once the retries are spent the last reply (or error) is handed to the
// caller as it is, so that the caller can read the service's error body.
package retryhttp

import (
	"net/http"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// New returns a client that sends through transport (nil: Go's default),
// gives each attempt timeout (0: none), and retries a request up to
// retryMax times, waiting from waitMin to waitMax between attempts. It
// logs nothing.
func New(transport http.RoundTripper, timeout time.Duration, retryMax int, waitMin, waitMax time.Duration) *retryablehttp.Client {
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: transport, Timeout: timeout}
	rc.Logger = nil
	rc.RetryMax = retryMax
	rc.RetryWaitMin, rc.RetryWaitMax = waitMin, waitMax
	rc.CheckRetry = retryablehttp.DefaultRetryPolicy
	rc.Backoff = retryablehttp.DefaultBackoff
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return rc
}
