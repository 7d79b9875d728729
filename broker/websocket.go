package broker

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// wsListener serves MQTT over WebSocket (subprotocol "mqtt", any path) and hands each upgraded
// connection out as a net.Conn, so that mochi treats it like any other listener. mochi's own
// WebSocket listener binds its address itself and cannot report a port chosen with ":0".
type wsListener struct {
	ln     net.Listener
	srv    *http.Server
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newWSListener(ln net.Listener, maxMessage int64, connectTimeout time.Duration) *wsListener {
	l := &wsListener{ln: ln, conns: make(chan net.Conn), closed: make(chan struct{})}
	up := websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		// MQTT credentials travel inside the CONNECT packet, never in cookies, so a page from
		// another origin gains nothing a plain MQTT client would not have.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	l.srv = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ws, err := up.Upgrade(w, r, nil)
			if err != nil {
				return // Upgrade has already answered with an HTTP error
			}
			ws.SetReadLimit(maxMessage)
			// The HTTP server cleared the listener's deadline once it had read the request;
			// the CONNECT must still come in time.
			ws.SetReadDeadline(time.Now().Add(connectTimeout))
			select {
			case l.conns <- &wsConn{Conn: ws}:
			case <-l.closed:
				ws.Close()
			}
		}),
	}
	go l.srv.Serve(ln)
	return l
}

func (l *wsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *wsListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.srv.Close()
}

func (l *wsListener) Addr() net.Addr { return l.ln.Addr() }

// wsConn is a net.Conn over a WebSocket: MQTT packets may span or share binary messages, so
// reads continue across message boundaries.
type wsConn struct {
	*websocket.Conn
	r io.Reader
	// wmu serialises writes with write deadlines: mochi refreshes a connection's deadlines
	// from its reading goroutine while another writes, which a net.Conn allows and gorilla's
	// Conn does not.
	wmu sync.Mutex
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.NextReader()
			if err != nil {
				return 0, err
			}
			if typ != websocket.BinaryMessage {
				return 0, errors.New("websocket: MQTT requires binary messages")
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}
