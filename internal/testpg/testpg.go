// Package testpg gives tests the development PostgreSQL (started by scripts/postgres.sh start)
// with a fresh database per test:
//
//	url := testpg.Require(t) // postgres://lockerhub@127.0.0.1:5433/t_<random>?sslmode=disable
//	db, err := sqldb.Open(ctx, url, "")
//
// The server's URL is $LOCKERHUB_POSTGRES_URL, default DefaultURL; it must name a loopback
// host (127.0.0.0/8, ::1 or localhost), and its role must be allowed to create databases.
package testpg

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// DefaultURL is where scripts/postgres.sh start serves PostgreSQL.
const DefaultURL = "postgres://lockerhub@127.0.0.1:5433/lockerhub?sslmode=disable"

// EnvURL names the environment variable that overrides DefaultURL.
const EnvURL = "LOCKERHUB_POSTGRES_URL"

// admins holds one connection pool per server URL, for CREATE and DROP DATABASE: tests of a
// package share it rather than connecting anew for each database.
var admins = struct {
	sync.Mutex
	m map[string]*sql.DB
}{m: map[string]*sql.DB{}}

func admin(server string) (*sql.DB, error) {
	admins.Lock()
	defer admins.Unlock()
	if db := admins.m[server]; db != nil {
		return db, nil
	}
	db, err := sql.Open("pgx", server)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	admins.m[server] = db
	return db, nil
}

// Require returns the URL of a database created for this test on the development PostgreSQL
// at $LOCKERHUB_POSTGRES_URL (default DefaultURL), dropped in t.Cleanup (with the connections
// still open to it). If the server does not answer, the test is skipped, or failed when the
// environment variable CI is set, with a message to run scripts/postgres.sh start. Each call
// creates another database.
func Require(t testing.TB) string {
	t.Helper()
	server := os.Getenv(EnvURL)
	if server == "" {
		server = DefaultURL
	}
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("testpg: %s does not parse as a URL", EnvURL) // the URL may hold a password
	}
	shown := u.Redacted()
	if err := checkLoopback(u); err != nil {
		t.Fatalf("testpg: %s=%q: %v", EnvURL, shown, err)
	}
	db, err := admin(server)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	if err != nil {
		msg := fmt.Sprintf("testpg: no PostgreSQL answers at %s (%v): run scripts/postgres.sh start", shown, err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testpg: %v", err)
	}
	name := "t_" + hex.EncodeToString(b[:])
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("testpg: creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// FORCE: a handle the test leaked must not keep its database alive.
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("testpg: dropping database %s: %v", name, err)
		}
	})
	tu := *u
	tu.Path = "/" + name
	return tu.String()
}

func checkLoopback(u *url.URL) error {
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("want a postgres:// URL")
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	if strings.Contains(u.Host, ",") {
		return fmt.Errorf("want one host")
	}
	return fmt.Errorf("tests may only talk to loopback (127.0.0.1), not %q", host)
}
