package controlapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/controlapi"
	"github.com/thinkgen/thinkgen/internal/bearer/bearertest"
	"github.com/thinkgen/thinkgen/internal/testutil"
	"github.com/thinkgen/thinkgen/queue"
	"github.com/thinkgen/thinkgen/queue/queuetest"
)

func TestClientRetriesConnectionErrorsAnd5xxNot4xx(t *testing.T) {
	f := newFixture(t, queue.Options{})
	var calls, fail5xx atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if fail5xx.Add(-1) >= 0 {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		// Forward to the real server.
		req, _ := http.NewRequest(r.Method, f.srv.URL+r.URL.Path, r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		buf := make([]byte, 1<<16)
		for {
			n, err := resp.Body.Read(buf)
			w.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}))
	defer proxy.Close()
	c, err := controlapi.NewClient(proxy.URL, controlapi.ClientOptions{Token: f.token, RetryMax: 3,
		RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		name      string
		fail5xx   int32
		call      func() error
		wantCalls int32
		wantErr   error
	}{
		{"two 503s, then success", 2, func() error {
			_, err := c.Register(ctx, "w", []queue.Role{queue.RoleReward}, 1)
			return err
		}, 3, nil},
		{"503 on every try", 10, func() error { _, err := c.Status(ctx); return err }, 4, nil},
		{"404 is not retried", 0, func() error {
			return c.Complete(ctx, "00ff00ff00ff00ff00ff00ff", "run1/1/reward/s0", 1, queuetest.Result(queuetest.Task("reward", "s0")))
		}, 1, queue.ErrUnknownWorker},
		{"400 is not retried", 0, func() error { _, err := c.Heartbeat(ctx, "nothex", "run1/1/reward/s0", 1); return err }, 1, controlapi.ErrBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls.Store(0)
			fail5xx.Store(tc.fail5xx)
			err := tc.call()
			if got := calls.Load(); got != tc.wantCalls {
				t.Errorf("%d requests, want %d", got, tc.wantCalls)
			}
			switch {
			case tc.name == "503 on every try":
				var ae *controlapi.APIError
				if !errors.As(err, &ae) || ae.StatusCode != 503 {
					t.Errorf("error %v, want the last 503", err)
				}
			case tc.wantErr == nil && err != nil:
				t.Errorf("error %v", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr) && !errors.Is(err, queue.ErrInvalid):
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), f.token) {
				t.Errorf("error shows the token: %v", err)
			}
		})
	}
	fail5xx.Store(0)

	// A connection dropped before any reply is retried, then reported
	// without the token.
	ln := testutil.Listen(t)
	var accepts atomic.Int32
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			conn.Close()
		}
	}()
	c2, _ := controlapi.NewClient("http://"+ln.Addr().String(), controlapi.ClientOptions{Token: f.token, RetryMax: 2,
		RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}})
	_, err = c2.Status(ctx)
	if err == nil || strings.Contains(err.Error(), f.token) {
		t.Fatalf("call to a server that drops connections: %v, want an error without the token", err)
	}
	if n := accepts.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (2 retries)", n)
	}
}

func TestNewClientRefusesCredentialsInURL(t *testing.T) {
	for _, u := range []string{"http://user:s3cr3tpassword@127.0.0.1:1", "ftp://127.0.0.1", "127.0.0.1:8701", "http://"} {
		_, err := controlapi.NewClient(u, controlapi.ClientOptions{})
		if err == nil {
			t.Errorf("NewClient(%q): no error", u)
		} else if strings.Contains(err.Error(), "s3cr3tpassword") {
			t.Errorf("NewClient(%q): error shows the password: %v", u, err)
		}
	}
}

func TestLoadToken(t *testing.T) {
	bearertest.CheckLoad(t, controlapi.LoadToken, controlapi.TokenEnv, controlapi.TokenFileEnv, controlapi.ErrNoToken)
	a, err1 := controlapi.GenerateToken()
	b, err2 := controlapi.GenerateToken()
	if err1 != nil || err2 != nil || a == b || len(a) != 64 {
		t.Fatalf("GenerateToken = %q, %q (%v, %v)", a, b, err1, err2)
	}
}
