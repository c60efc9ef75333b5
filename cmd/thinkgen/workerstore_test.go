package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/thinkgen/thinkgen/storage/storagetest"
)

// TestWorkerWaitsForItsStore: a worker started while MinIO is down (the
// chaos test's outage once caught a learner's replacement starting, which
// then exited and left the learner ranks' gang one short for good) waits
// for it and opens the store once it is back; a bucket that does not exist
// fails at once, naming it.
func TestWorkerWaitsForItsStore(t *testing.T) {
	srv := storagetest.StartServer(t)
	bucket := storagetest.BucketName(t)
	cfg := srv.Config(bucket)
	storagetest.NewBucketStore(t, cfg)
	ctx := context.Background()

	srv.Kill()
	back := make(chan error, 1)
	go func() {
		// Longer than minio-go's own retries (ten, at most a second apart).
		time.Sleep(15 * time.Second)
		back <- srv.Start()
	}()
	var log bytes.Buffer
	st, err := openStoreWaiting(ctx, cfg, time.Minute, &log)
	if err != nil {
		t.Fatalf("the store came back, but: %v\n%s", err, log.String())
	}
	if err := <-back; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "the store does not answer") {
		t.Errorf("no word of the wait: %q", log.String())
	}
	if _, err := st.List(ctx, "runs/"); err != nil {
		t.Errorf("list the reopened store: %v", err)
	}

	missing := srv.Config(bucket + "-missing")
	t0 := time.Now()
	log.Reset()
	if _, err := openStoreWaiting(ctx, missing, time.Minute, &log); err == nil || !strings.Contains(err.Error(), bucket+"-missing") {
		t.Errorf("a missing bucket: %v, want an error naming it", err)
	}
	if d := time.Since(t0); d > 10*time.Second || log.Len() > 0 {
		t.Errorf("a missing bucket was waited for (%v): %q", d, log.String())
	}
}
