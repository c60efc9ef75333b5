package faultproxy

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echo starts a line echo server and returns its address.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					c.Write([]byte(line))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip writes msg and reads the echo, waiting at most wait; it
// reports whether the echo came.
func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, msg string, wait time.Duration) bool {
	t.Helper()
	c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadString('\n')
	if err != nil {
		return false
	}
	if got != msg {
		t.Fatalf("echo %q, want %q", got, msg)
	}
	return true
}

func TestBlackholeHoldsTrafficUntilHeal(t *testing.T) {
	p, err := New(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if !roundTrip(t, c, r, "before\n", 5*time.Second) {
		t.Fatal("no echo through a healthy link")
	}
	p.Blackhole()
	if roundTrip(t, c, r, "cut\n", 200*time.Millisecond) {
		t.Fatal("an echo came through a cut link")
	}
	// A new connection made during the cut is held too.
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	r2 := bufio.NewReader(c2)
	if roundTrip(t, c2, r2, "new\n", 200*time.Millisecond) {
		t.Fatal("a connection made during the cut got an echo")
	}
	p.Heal()
	// What was written during the cut arrives after the heal.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "cut\n" {
		t.Fatalf("after heal: %q, %v; want the held line", got, err)
	}
	if !roundTrip(t, c, r, "after\n", 5*time.Second) {
		t.Fatal("no echo after heal")
	}
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	if got, err := r2.ReadString('\n'); err != nil || got != "new\n" {
		t.Fatalf("held connection after heal: %q, %v", got, err)
	}
	if p.Cuts() != 1 {
		t.Fatalf("Cuts = %d, want 1", p.Cuts())
	}
}

func TestCloseEndsConnections(t *testing.T) {
	p, err := New(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p.Blackhole()
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on a cut link")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from a closed proxy succeeded")
	}
}
